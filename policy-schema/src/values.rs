//! Scalar values of the format: each parser takes what the file says and returns the typed
//! value or a message fragment that says what is wrong and what was expected. The caller
//! prefixes the location, the key and the value as written.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{PortRange, Protocol, PublicKey};
use crate::suggest::did_you_mean;

pub(crate) const DURATION_EXPECTED: &str =
    "expected seconds as an integer, or number+unit groups such as \"90s\", \"10m\", \"1h30m\", \"2d\"";

/// `"1h30m"` → 5400. Units s, m, h, d; every group needs its unit.
pub(crate) fn duration(s: &str) -> Result<u64, String> {
    let bad = || format!("is not a duration ({DURATION_EXPECTED})");
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        if digits.is_empty() {
            return Err(bad());
        }
        // Past u64 it is far beyond every range anyway: saturate and let the range say so.
        let n: u64 = digits.parse().unwrap_or(u64::MAX);
        total = total.saturating_add(n.saturating_mul(unit));
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!(
            "has no unit after {digits} ({DURATION_EXPECTED}; did you mean \"{digits}s\"?)"
        ));
    }
    if s.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

/// `secs` if it lies in `min..=max`, else why not (both bounds spelled as seconds and
/// with units).
pub(crate) fn duration_in(secs: u64, min: u64, max: u64) -> Result<u64, String> {
    let range = format!("expected {} to {}", spelled(min), spelled(max));
    match secs {
        _ if secs < min => Err(format!("is too short ({range})")),
        _ if secs > max => Err(format!("is too long ({range})")),
        _ => Ok(secs),
    }
}

/// `86400` → `"86400s (1d)"`; seconds alone when no larger unit divides them.
fn spelled(secs: u64) -> String {
    let unit = [(86_400, 'd'), (3_600, 'h'), (60, 'm')]
        .into_iter()
        .find(|(u, _)| secs >= *u && secs.is_multiple_of(*u));
    match unit {
        Some((u, c)) => format!("{secs}s ({}{c})", secs / u),
        None => format!("{secs}s"),
    }
}

/// Integer seconds.
pub(crate) fn duration_int(i: i64) -> Result<u64, String> {
    u64::try_from(i).map_err(|_| format!("is negative ({DURATION_EXPECTED})"))
}

const PORT_EXPECTED: &str = "expected 1-65535";

/// One port number.
pub(crate) fn port(i: i64) -> Result<u16, String> {
    if i == 0 {
        return Err(format!(
            "is not a usable port: port 0 matches nothing on the wire ({PORT_EXPECTED})"
        ));
    }
    u16::try_from(i)
        .ok()
        .filter(|_| i > 0)
        .ok_or_else(|| format!("is out of range ({PORT_EXPECTED})"))
}

/// A string value as written: whitespace is never trimmed or skipped, anywhere (`" 80"`,
/// `"80 - 90"` and a key with a leading space are all refused alike), with the value
/// without it suggested unless the whitespace separates two words.
pub(crate) fn as_written(s: &str) -> Result<&str, String> {
    if !s.contains(char::is_whitespace) {
        return Ok(s);
    }
    let words = s.split_whitespace().collect::<Vec<_>>();
    let between_words = words.windows(2).any(|w| {
        let (a, b) = (w[0].chars().last(), w[1].chars().next());
        a.is_some_and(char::is_alphanumeric) && b.is_some_and(char::is_alphanumeric)
    });
    let hint = match words.concat() {
        joined if !joined.is_empty() && !between_words => {
            format!("; did you mean \"{}\"?", crate::text::shown(&joined))
        }
        _ => String::new(),
    };
    Err(format!(
        "contains whitespace (expected the value alone, without spaces{hint})"
    ))
}

/// `"80"` or `"16992-16995"`.
pub(crate) fn port_range(s: &str) -> Result<PortRange, String> {
    let num = |t: &str| -> Result<u16, String> {
        if t.is_empty() || !t.chars().all(|c| c.is_ascii_digit()) {
            return Err(
                "is not a port or port range (expected a number 1-65535 or \"lo-hi\", e.g. \"16992-16995\")"
                    .to_string(),
            );
        }
        port(t.parse::<i64>().unwrap_or(i64::MAX))
    };
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => {
            let p = num(s)?;
            (p, p)
        }
    };
    if lo > hi {
        return Err(format!(
            "is an inverted range (expected lo <= hi; did you mean \"{hi}-{lo}\"?)"
        ));
    }
    Ok(PortRange { lo, hi })
}

/// A prefix `"10.0.0.0/24"` or a bare address (a /32 or /128). Host bits must be clear:
/// "10.10.0.1/24" most often means a typo for the network, and the kernel would silently
/// mask it (xfrm_selector_match compares under the prefix length).
/// Longest path accepted (Linux PATH_MAX).
const MAX_PATH: usize = 4096;

