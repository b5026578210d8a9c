//! DH group 14 (MODP-2048): agreement against an independent computation, and the
//! public values RFC 6989 §2.1 tells a responder to refuse.

use super::*;
use crate::rng::SeededRng;

fn unhex(parts: &[&str]) -> Vec<u8> {
    super::tests::hex(&parts.concat())
}

/// RFC 3526 §3's prime (the known answer below pins its value down).
fn prime() -> Vec<u8> {
    super::modp::P.get_copy().to_be_bytes().as_slice().to_vec()
}

/// x_a = 0x0102…20 and x_b = 0xa0a1…bf; y and g^(x_a·x_b) computed with Python's
/// `pow(2, x, p)` (an implementation independent of crypto-bigint).
#[test]
fn modp2048_agreement_matches_known_answer() {
    let xa: [u8; 32] = std::array::from_fn(|i| i as u8 + 1);
    let xb: [u8; 32] = std::array::from_fn(|i| i as u8 + 0xa0);
    let a = KeyShare::from_private(DhGroup::Modp2048, &xa).unwrap();
    let b = KeyShare::from_private(DhGroup::Modp2048, &xb).unwrap();
    let ya = unhex(&[
        "ce8736a3ad7c8260e0c5e5a457931ad19966d693e5c32414496b73d7f4e8bdaf",
        "51763d49d07a56b0a188048d61d52bd2a06e706a7a46664113e794057474d04c",
        "96b5bb151a50b27818a513cd8d6ecf037fc638b3b2f1084c58d4419735ba12c9",
        "a4391e2b3133bd660785e468569be85c7ad4f904d98a13f5e8695ff8cc5e2283",
        "4228a8ea2c082ff49a07607e8e5c1278ce8091725678fde112491091bf4cf3b1",
        "759ccb32c1de0b90a074b1e3ffe179d71a292ff29ce9580c3a978793598c0e00",
        "8289e7ab7783b2b75caf9152267e8c981dbb28fde07f2e11ffe1e3984097d160",
        "2c61ffd0714d9523455377c177df3be6b3c81e69f762c04be910a225f323882d",
    ]);
    let yb = unhex(&[
        "f0fee7626bcec4d1c5c1fb11b8058af4061c0e877d02ca7aedf42e33280eb58f",
        "4309a566a74456e01d97fdba45043cd674315204b9b2409f26aeffd643010ec5",
        "e197ee67b24f0f046d1dce630794822cfe9360ed40c6975d5a2bb5892686cea6",
        "469fb9f92a52210564419dd6bfd3e023d33a4468e81b97f309c7df7be746d866",
        "0089738b09885dc100285952096132ca8d3e369525e588df9cfa4ee06280f7a9",
        "acf92bf180187afa6a9927b9d65f26adf2417a2e4cf3974bc5992dbd4997337b",
        "ec667f7b73c5b59fa03d6455070825c9f69c3f048e7051485e2c7edd1ef97221",
        "9ec6c98c973f895982c4ad77784f8807ae75680ceeb8b1aafca61a1517b42ca7",
    ]);
    let z = unhex(&[
        "423a4c756e577947c782c440d170222bc12f683c5558857e09c882f9286d8967",
        "28718fa3c97b72eacc8b3138e2900ff4baa551bec617d041627547964d9fbe24",
        "4b3942443d7580fc21dfabb9ed00eb9b52d1acdf85044518513a6f5a0f522f58",
        "1afee10d29171a0e0439ebd84f70390cd9560c638a934234430cccf9bd004479",
        "004d4c8dcc16985a6b78f82b62f334b490ba2a3a36c9f1fe75ce9cc210d6c900",
        "322fdcd98487c3f7d48666f348ac6a4dbd9cf55521c2c1d68b1c4e1cc8c2f611",
        "5892d0241792e93295e46bfe22241522264edcd8562f481a1f6ede3f6f01e650",
        "b11d9c9a159da66466777ab95e0081fa91576855cdbac2286d05d90eef8fd436",
    ]);
    assert_eq!(a.public(), &ya[..]);
    assert_eq!(b.public(), &yb[..]);
    assert_eq!(a.agree(b.public()).unwrap().expose(), &z[..]);
    assert_eq!(b.agree(a.public()).unwrap().expose(), &z[..]);
}

#[test]
fn modp2048_random_parties_agree_on_a_padded_secret() {
    let mut rng = SeededRng::new(14);
    let a = KeyShare::generate(DhGroup::Modp2048, &mut rng);
    let b = KeyShare::generate(DhGroup::Modp2048, &mut rng);
    assert_eq!(DhGroup::from_number(14), Some(DhGroup::Modp2048));
    assert_eq!(a.public().len(), 256);
    let (ka, kb) = (a.agree(b.public()).unwrap(), b.agree(a.public()).unwrap());
    assert_eq!(ka.expose(), kb.expose());
    assert_eq!(ka.expose().len(), 256);
}

#[test]
fn modp2048_refuses_degenerate_public_values() {
    let x = KeyShare::generate(DhGroup::Modp2048, &mut SeededRng::new(3));
    let p = prime();
    let mut p_minus_1 = p.clone();
    p_minus_1[255] -= 1;
    let mut one = vec![0u8; 256];
    one[255] = 1;
    // 0, 1, p − 1 (order 2), p (≡ 0) and above p.
    for y in [vec![0u8; 256], one, p_minus_1, p, vec![0xff; 256]] {
        assert_eq!(x.agree(&y), Err(DhError::OutOfRange));
    }
    // The first value inside the range is accepted.
    let mut two = vec![0u8; 256];
    two[255] = 2;
    assert!(x.agree(&two).is_ok());
    assert!(matches!(
        x.agree(&[2u8; 255]),
        Err(DhError::BadLength {
            expected: 256,
            got: 255
        })
    ));
}

#[test]
fn modp2048_refuses_exponents_below_two() {
    let mut x = [0u8; 32];
    assert!(KeyShare::from_private(DhGroup::Modp2048, &x).is_none());
    x[31] = 1;
    assert!(KeyShare::from_private(DhGroup::Modp2048, &x).is_none());
    x[31] = 2;
    let k = KeyShare::from_private(DhGroup::Modp2048, &x).unwrap();
    assert_eq!(k.public()[255], 4);
    assert!(k.public()[..255].iter().all(|&b| b == 0));
}
