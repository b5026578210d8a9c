//! Benchmark driver for scripts/bench-apply (until `xfrm-agent apply` runs on a 10k-host
//! policy file). Run it inside a throw-away namespace (`ip netns exec`), never in the root
//! namespace. Builds the same object sets as the `ip -batch` files it prints.
//!
//!   bench_engine batch  SET N          ip -batch text on stdout
//!   bench_engine apply  SET N [change] reconcile; timings as one JSON line
//!   bench_engine status SET N          observe + status report; timings
//!   bench_engine toml   compiled N DIR the `compiled` policy as a file (DIR/policy.toml) and
//!                                      host h0's private key (DIR/h0.key), for the CLI
//!
//! SET: `policies` (N distinct /32 policies), `peers` (N peers, 2 SAs each, built by hand),
//! `compiled` (an N-host policy compiled by plan::desired for one host, rendered for ip
//! -batch by agent::report::ip_batch).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use agent::engine::reconcile;
use agent::kernel;
use agent::model::*;
use agent::secret::Secret;
use policy_schema::Ownership;

const REQID: u32 = 0x7a00_0001;
const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

fn peer_addr(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 1 + (i >> 16) as u8, (i >> 8) as u8, i as u8)
}

fn esp() -> PolicyAction {
    PolicyAction::Protect(
        vec![Template {
            mode: Mode::Transport,
            reqid: REQID,
            level: Level::Required,
            tunnel: None,
        }]
        .into(),
    )
}

/// N distinct /32 policies, alternating in/out.
fn policies(n: u32, change: bool) -> Desired {
    let mut d = Desired::default();
    for i in 0..n {
        let dir = if i % 2 == 0 { Dir::Out } else { Dir::In };
        let p = IpAddr::V4(peer_addr(i / 2));
        let l = IpAddr::V4(LOCAL);
        let (s, t) = if dir == Dir::Out { (l, p) } else { (p, l) };
        let key = PolicyKey {
            dir,
            sel: Selector::between(s.into(), t.into()),
            mark: None,
        };
        // The change raises one policy's precedence (a lowered one would add guards).
        let prio = if change && i == 0 { 0x100ff } else { 0x10100 };
        let spec = PolicySpec {
            priority: prio,
            action: esp(),
        };
        let origin = Origin::Rule(format!("p{i}").into());
        d.policies.insert(key, DesiredPolicy { spec, origin });
    }
    d
}

fn key_for(i: u32, dir: u8, epoch: u8) -> Secret {
    let mut k = vec![epoch; 20];
    k[..4].copy_from_slice(&i.to_be_bytes());
    k[4] = dir;
    Secret::new(k)
}

fn sa(i: u32, dir: SaDir, epoch: u8) -> (SaKey, DesiredSa) {
    let (l, p) = (IpAddr::V4(LOCAL), IpAddr::V4(peer_addr(i)));
    let (src, dst, d) = match dir {
        SaDir::Out => (l, p, 0),
        SaDir::In => (p, l, 1),
    };
    let spi = 0x4000_0000 + (u32::from(epoch) << 24) + 2 * i + u32::from(d);
    let spec = SaSpec {
        src,
        reqid: REQID,
        mode: Mode::Transport,
        sel: Selector::between(src.into(), dst.into()),
        alg: Algorithm::Aead {
            name: "rfc4106(gcm(aes))".into(),
            key: key_for(i, d, epoch),
            icv_bits: 128,
        },
        replay_window: 1024,
        esn: true,
        encap: None,
        lifetime: Lifetime {
            soft_secs: 3600,
            hard_secs: 3700,
        },
    };
    let meta = SaMeta {
        peer: format!("h{i}"),
        dir,
        epoch: u64::from(epoch),
        initial_seq: 0,
    };
    (SaKey { dst, spi }, DesiredSa { spec, meta })
}

/// N peers with two SAs each, plus the two catch-all rule policies.
fn peers(n: u32, change: bool) -> Desired {
    let mut d = Desired::default();
    for dir in [Dir::In, Dir::Out] {
        let key = PolicyKey {
            dir,
            sel: Selector::between("10.0.0.0/8".parse().unwrap(), "10.0.0.0/8".parse().unwrap()),
            mark: None,
        };
        let spec = PolicySpec {
            priority: 0x10100,
            action: esp(),
        };
        let origin = Origin::Rule("intranet".into());
        d.policies.insert(key, DesiredPolicy { spec, origin });
    }
    for i in 0..n {
        // The change: peer 0 moves to the next epoch (new SAs both ways, old ones gone).
        let epoch = if change && i == 0 { 2 } else { 1 };
        for dir in [SaDir::In, SaDir::Out] {
            let (k, v) = sa(i, dir, epoch);
            d.states.insert(k, v);
        }
    }
    d
}

fn host_key(i: u32) -> agent::keys::PrivateKey {
    let mut b = [7u8; 32];
    b[..4].copy_from_slice(&i.to_be_bytes());
    agent::keys::PrivateKey::from_bytes(b)
}

/// The `compiled` policy as a policy file, and host h0's key beside it.
/// `policy-change.toml` is the same without host h1 (the one-peer change).
fn write_toml(n: u32, dir: &str) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    let mut t = String::from(
        "version = 1\n\n[zones]\nintranet = [\"10.0.0.0/8\"]\n\n\
         [[exemptions]]\nname = \"icmp\"\nprotocol = \"icmp\"\n\n\
         [[rules]]\nname = \"isolation\"\nfrom = [\"any\"]\nto = [\"zone:intranet\"]\n\
         action = \"require\"\n",
    );
    let mut change = t.clone();
    for i in 0..n {
        let mut host = String::new();
        write!(
            host,
            "\n[[hosts]]\nname = \"h{i}\"\naddresses = [\"{}\"]\npublic-key = \"{}\"\n",
            peer_addr(i),
            host_key(i).public().to_base64()
        )?;
        t.push_str(&host);
        if i != 1 {
            change.push_str(&host);
        }
    }
    std::fs::write(format!("{dir}/policy.toml"), t)?;
    std::fs::write(format!("{dir}/policy-change.toml"), change)?;
    let kp = format!("{dir}/h0.key");
    std::fs::write(&kp, host_key(0).to_base64() + "\n")?;
    std::fs::set_permissions(&kp, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(())
}