/// An absolute path without `..` (the agent resolves nothing relative to its working
/// directory, and a path that climbs is a mistake or a trick).
pub(crate) fn absolute_path(s: &str) -> Result<std::path::PathBuf, String> {
    if !s.starts_with('/') {
        return Err("is a relative path, expected an absolute path (starting with \"/\"; the agent does not resolve paths against its working directory)".into());
    }
    if s.len() > MAX_PATH || s.contains('\0') {
        return Err(format!(
            "is not a usable path (expected at most {MAX_PATH} bytes, no NUL)"
        ));
    }
    if s.split('/').any(|c| c == "..") {
        return Err("contains \"..\", expected a path without parent-directory steps".into());
    }
    Ok(std::path::PathBuf::from(s))
}

pub(crate) fn prefix(s: &str) -> Result<IpNet, String> {
    if let Ok(a) = s.parse::<IpAddr>() {
        return not_mapped(IpNet::from(a));
    }
    let expected = "expected a prefix such as \"10.0.0.0/24\" or \"fd00::/64\", or an address";
    let Some((addr, len)) = s.split_once('/') else {
        return Err(format!("is not an address or prefix ({expected})"));
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return Err(format!("is not an address or prefix ({expected})"));
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let net = len
        .parse::<u8>()
        .ok()
        .and_then(|l| IpNet::new(addr, l).ok())
        .ok_or_else(|| format!("has an invalid prefix length (expected /0 to /{max})"))?;
    if net.trunc() != net {
        return Err(format!(
            "has host bits set (did you mean \"{}\"?)",
            net.trunc()
        ));
    }
    not_mapped(net)
}

/// `::ffff:0:0/96`, where IPv6 spells IPv4 addresses (RFC 4291 section 2.5.5.2).
const MAPPED: ipnet::Ipv6Net =
    match ipnet::Ipv6Net::new(std::net::Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96) {
        Ok(n) => n,
        Err(_) => panic!("a /96 is valid"),
    };

/// Refuse IPv4-mapped IPv6 addresses and prefixes: on the wire (and in the kernel's
/// selectors) those packets are IPv4, so SAs and policies for the IPv6 spelling never match.
fn not_mapped(net: IpNet) -> Result<IpNet, String> {
    let IpNet::V6(v6) = net else { return Ok(net) };
    if !MAPPED.contains(&v6) {
        return Ok(net);
    }
    let v4 = v6.addr().to_ipv4_mapped().expect("inside ::ffff:0:0/96");
    let spelled = match v6.prefix_len() {
        128 => v4.to_string(),
        len => format!("{v4}/{}", len - 96),
    };
    Err(format!("is an IPv4-mapped IPv6 address: the kernel sees that traffic as IPv4, so IPsec for this spelling would never match (expected the IPv4 spelling \"{spelled}\")"))
}

/// A plain unicast address (a host's or a cluster's own address).
pub(crate) fn address(s: &str) -> Result<IpAddr, String> {
    let a: IpAddr = match s.parse() {
        Ok(a) => a,
        Err(_)
            if s.contains('/')
                && s.split('/')
                    .next()
                    .is_some_and(|a| a.parse::<IpAddr>().is_ok()) =>
        {
            return Err(format!(
                "is a prefix (expected a plain address without /length, e.g. \"{}\")",
                s.split('/').next().unwrap_or_default()
            ))
        }
        Err(_) => {
            return Err("is not an IP address (expected e.g. \"10.0.0.1\" or \"fd00::1\")".into())
        }
    };
    not_mapped(IpNet::from(a))?;
    let what = match a {
        _ if a.is_unspecified() => Some("the unspecified address"),
        _ if a.is_loopback() => Some("a loopback address"),
        _ if a.is_multicast() => Some("a multicast address"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("the broadcast address"),
        _ => None,
    };
    match what {
        Some(w) => Err(format!("is {w} (expected a unicast address)")),
        None => Ok(a),
    }
}

/// Standard base64 of exactly 32 bytes, as `wg pubkey` and `xfrm-agent pubkey` print; kept
/// in its canonical spelling (`curve::canonical`) so that one point is one key everywhere.
pub(crate) fn public_key(s: &str) -> Result<PublicKey, String> {
    use base64::Engine;
    let expected = "expected standard base64 of exactly 32 bytes: 43 characters and '='";
    if s.is_empty() {
        return Err(format!("is not a key ({expected})"));
    }
    let base64_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=');
    if let Some(c) = s
        .chars()
        .find(|&c| !base64_char(c) && !matches!(c, '-' | '_'))
    {
        return Err(format!(
            "contains {}, which is not a base64 character ({expected})",
            crate::text::char_desc(c)
        ));
    }
    if s.contains(['-', '_']) {
        return Err(format!(
            "uses the URL-safe base64 alphabet ({expected}, with + and /)"
        ));
    }
    // Into a buffer that fits anything a key-sized string decodes to, not a heap Vec per
    // host; longer strings cannot be keys and take the general path for the message.
    let mut buf = [0u8; 64];
    let bytes = if s.len() <= 84 {
        let n = base64::engine::general_purpose::STANDARD
            .decode_slice(s, &mut buf)
            .map_err(|_| format!("is not valid base64 ({expected})"))?;
        &buf[..n]
    } else {
        let n = base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|_| format!("is not valid base64 ({expected})"))?
            .len();
        return Err(format!("decodes to {n} bytes ({expected})"));
    };
    let n = bytes.len();
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| format!("decodes to {n} bytes ({expected})"))?;
    if key == [0; 32] {
        // An all-zero X25519 point yields an all-zero shared secret: a placeholder, not a key.
        return Err("is the all-zero placeholder (expected a real public key, as `xfrm-agent pubkey` prints)".into());
    }
    let canonical = crate::curve::canonical(key);
    if crate::curve::is_low_order(&canonical) {
        return Err(
            "is a low-order X25519 point: its shared secret with any key is all zeros, so every SA key of this entry would follow from the policy file alone (expected a real public key, as `xfrm-agent pubkey` prints)"
                .into(),
        );
    }
    Ok(PublicKey(canonical))
}

