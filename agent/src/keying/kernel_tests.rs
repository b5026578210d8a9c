//! A negotiated SA as the kernel dumps it back is the SA keying wants: a quiet resync
//! makes no ops (it once replaced every inbound SA each minute, because the kernel keeps
//! at most 32 packets of a window given without XFRMA_REPLAY_ESN_VAL).

use std::time::Duration;

use netlink_packet_core::ParseableParametrized;
use netlink_packet_xfrm::{XfrmAttrs, XfrmMessage};
use policy_schema::Ownership;

use super::testnet::{Net, A, B, CLEAN};
use super::{Acquire, Settings};
use crate::kernel::decode::{self, Decoded};
use crate::kernel::encode;
use crate::model::{Desired, Observed, ObservedSa, OpKind, SaKey, SaSpec, Selector};
use crate::plan::diff::diff;
use crate::plan::host_net as host;

/// Ownership covering the SPIs the test's keying allocated (the test net has no static
/// SPI slots to keep them in the default range).
fn own() -> Ownership {
    Ownership {
        spi: (256, u32::MAX),
        ..Ownership::default()
    }
}

/// What the kernel stores of an XFRM_MSG_NEWSA, dumped back: without the ESN replay
/// attribute the window is capped at the 32 bits of its legacy bitmap
/// (copy_from_user_state in net/xfrm/xfrm_user.c).
fn as_kernel_dumps(k: SaKey, s: &SaSpec) -> ObservedSa {
    let req = encode::op_request(&OpKind::AddSa(k, s.clone(), 0));
    let XfrmMessage::AddSa(mut m) =
        XfrmMessage::parse_with_param(&req.payload[..], req.ty).expect("parses")
    else {
        panic!("not an SA");
    };
    let bmp = m
        .nlas
        .iter()
        .any(|a| matches!(a, XfrmAttrs::ReplayStateEsn(_)));
    if !bmp {
        m.user_sa_info.replay_window = m.user_sa_info.replay_window.min(32);
    }
    match decode::sa(&m, &own()) {
        Decoded::Owned(k2, o) if k2 == k => o,
        other => panic!("{k}: decoded as {other:?}"),
    }
}

#[test]
fn negotiated_sas_dumped_back_diff_to_nothing() {
    let settings = Settings {
        rekey_after: Duration::from_secs(40),
        rekey_jitter: Duration::from_secs(4),
        ..Settings::default()
    };
    let mut n = Net::new(settings, CLEAN, 11);
    let (a, b) = (super::testnet::ip(A), super::testnet::ip(B));
    let acq = Acquire {
        local: a,
        remote: b,
        sel: Selector::between(host(a), host(b)),
        seq: 1,
    };
    n.a.acquire(n.now, &acq);
    let up = |n: &Net| n.a.desired_states().len() == 2 && n.b.desired_states().len() == 2;
    assert!(n.run_until(Duration::from_secs(60), up, |_| ()));
    for side in [&n.a, &n.b] {
        let desired = Desired {
            states: side.desired_states(),
            ..Desired::default()
        };
        let observed = Observed {
            states: (desired.states.iter())
                .map(|(k, s)| (*k, as_kernel_dumps(*k, &s.spec)))
                .collect(),
            ..Observed::default()
        };
        let plan = diff(&desired, &observed, &own());
        assert!(plan.ops.is_empty(), "a quiet resync writes: {:?}", plan.ops);
    }
}
