//! Loading the IKEv2 setup: host credentials, authority files, settings.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use ike::cert::testpki::rcgen::SanType;
use ike::cert::testpki::{now, Pki, TestKey};
use p256::pkcs8::{EncodePrivateKey, LineEnding};

use super::admission::tests::{policy, POLICY};
use super::*;
use crate::credentials::tests::Dir;

fn pem(label: &str, der: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out.into_bytes()
}

fn files(cert: Option<PathBuf>, key: Option<PathBuf>) -> PolicyFiles {
    PolicyFiles {
        config: "/nonexistent/policy.toml".into(),
        key: "/nonexistent/host.key".into(),
        host: None,
        cluster_keys: Vec::new(),
        max_policy_size: policy_schema::DEFAULT_MAX_POLICY_SIZE,
        cert,
        cert_key: key,
        cert_id: None,
    }
}

/// The reference policy with both authorities' CA files in `d`, and a CRL for corp.
fn policy_in(d: &Dir, crl: &Path) -> Policy {
    let text = POLICY
        .replace("/etc/xfrm-agent/ca", &d.0.display().to_string())
        .replace(
            "revocation = \"relaxed\"\nscope",
            &format!(
                "crls = [\"{}\"]\nrevocation = \"strict\"\nscope",
                crl.display()
            ),
        );
    policy(&text)
}

/// A folder with corp's and partner's CAs, corp's CRL, and site's certificate and key.
fn lab(tag: &str) -> (Dir, Pki, Policy, PolicyFiles) {
    let d = Dir::new(&format!("ike-{tag}"));
    let (corp, partner) = (Pki::new("corp", 1), Pki::new("partner", 2));
    d.file("corp.pem", &pem("CERTIFICATE", &corp.ca_der), 0o644);
    d.file("partner.pem", &partner.ca_der, 0o644);
    let crl = d.file("corp.crl", &corp.crl(&[], 2030), 0o644);
    let key = TestKey::new(5);
    let cert = corp.leaf(&key, 5, |p| {
        p.subject_alt_names = vec![SanType::IpAddress("10.10.0.10".parse().unwrap())];
    });
    let cert = d.file("site.pem", &pem("CERTIFICATE", &cert), 0o644);
    let sk = p256::SecretKey::from(&key.sk);
    let key_pem = sk.to_pkcs8_pem(LineEnding::LF).unwrap();
    let key = d.file("site.key", key_pem.as_bytes(), 0o600);
    let p = policy_in(&d, &crl);
    (d, corp, p, files(Some(cert), Some(key)))
}

