use super::*;

#[test]
fn durations() {
    assert_eq!(duration("90s"), Ok(90));
    assert_eq!(duration("10m"), Ok(600));
    assert_eq!(duration("1h30m"), Ok(5400));
    assert_eq!(duration("2d"), Ok(172_800));
    assert_eq!(duration("1d1h1m1s"), Ok(90_061));
    assert_eq!(duration("0s"), Ok(0));
    assert!(duration("").is_err());
    assert!(duration("h").is_err());
    assert!(duration("1 h").is_err());
    assert!(duration("1w").is_err());
    assert!(duration("-1s").is_err());
    assert_eq!(duration("99999999999999999999s"), Ok(u64::MAX));
    assert_eq!(duration("300000000000000d"), Ok(u64::MAX));
    assert_eq!(duration_in(86_400, 10, 86_400), Ok(86_400));
    let long = duration_in(86_401, 10, 86_400).unwrap_err();
    assert_eq!(long, "is too long (expected 10s to 86400s (1d))");
    assert!(duration_in(9, 10, 86_400)
        .unwrap_err()
        .contains("too short"));
    assert!(duration_in(u64::MAX, 0, 3_600)
        .unwrap_err()
        .contains("3600s (1h)"));
    assert!(duration("90").unwrap_err().contains("did you mean \"90s\""));
    assert_eq!(duration_int(30), Ok(30));
    assert!(duration_int(-1).is_err());
}

#[test]
fn ports() {
    assert_eq!(port(443), Ok(443));
    assert!(port(0).unwrap_err().contains("port 0"));
    assert!(port(65536).is_err());
    assert!(port(-1).is_err());
    assert_eq!(port_range("80"), Ok(PortRange::single(80)));
    assert_eq!(
        port_range("16992-16995"),
        Ok(PortRange {
            lo: 16992,
            hi: 16995
        })
    );
    assert!(port_range("200-100")
        .unwrap_err()
        .contains("did you mean \"100-200\""));
    assert!(port_range("0-10").is_err());
    assert!(port_range("1-70000").is_err());
    assert!(port_range("http").is_err());
    assert!(port_range("1-").is_err());
    assert!(port_range("-5").is_err());
    assert!(port_range("+5").is_err());
}

#[test]
fn prefixes() {
    assert_eq!(prefix("10.0.0.0/8"), Ok("10.0.0.0/8".parse().unwrap()));
    assert_eq!(prefix("10.0.0.1"), Ok("10.0.0.1/32".parse().unwrap()));
    assert_eq!(prefix("fd00::1"), Ok("fd00::1/128".parse().unwrap()));
    assert_eq!(prefix("::/0"), Ok("::/0".parse().unwrap()));
    let e = prefix("10.10.0.1/24").unwrap_err();
    assert!(e.contains("host bits") && e.contains("10.10.0.0/24"), "{e}");
    assert!(prefix("fd00::1/64").unwrap_err().contains("fd00::/64"));
    assert!(prefix("10.0.0.0/33").unwrap_err().contains("/0 to /32"));
    assert!(prefix("fd00::/129").unwrap_err().contains("/0 to /128"));
    assert!(prefix("10.0.0/8").is_err());
    assert!(prefix("intranet").is_err());
}

#[test]
fn addresses() {
    assert_eq!(address("10.0.0.1"), Ok("10.0.0.1".parse().unwrap()));
    assert_eq!(address("fe80::1"), Ok("fe80::1".parse().unwrap()));
    assert!(address("10.0.0.1/32").unwrap_err().contains("prefix"));
    assert!(address("0.0.0.0").unwrap_err().contains("unspecified"));
    assert!(address("::").unwrap_err().contains("unspecified"));
    assert!(address("127.0.0.2").unwrap_err().contains("loopback"));
    assert!(address("::1").unwrap_err().contains("loopback"));
    assert!(address("224.0.0.1").unwrap_err().contains("multicast"));
    assert!(address("ff02::1").unwrap_err().contains("multicast"));
    assert!(address("255.255.255.255")
        .unwrap_err()
        .contains("broadcast"));
    assert!(address("10.0.0.256").is_err());
}

