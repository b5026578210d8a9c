//! XFRM_MSG_ALLOCSPI in a fresh namespace: the kernel picks an inbound SPI in the range,
//! holds it with a larval state, and never hands out one that a state to the same
//! address already has. Works on the host kernel (no ESP needed); skips without root.
//!   cargo test -p agent --test kernel_allocspi

mod support;

use agent::kernel::{self, allocspi::SpiRequest};
use agent::model::Mode;
use support::ns::{privileged, TestNetns};

fn request(src: &str, min: u32, max: u32) -> SpiRequest {
    SpiRequest {
        src: src.parse().unwrap(),
        dst: "10.97.0.1".parse().unwrap(),
        mode: Mode::Transport,
        reqid: 0x7a00_1000,
        seq: 0,
        min,
        max,
    }
}

#[test]
fn allocated_spis_are_in_range_and_never_taken_twice() {
    if !privileged("allocated_spis_are_in_range_and_never_taken_twice") {
        return;
    }
    let ns = TestNetns::new("spi");
    let (a, b, c) = ns.run(|| {
        let mut s = kernel::open().unwrap();
        let a = kernel::allocspi::alloc_spi(&mut s, &request("10.97.0.2", 0x1000, 0x1fff));
        let taken = a.as_ref().copied().unwrap_or(0);
        let b = kernel::allocspi::alloc_spi(&mut s, &request("10.97.0.3", taken, taken));
        let c = kernel::allocspi::alloc_spi(&mut s, &request("10.97.0.4", 0x2000, 0x2000));
        (a, b.map_err(|e| e.to_string()), c)
    });
    let a = a.expect("an SPI from the kernel");
    assert!((0x1000..=0x1fff).contains(&a), "{a:#x} out of range");
    assert!(b.is_err(), "SPI {a:#x} handed out twice: {b:?}");
    assert_eq!(c.expect("exactly the SPI asked for"), 0x2000);
    let states = ns.ip(&["xfrm", "state"]);
    assert!(states.contains(&format!("spi {a:#010x}")), "{states}");
    assert!(states.contains("reqid 2046824448"), "{states}");
}