fn err(r: anyhow::Result<Option<IkeSetup>>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn a_policy_with_ikev2_pairs_gives_a_setup() {
    let (_d, corp, p, f) = lab("good");
    let setup = ike_setup(&p, "site", &f)
        .unwrap()
        .expect("IKEv2 pairs here");
    assert!(setup.config.check().is_ok());
    // The verifier holds corp (with its CRL, strict) and partner.
    let peer = corp.leaf(&TestKey::new(9), 9, |_| {});
    let id = ike::codec::Id {
        id_type: ike::codec::IdType::IPV4_ADDR,
        data: vec![10, 0, 0, 1],
    };
    let v = setup
        .config
        .verifier
        .verify(&peer, &[], &id, now())
        .unwrap();
    assert_eq!(v.authority, "corp");
    let laptop = "10.30.0.7".parse().unwrap();
    assert!(setup
        .admission
        .terms("10.10.0.10".parse().unwrap(), laptop)
        .is_some());
    assert_eq!(setup.settings.rekey_after, Duration::from_secs(3600));
    assert_eq!(setup.settings.grace, Duration::from_secs(p.defaults.grace));
}

#[test]
fn no_ikev2_pairs_no_setup_and_no_credentials_needed() {
    let text = "version = 1\n[[hosts]]\nname = \"site\"\naddresses = [\"10.10.0.10\"]\npublic-key = \"afHYlNMD37507eZrZqsbd+jZV3lhnbG36Ad3QnFbgQE=\"\n";
    assert!(ike_setup(&policy(text), "site", &files(None, None))
        .unwrap()
        .is_none());
}

#[test]
fn ikev2_pairs_without_credentials_are_a_clear_error() {
    let (_d, _, p, _) = lab("nocert");
    let e = err(ike_setup(&p, "site", &files(None, None)));
    assert!(e.contains("--cert FILE and --cert-key FILE"), "{e}");
}

#[test]
fn bad_authority_files_name_the_authority_and_the_file() {
    let (d, _, p, f) = lab("badfiles");
    // (file replaced, its content, words the error must contain)
    let table: [(&str, &[u8], &[&str]); 3] = [
        (
            "partner.pem",
            b"not a certificate",
            &["authority partner", "partner.pem"],
        ),
        (
            "corp.crl",
            b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
            &["authority corp", "CRL", "corp.crl"],
        ),
        ("corp.pem", &[], &["authority corp", "corp.pem"]),
    ];
    for (name, bytes, words) in table {
        let saved = std::fs::read(d.0.join(name)).unwrap();
        d.file(name, bytes, 0o644);
        let e = err(ike_setup(&p, "site", &f));
        for w in words {
            assert!(e.contains(w), "{name}: {e}");
        }
        d.file(name, &saved, 0o644);
    }
    std::fs::remove_file(d.0.join("partner.pem")).unwrap();
    let e = err(ike_setup(&p, "site", &f));
    assert!(
        e.contains("authority partner") && e.contains("partner.pem"),
        "{e}"
    );
}

#[test]
fn a_readable_host_key_is_refused() {
    let (_d, _, p, f) = lab("readable");
    let key = f.cert_key.clone().unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = err(ike_setup(&p, "site", &f));
    assert!(e.contains("site.key"), "{e}");
}

#[test]
fn cert_ids_parse_by_kind() {
    let table = [
        ("10.10.0.10", Some(ike::codec::IdType::IPV4_ADDR)),
        ("2001:db8::1", Some(ike::codec::IdType::IPV6_ADDR)),
        ("site.corp.example", Some(ike::codec::IdType::FQDN)),
        ("ops@corp.example", Some(ike::codec::IdType::RFC822_ADDR)),
        ("CN=site, O=Corp", None),
        ("two words", None),
        ("", None),
    ];
    for (s, want) in table {
        assert_eq!(parse_id(s).ok().map(|i| i.id_type), want, "{s:?}");
    }
}

/// The compiler and the admission agree: a pair has static SAs exactly when IKEv2 does
/// not key it, and an IKEv2 pair's reqid is its rule template's (golden case
/// seed-site-ikev2: site <-> db over IKEv2, site <-> mp static).
#[test]
fn static_sas_and_ikev2_terms_never_cover_the_same_pair() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    let p = policy(&read("tests/golden/plan/seed-site-ikev2/policy.toml"));
    let key =
        crate::keys::PrivateKey::from_base64(&read("../examples/keys/site.key"), "site").unwrap();
    let id = crate::keys::Identity::resolve(&p, key, None).unwrap();
    let now = crate::plan::Timestamp::from_secs(1_800_001_800);
    let d = crate::plan::desired(&p, &id, &Default::default(), now).unwrap();
    let a = PolicyAdmission::new(&p, "site", &settings(&p));
    let site: IpAddr = "10.10.0.10".parse().unwrap();
    let static_peers: std::collections::BTreeSet<IpAddr> = (d.states.iter())
        .map(|(k, v)| if k.dst == site { v.spec.src } else { k.dst })
        .collect();
    assert!(!static_peers.is_empty());
    for peer in &static_peers {
        assert_eq!(a.terms(site, *peer), None, "{peer} has static SAs");
    }
    let db: IpAddr = "10.10.0.11".parse().unwrap();
    assert!(!static_peers.contains(&db), "db is keyed over IKEv2");
    let terms = a.terms(site, db).expect("IKEv2 keys site <-> db");
    let pfs = crate::model::Origin::Rule("db-pfs".into());
    let reqids: Vec<u32> = (d.policies.values())
        .filter(|v| v.origin == pfs)
        .flat_map(|v| match &v.spec.action {
            crate::model::PolicyAction::Protect(t) => t.iter().map(|t| t.reqid).collect(),
            _ => Vec::new(),
        })
        .collect();
    assert!(!reqids.is_empty() && reqids.iter().all(|r| *r == terms.reqid));
}
