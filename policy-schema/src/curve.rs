//! X25519 public keys as the curve reads them: one canonical spelling per point, and the
//! points no real key is.
//!
//! RFC 7748 section 5 has X25519 ignore bit 255 of a u-coordinate and accept values from p
//! to 2^255 - 1, reducing them mod p = 2^255 - 19: up to four byte strings name one point.
//! A low-order point makes the shared secret all zeros whatever the private key (the
//! check `was_contributory` does), so every SA key of its pairs would follow from the
//! public policy file and the clock alone.

/// p = 2^255 - 19, little-endian.
const P: [u8; 32] = {
    let mut p = [0xff; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    p
};

/// u-coordinates (canonical) of the points of small order on the curve and its twist:
/// 0, 1, p - 1 and the two points of order 8 (the list libsodium and others refuse).
const LOW_ORDER: [[u8; 32]; 5] = [
    [0; 32],
    {
        let mut one = [0; 32];
        one[0] = 1;
        one
    },
    {
        let mut p_minus_1 = P;
        p_minus_1[0] = 0xec;
        p_minus_1
    },
    [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
        0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
        0xb8, 0x00,
    ],
    [
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef,
        0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f,
        0x11, 0x57,
    ],
];

/// The one spelling of the point `bytes` names: bit 255 cleared, reduced mod p.
pub(crate) fn canonical(mut bytes: [u8; 32]) -> [u8; 32] {
    bytes[31] &= 0x7f;
    // With bit 255 clear the value is below 2^255 = p + 19: at or above p only when bytes
    // 1..31 equal p's and byte 0 is at least p's; then value - p = byte 0 - 0xed.
    if bytes[1..] == P[1..] && bytes[0] >= P[0] {
        let low = bytes[0] - P[0];
        bytes = [0; 32];
        bytes[0] = low;
    }
    bytes
}

/// Whether the canonical u-coordinate `bytes` is a point of small order.
pub(crate) fn is_low_order(bytes: &[u8; 32]) -> bool {
    LOW_ORDER.contains(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le(n: u8) -> [u8; 32] {
        let mut b = [0; 32];
        b[0] = n;
        b
    }

    #[test]
    fn every_spelling_of_a_point_becomes_one() {
        assert_eq!(canonical(P), le(0));
        let mut p1 = P;
        p1[0] += 1;
        assert_eq!(canonical(p1), le(1));
        let mut top = P;
        top[0] = 0xff;
        assert_eq!(canonical(top), le(18), "2^255 - 1 = p + 18");
        let mut high = LOW_ORDER[3];
        high[31] |= 0x80;
        assert_eq!(canonical(high), LOW_ORDER[3]);
        let just_below = LOW_ORDER[2];
        assert_eq!(
            canonical(just_below),
            just_below,
            "p - 1 is already canonical"
        );
    }

    #[test]
    fn the_low_order_points_and_only_they() {
        for k in LOW_ORDER {
            assert!(is_low_order(&canonical(k)));
        }
        assert!(!is_low_order(&le(2)));
        assert!(!is_low_order(&le(9)), "the base point");
    }
}
