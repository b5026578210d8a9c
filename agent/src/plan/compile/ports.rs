//! Port ranges as XFRM selector (value, mask) blocks.

use policy_schema::PortRange;

use crate::model::PortMatch;

/// Which side of a connection the local address is on, for port placement.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// Peers connect to our ports: `in` matches dport, `out` matches sport.
    Server,
    /// We connect to the peers' ports: `out` matches dport, `in` matches sport.
    Client,
}

/// The fewest prefix-aligned (port, mask) blocks that exactly cover `r`.
/// 16992-16995 is one block (16992/0xfffc); 80 is one exact match; 0-65535 is "any".
pub fn blocks(r: PortRange) -> Vec<PortMatch> {
    let mut out = Vec::new();
    let (mut lo, hi) = (u32::from(r.lo), u32::from(r.hi));
    while lo <= hi {
        // Largest power-of-two block starting at lo that is aligned and fits in [lo, hi].
        let mut size = if lo == 0 {
            1 << 16
        } else {
            1u32 << lo.trailing_zeros()
        };
        while lo + size - 1 > hi {
            size >>= 1;
        }
        let mask = !(size - 1) as u16;
        out.push(PortMatch {
            port: lo as u16,
            mask: if size == 1 << 16 { 0 } else { mask },
        });
        lo += size;
    }
    out
}

/// Blocks for a list of ranges (empty list = any port).
pub fn blocks_of(ranges: &[PortRange]) -> Vec<PortMatch> {
    if ranges.is_empty() {
        return vec![PortMatch::ANY];
    }
    let mut out: Vec<PortMatch> = ranges.iter().flat_map(|r| blocks(*r)).collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(lo: u16, hi: u16) -> PortRange {
        PortRange { lo, hi }
    }

    #[test]
    fn known_blocks() {
        assert_eq!(blocks(r(80, 80)), vec![PortMatch::exact(80)]);
        assert_eq!(
            blocks(r(16992, 16995)),
            vec![PortMatch {
                port: 16992,
                mask: 0xfffc
            }]
        );
        assert_eq!(blocks(r(0, 65535)), vec![PortMatch::ANY]);
        assert_eq!(blocks(r(67, 68)).len(), 2);
    }

    proptest::proptest! {
        #[test]
        fn blocks_cover_exactly(lo in 0u16..=65535, len in 0u16..3000) {
            let hi = lo.saturating_add(len);
            let bs = blocks(r(lo, hi));
            let mut covered = 0u32;
            for b in &bs {
                let (blo, bhi) = b.range();
                proptest::prop_assert!(blo >= lo && bhi <= hi, "{b:?} outside {lo}-{hi}");
                covered += u32::from(bhi - blo) + 1;
            }
            proptest::prop_assert_eq!(covered, u32::from(hi - lo) + 1);
            proptest::prop_assert!(bs.len() <= 32);
        }
    }
}