#[test]
fn keys() {
    let k = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
    assert_eq!(public_key(k).unwrap().to_base64(), k);
    assert!(public_key("AQIDBA==")
        .unwrap_err()
        .contains("decodes to 4 bytes"));
    assert!(public_key("not+base64!")
        .unwrap_err()
        .contains("contains '!', which is not a base64 character"));
    assert!(public_key("AQID=A==")
        .unwrap_err()
        .contains("not valid base64"));
    let umlaut = public_key("über-🔑-key!!").unwrap_err();
    assert!(
        umlaut.contains("contains 'ü'") && !umlaut.contains("URL-safe"),
        "{umlaut}"
    );
    assert!(public_key("AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHy_=")
        .unwrap_err()
        .contains("URL-safe"));
    assert!(public_key(" AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=").is_err());
    assert!(public_key("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        .unwrap_err()
        .contains("all-zero"));
}

/// Little-endian bytes of a small number, of p - k, or with bit 255 set.
fn le(n: u8) -> [u8; 32] {
    let mut b = [0; 32];
    b[0] = n;
    b
}

fn p_minus(k: u8) -> [u8; 32] {
    let mut b = [0xff; 32];
    b[31] = 0x7f;
    b[0] = 0xed - k;
    b
}

fn p_plus(k: u8) -> [u8; 32] {
    let mut b = p_minus(0);
    b[0] += k;
    b
}

fn high(mut b: [u8; 32]) -> [u8; 32] {
    b[31] |= 0x80;
    b
}

fn b64(b: [u8; 32]) -> String {
    PublicKey(b).to_base64()
}

/// Every spelling of every point of small order is refused: with one of them as a peer's
/// key the X25519 shared secret is all zeros and the SA keys follow from the file.
#[test]
fn low_order_keys_in_every_spelling_are_refused() {
    let order8 = [
        "4Ot6fDtBuK4WVuP68Z/EatoJjeucMrH9hmIFFl9JuAA=",
        "X5yVvKNQjCSx0LFVnIPvWwREXMRYHI6G2CJO3dCfEVc=",
    ]
    .map(|s| PublicKey::from_base64(s).unwrap().0);
    let mut spellings = vec![le(1), p_minus(1), p_minus(0), p_plus(1), high(le(0))];
    spellings.extend([
        high(le(1)),
        high(p_minus(1)),
        high(p_minus(0)),
        high(p_plus(1)),
    ]);
    spellings.extend(order8);
    spellings.extend(order8.map(high));
    for bytes in spellings {
        let err = public_key(&b64(bytes)).unwrap_err();
        assert!(
            err.contains("low-order X25519 point"),
            "{}: {err}",
            b64(bytes)
        );
    }
}

/// One point, several spellings: stored as one key, so the duplicate check sees them.
#[test]
fn keys_are_stored_canonical() {
    let k = le(9);
    for spelling in [k, high(k)] {
        assert_eq!(public_key(&b64(spelling)).unwrap().0, k);
    }
    // p + 9 names the point 9 too.
    assert_eq!(public_key(&b64(p_plus(9))).unwrap().0, k);
    assert_eq!(public_key(&b64(high(p_plus(9)))).unwrap().0, k);
}

#[test]
fn hex_and_integers() {
    assert_eq!(u32_hex("0x10000"), Ok(0x10000));
    assert_eq!(u32_hex("0XfF"), Ok(255));
    assert_eq!(u32_hex("0xffffffff"), Ok(u32::MAX));
    assert!(u32_hex("0x100000000").unwrap_err().contains("out of range"));
    assert!(u32_hex("0x").is_err());
    assert!(u32_hex("0xg").is_err());
    assert!(u32_hex("65536").is_err());
    assert_eq!(u32_int(7), Ok(7));
    assert!(u32_int(-1).is_err());
    assert!(u32_int(1 << 32).is_err());
}

#[test]
fn names() {
    assert!(name("intranet").is_ok());
    assert!(name("db-2.site_a").is_ok());
    assert!(name(&"a".repeat(63)).is_ok());
    assert!(name(&"a".repeat(64)).is_err());
    assert!(name("").is_err());
    assert!(name("-x").is_err());
    assert!(name("a b").is_err());
    assert!(name("zone:x").is_err());
    assert!(name("é").is_err());
}

#[test]
fn protocols() {
    assert_eq!(protocol_name("tcp"), Ok(Protocol::Tcp));
    assert_eq!(protocol_name("icmpv6"), Ok(Protocol::Icmpv6));
    assert!(protocol_name("sctp")
        .unwrap_err()
        .contains("did you mean 132?"));
    assert!(protocol_name("tpc")
        .unwrap_err()
        .contains("did you mean \"tcp\"?"));
    assert!(protocol_name("50").unwrap_err().contains("without quotes"));
    assert_eq!(protocol_number(6), Ok(Protocol::Tcp));
    assert_eq!(protocol_number(58), Ok(Protocol::Icmpv6));
    assert_eq!(protocol_number(132), Ok(Protocol::Number(132)));
    assert!(protocol_number(0).is_err());
    assert!(protocol_number(256).is_err());
}

/// `::ffff:a.b.c.d` is IPv4 on the wire: refused everywhere, with the IPv4 spelling.
#[test]
fn ipv4_mapped_addresses_are_refused_with_the_ipv4_spelling() {
    let e = address("::ffff:10.99.0.2").unwrap_err();
    assert!(
        e.contains("IPv4-mapped") && e.contains("\"10.99.0.2\""),
        "{e}"
    );
    let e = prefix("::ffff:10.0.0.0/104").unwrap_err();
    assert!(e.contains("\"10.0.0.0/8\""), "{e}");
    assert!(prefix("::ffff:10.99.0.5")
        .unwrap_err()
        .contains("\"10.99.0.5\""));
    assert!(prefix("::ffff:0:0/96")
        .unwrap_err()
        .contains("\"0.0.0.0/0\""));
    // Prefixes that merely contain the mapped range, and neighbours of it, are fine.
    assert!(prefix("::/0").is_ok() && prefix("::/64").is_ok());
    assert!(address("::fffe:10.99.0.2").is_ok() && address("64:ff9b::10.99.0.2").is_ok());
}

/// One whitespace rule for every value: never trimmed, refused with the value suggested.
#[test]
fn whitespace_is_refused_in_every_value() {
    let e = as_written(" 80").unwrap_err();
    assert!(e.contains("did you mean \"80\""), "{e}");
    assert!(as_written("80 - 90").unwrap_err().contains("\"80-90\""));
    assert!(as_written("\tAQID=\n").unwrap_err().contains("\"AQID=\""));
    let words = as_written("web server").unwrap_err();
    assert!(
        words.contains("whitespace") && !words.contains("did you mean"),
        "{words}"
    );
    assert!(!as_written("   ").unwrap_err().contains("did you mean"));
    assert_eq!(as_written("80-90"), Ok("80-90"));
    // The port parser itself no longer trims either.
    assert!(port_range(" 80").is_err() && port_range("80 -90").is_err());
}
