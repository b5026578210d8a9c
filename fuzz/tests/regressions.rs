//! Every input of every target runs through it again, without AFL++: the generated seeds,
//! the committed corpus (`corpus/TARGET/`) and the inputs that once crashed
//! (`regressions/TARGET/`), so a fixed crash stays fixed in a plain `cargo test`.

use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd.map(|e| e.expect("a directory entry").path()).collect();
    v.sort();
    v
}

#[test]
fn every_committed_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for t in xfrm_fuzz::TARGETS {
        let files: Vec<PathBuf> = ["corpus", "regressions"]
            .iter()
            .flat_map(|d| inputs(&root.join(d).join(t.name)))
            .collect();
        for f in files {
            let data = std::fs::read(&f).expect("readable input");
            if std::panic::catch_unwind(|| (t.run)(&data)).is_err() {
                panic!("{} fails on {}", t.name, f.display());
            }
        }
    }
}

#[test]
fn every_generated_seed_passes_its_target() {
    for t in xfrm_fuzz::TARGETS {
        let seeds = xfrm_fuzz::seeds::seeds(t.name);
        assert!(
            !seeds.is_empty(),
            "target {} has no generated seeds",
            t.name
        );
        for (name, data) in seeds {
            if std::panic::catch_unwind(|| (t.run)(&data)).is_err() {
                panic!("{} fails on its seed {name}", t.name);
            }
        }
    }
}