/// An N-host intranet: one require rule, an ICMP exemption; the plan of host 0.
fn compiled(n: u32, change: bool) -> Desired {
    use policy_schema::*;
    let key = host_key;
    let hosts = (0..n)
        .map(|i| Host {
            name: format!("h{i}"),
            addresses: vec![IpAddr::V4(peer_addr(i))],
            public_key: key(i).public(),
            zones: vec![],
            encapsulation: Encapsulation::None,
            gateway_for: vec![],
        })
        .collect();
    let policy = Policy {
        version: 1,
        defaults: Defaults::default(),
        ownership: Ownership::default(),
        zones: vec![Zone {
            name: "intranet".into(),
            prefixes: vec!["10.0.0.0/8".parse().unwrap()],
        }],
        hosts,
        clusters: vec![],
        authorities: vec![],
        exemptions: vec![Exemption {
            name: "icmp".into(),
            protocol: Protocol::Icmp,
            ports: vec![],
            direction: Direction::Both,
            peers: vec![],
        }],
        rules: vec![Rule {
            name: "isolation".into(),
            from: vec![Endpoint::Any],
            to: vec![Endpoint::Zone("intranet".into())],
            protocol: None,
            ports: vec![],
            action: Action::Require,
            mode: policy_schema::Mode::Transport,
            cipher: Cipher::AesGcm128,
            key_exchange: Default::default(),
            identities: vec![],
            admits: Default::default(),
        }],
    };
    let id = agent::keys::Identity::resolve(&policy, key(0), None).expect("host 0");
    // The change: one hour later every pair rotates; instead move one peer by removing it.
    let mut d = agent::plan::desired(
        &policy,
        &id,
        &agent::plan::LocalAddrs::new(),
        agent::plan::Timestamp::from_secs(1_800_000_000),
    )
    .expect("compiles");
    if change {
        let gone = IpAddr::V4(peer_addr(1));
        d.states.retain(|k, s| k.dst != gone && s.spec.src != gone);
    }
    d
}

fn hex(s: &Secret) -> String {
    format!("0x{}", s.to_hex())
}

fn print_batch(d: &Desired) {
    for (k, p) in &d.policies {
        println!(
            "xfrm policy add dir {} src {} dst {} priority {} tmpl proto esp reqid {} mode transport",
            k.dir.as_str(),
            k.sel.src,
            k.sel.dst,
            p.spec.priority,
            REQID
        );
    }
    for (k, s) in &d.states {
        let Algorithm::Aead {
            name,
            key,
            icv_bits,
        } = &s.spec.alg
        else {
            unreachable!()
        };
        println!(
            "xfrm state add src {} dst {} proto esp spi {:#x} reqid {} mode transport \
             flag esn replay-window {} aead '{}' {} {} sel src {} dst {} \
             limit time-soft {} limit time-hard {}",
            s.spec.src,
            k.dst,
            k.spi,
            s.spec.reqid,
            s.spec.replay_window,
            name,
            hex(key),
            icv_bits,
            s.spec.sel.src,
            s.spec.sel.dst,
            s.spec.lifetime.soft_secs,
            s.spec.lifetime.hard_secs
        );
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, set, n) = (args[0].as_str(), args[1].as_str(), args[2].parse::<u32>()?);
    let change = args.get(3).is_some_and(|a| a == "change");
    let d = match set {
        "policies" => policies(n, change),
        "peers" => peers(n, change),
        "compiled" => compiled(n, change),
        s => anyhow::bail!("unknown set {s}"),
    };
    let own = Ownership::default();
    match cmd {
        "toml" => write_toml(n, &args[3])?,
        "batch" if set == "compiled" => print!("{}", agent::report::ip_batch::render(&d, true)),
        "batch" => print_batch(&d),
        "apply" => {
            let t = Instant::now();
            let mut sock = kernel::open()?;
            let out = reconcile(&mut sock, &d, &own, false)?;
            println!(
                "{{\"ops\":{},\"applied\":{},\"failed\":{},\"verified\":{},\"ms\":{:.1},\"summary\":\"{}\"}}",
                out.plan.ops.len(),
                out.applied,
                out.failed.len(),
                out.verified,
                ms(t),
                out.plan.summary()
            );
            if let Some(f) = out.failed.first() {
                eprintln!("first failure: {}: {}", f.op, f.error);
            }
        }
        "status" => {
            let t = Instant::now();
            let mut sock = kernel::open()?;
            let obs = kernel::observe(&mut sock, &own)?;
            let t_obs = ms(t);
            let st =
                agent::report::peers::build(&d, &obs, agent::report::peers::read_xfrm_stat_all());
            let json = serde_json::to_string(&st)?;
            println!(
                "{{\"policies\":{},\"states\":{},\"observe_ms\":{t_obs:.1},\"ms\":{:.1},\"bytes\":{}}}",
                obs.policies.len(),
                obs.states.len(),
                ms(t),
                json.len()
            );
        }
        c => anyhow::bail!("unknown command {c}"),
    }
    Ok(())
}