/// A u32 written as an integer.
pub(crate) fn u32_int(i: i64) -> Result<u32, String> {
    u32::try_from(i).map_err(|_| "is out of range (expected 0 to 4294967295)".to_string())
}

/// A u32 written as a `"0x…"` hex string.
pub(crate) fn u32_hex(s: &str) -> Result<u32, String> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .ok_or_else(|| {
            "is not a number (expected an integer or a \"0x…\" hex string)".to_string()
        })?;
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("is not a hex number (expected \"0x\" followed by hex digits)".into());
    }
    u32::from_str_radix(digits, 16)
        .map_err(|_| "is out of range (expected at most 0xffffffff)".to_string())
}

pub(crate) const NAME_EXPECTED: &str =
    "expected 1-63 characters of A-Z a-z 0-9 _ . -, starting with a letter or digit";

/// Names of zones, hosts, clusters, exemptions and rules: `[A-Za-z0-9][A-Za-z0-9_.-]{0,62}`.
pub(crate) fn name(s: &str) -> Result<(), String> {
    let mut chars = s.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok && s.len() <= 63 {
        Ok(())
    } else {
        Err(format!("is not a valid name ({NAME_EXPECTED})"))
    }
}

pub(crate) const PROTOCOL_NAMES: [&str; 4] = ["icmp", "icmpv6", "tcp", "udp"];

/// Protocols people write by name that the format takes by number.
const PROTOCOL_NUMBERS: [(&str, u8); 9] = [
    ("igmp", 2),
    ("ipip", 4),
    ("dccp", 33),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("ospf", 89),
    ("sctp", 132),
    ("udplite", 136),
];

/// `"tcp"` and friends.
pub(crate) fn protocol_name(s: &str) -> Result<Protocol, String> {
    match s {
        "icmp" => Ok(Protocol::Icmp),
        "icmpv6" => Ok(Protocol::Icmpv6),
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        _ => {
            let lower = s.to_ascii_lowercase();
            let hint = match PROTOCOL_NUMBERS.iter().find(|(n, _)| *n == lower) {
                Some((_, num)) => format!(" (did you mean {num}?)"),
                None if s.parse::<u8>().is_ok() => format!(" (did you mean {s}, without quotes?)"),
                None => did_you_mean(s, PROTOCOL_NAMES),
            };
            Err(format!(
                "is not one of icmp, icmpv6, tcp, udp or an IP protocol number 1-255{hint}"
            ))
        }
    }
}

/// An IP protocol number; the four named ones are normalised to their names so that
/// `6` and `"tcp"` compare equal everywhere downstream.
pub(crate) fn protocol_number(i: i64) -> Result<Protocol, String> {
    match i {
        1 => Ok(Protocol::Icmp),
        6 => Ok(Protocol::Tcp),
        17 => Ok(Protocol::Udp),
        58 => Ok(Protocol::Icmpv6),
        0 => Err("is not a protocol: 0 would mean every protocol in an XFRM selector (expected 1-255, or omit protocol)".into()),
        2..=255 => Ok(Protocol::Number(i as u8)),
        _ => Err("is out of range (expected an IP protocol number 1-255)".into()),
    }
}

#[cfg(test)]
#[path = "values_tests.rs"]
mod tests;
