//! Interoperability with standard tools: the SAs that `xfrm-agent render --show-keys`
//! prints (as `ip xfrm state add …` lines), turned into Wireshark's ESP SA table, and tshark
//! decrypting a capture with them. If tshark, which knows nothing of xfrm-agent, recovers
//! the inner packets, the SAs are plain RFC 4303 ESP with the keys the tool printed.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, ensure, Context};

/// One SA of the render output, in the terms of Wireshark's `esp_sa` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedSa {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub spi: u32,
    /// Wireshark's name of the encryption algorithm (its UAT value string).
    pub encryption: String,
    /// "0x…": for AES-GCM the key followed by its 4-byte salt, as `ip xfrm` takes it.
    pub encryption_key: String,
    /// Wireshark's name of the authentication algorithm ("NULL" for AEAD).
    pub authentication: String,
    pub authentication_key: String,
}

/// The `xfrm state add` lines of `render --show-keys` output. Errors on a state line it
/// cannot read, or an algorithm tshark 4.0 cannot decrypt (ChaCha20-Poly1305).
pub fn sas_from_render(text: &str) -> anyhow::Result<Vec<RenderedSa>> {
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("xfrm state add "))
        .map(|l| parse_state(l).with_context(|| format!("render line `{l}`")))
        .collect()
}

/// The n-th word after the first occurrence of `key`.
fn after_n<'a>(words: &[&'a str], key: &str, n: usize) -> Option<&'a str> {
    let i = words.iter().position(|w| *w == key)?;
    words.get(i + n).copied()
}

/// `KEYWORD 'NAME' 0xKEY` → (NAME, 0xKEY).
fn name_and_key<'a>(words: &[&'a str], keyword: &str) -> anyhow::Result<(&'a str, &'a str)> {
    let name = after_n(words, keyword, 1).with_context(|| format!("no `{keyword}`"))?;
    let key = after_n(words, keyword, 2).with_context(|| format!("no key after {keyword}"))?;
    Ok((unquote(name), key))
}

fn unquote(w: &str) -> &str {
    w.trim_matches('\'').trim_matches('"')
}

fn parse_state(line: &str) -> anyhow::Result<RenderedSa> {
    let w: Vec<&str> = line.split_whitespace().collect();
    // The first `src`/`dst` are the SA's addresses; the selector's come later, after `sel`.
    let field = |k: &str| after_n(&w, k, 1).with_context(|| format!("no `{k}`"));
    let spi = field("spi")?;
    let spi = u32::from_str_radix(spi.trim_start_matches("0x"), 16)
        .with_context(|| format!("spi {spi}"))?;
    let (encryption, encryption_key, authentication, authentication_key) = if w.contains(&"aead") {
        let (name, key) = name_and_key(&w, "aead")?;
        let icv: u32 = after_n(&w, "aead", 3).context("aead icv")?.parse()?;
        ensure!(
            name == "rfc4106(gcm(aes))",
            "tshark cannot decrypt AEAD {name}"
        );
        ensure!(matches!(icv, 64 | 96 | 128), "AES-GCM ICV of {icv} bits");
        let enc = format!("AES-GCM with {} octet ICV [RFC4106]", icv / 8);
        (enc, key.to_string(), "NULL".to_string(), String::new())
    } else {
        let (enc, key) = name_and_key(&w, "enc")?;
        let (auth, auth_key) = name_and_key(&w, "auth-trunc")?;
        let bits: u32 = after_n(&w, "auth-trunc", 3)
            .context("truncation bits")?
            .parse()?;
        (
            encryption_name(enc)?.to_string(),
            key.to_string(),
            authentication_name(auth, bits)?.to_string(),
            auth_key.to_string(),
        )
    };
    ensure!(
        encryption_key.starts_with("0x"),
        "key without 0x: {encryption_key}"
    );
    Ok(RenderedSa {
        src: field("src")?.parse()?,
        dst: field("dst")?.parse()?,
        spi,
        encryption,
        encryption_key,
        authentication,
        authentication_key,
    })
}

fn encryption_name(kernel: &str) -> anyhow::Result<&'static str> {
    Ok(match kernel {
        "cbc(aes)" => "AES-CBC [RFC3602]",
        "cbc(des3_ede)" => "TripleDES-CBC [RFC2451]",
        other => bail!("no Wireshark name for encryption {other}"),
    })
}

fn authentication_name(kernel: &str, bits: u32) -> anyhow::Result<&'static str> {
    Ok(match (kernel, bits) {
        ("hmac(sha1)", 96) => "HMAC-SHA-1-96 [RFC2404]",
        ("hmac(sha256)", 128) => "HMAC-SHA-256-128 [RFC4868]",
        ("hmac(sha384)", 192) => "HMAC-SHA-384-192 [RFC4868]",
        ("hmac(sha512)", 256) => "HMAC-SHA-512-256 [RFC4868]",
        (other, b) => bail!("no Wireshark name for {other} truncated to {b} bits"),
    })
}

/// The `esp_sa` UAT file (Wireshark ≥ 2.x, 8 fields: protocol, source, destination, SPI,
/// encryption, key, authentication, key).
pub fn esp_sa_uat(sas: &[RenderedSa]) -> String {
    let mut out = String::from("# esp_sa: from xfrm-agent render --show-keys\n");
    for s in sas {
        let fam = if s.src.is_ipv6() { "IPv6" } else { "IPv4" };
        out.push_str(&format!(
            "\"{fam}\",\"{}\",\"{}\",\"{:#010x}\",\"{}\",\"{}\",\"{}\",\"{}\"\n",
            s.src,
            s.dst,
            s.spi,
            s.encryption,
            s.encryption_key,
            s.authentication,
            s.authentication_key
        ));
    }
    out
}

/// One ESP packet as tshark dissected it with the SA table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dissected {
    pub spi: u32,
    /// The inner TCP ports, when tshark decrypted the packet into TCP.
    pub tcp_ports: Option<(u16, u16)>,
    /// The inner TCP payload (empty for a bare ACK or when not decrypted).
    pub payload: Vec<u8>,
}

/// Every ESP packet of `pcap`, dissected by tshark with `sas` (a private configuration
/// directory under `dir`: the user's Wireshark profile is never read or written).
pub fn tshark_dissect(
    dir: &Path,
    pcap: &Path,
    sas: &[RenderedSa],
) -> anyhow::Result<Vec<Dissected>> {
    let conf = dir.join("wireshark");
    std::fs::create_dir_all(&conf)?;
    std::fs::write(conf.join("esp_sa"), esp_sa_uat(sas))?;
    let out = Command::new("tshark")
        .env("WIRESHARK_CONFIG_DIR", &conf)
        .args(["-n", "-o", "esp.enable_encryption_decode:TRUE", "-r"])
        .arg(pcap)
        .args(["-Y", "esp", "-T", "fields", "-E", "separator=/t"])
        .args(["-e", "esp.spi", "-e", "tcp.srcport", "-e", "tcp.dstport"])
        .args(["-e", "tcp.payload"])
        .output()
        .context("running tshark (scripts/install-deps installs it)")?;
    ensure!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse_fields)
        .collect()
}

/// The directions (source, destination) of `sas` on which no packet decrypted to a TCP
/// payload starting with `marker`, each with its SAs' SPIs. A direction, not each SA: near an
/// epoch step a render holds two SAs for one direction (the next epoch's inbound SA is
/// installed ahead of the switch, the last one's stays for the grace period), and traffic
/// uses one of them — which one depends on the second the probe runs.
pub fn directions_without_payload(
    sas: &[RenderedSa],
    dissected: &[Dissected],
    marker: &[u8],
) -> Vec<(IpAddr, IpAddr, Vec<u32>)> {
    let mut directions: Vec<(IpAddr, IpAddr, Vec<u32>)> = Vec::new();
    for sa in sas {
        match directions
            .iter_mut()
            .find(|(s, d, _)| (*s, *d) == (sa.src, sa.dst))
        {
            Some((_, _, spis)) => spis.push(sa.spi),
            None => directions.push((sa.src, sa.dst, vec![sa.spi])),
        }
    }
    directions.retain(|(_, _, spis)| {
        !dissected
            .iter()
            .any(|d| spis.contains(&d.spi) && d.payload.starts_with(marker))
    });
    directions
}

fn parse_fields(line: &str) -> anyhow::Result<Dissected> {
    let f: Vec<&str> = line.split('\t').collect();
    let spi = f.first().copied().unwrap_or_default();
    let spi = match spi.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => spi.parse(),
    }
    .with_context(|| format!("tshark line `{line}`: spi"))?;
    let port = |i: usize| f.get(i).and_then(|p| p.parse::<u16>().ok());
    let hex = f.get(3).copied().unwrap_or_default().replace(':', "");
    let payload = (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect();
    Ok(Dissected {
        spi,
        tcp_ports: port(1).zip(port(2)),
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RENDER: &str = "\
# xfrm-agent render for host peer — feed to `ip -batch -`
xfrm state add src 10.10.0.10 dst 10.10.0.12 proto esp spi 0x4be53f21 reqid 2046820352 mode transport replay-window 1024 flag esn aead 'rfc4106(gcm(aes))' 0x918fef933cf2717b88b8be76b0658a8ecc977f81 128 sel src 10.10.0.10/32 dst 10.10.0.12/32 limit time-soft 5500 limit time-hard 7300
xfrm state add src fd00:10::12 dst fd00:10::10 proto esp spi 0x00000102 reqid 1 mode transport replay-window 1024 enc 'cbc(aes)' 0x000102030405060708090a0b0c0d0e0f auth-trunc 'hmac(sha256)' 0xaabb 128 sel src fd00:10::12/128 dst fd00:10::10/128
xfrm policy add src 10.10.0.12/32 dst 0.0.0.0/0 proto icmp dir out priority 65552 action allow
";

    #[test]
    fn render_states_become_wireshark_sas() {
        let sas = sas_from_render(RENDER).unwrap();
        assert_eq!(sas.len(), 2);
        assert_eq!(sas[0].src, "10.10.0.10".parse::<IpAddr>().unwrap());
        assert_eq!(sas[0].dst, "10.10.0.12".parse::<IpAddr>().unwrap());
        assert_eq!(sas[0].spi, 0x4be5_3f21);
        assert_eq!(sas[0].encryption, "AES-GCM with 16 octet ICV [RFC4106]");
        assert_eq!(
            sas[0].encryption_key,
            "0x918fef933cf2717b88b8be76b0658a8ecc977f81"
        );
        assert_eq!(sas[0].authentication, "NULL");
        assert_eq!(sas[1].encryption, "AES-CBC [RFC3602]");
        assert_eq!(sas[1].encryption_key, "0x000102030405060708090a0b0c0d0e0f");
        assert_eq!(sas[1].authentication, "HMAC-SHA-256-128 [RFC4868]");
        assert_eq!(sas[1].authentication_key, "0xaabb");
        let uat = esp_sa_uat(&sas);
        assert!(uat.contains(
            "\"IPv4\",\"10.10.0.10\",\"10.10.0.12\",\"0x4be53f21\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"0x918fef933cf2717b88b8be76b0658a8ecc977f81\",\"NULL\",\"\"\n"
        ));
        assert!(uat.contains("\"IPv6\",\"fd00:10::12\",\"fd00:10::10\",\"0x00000102\","));
    }

    #[test]
    fn undecryptable_algorithms_are_refused() {
        let chacha = "xfrm state add src 10.0.0.1 dst 10.0.0.2 proto esp spi 0x1 reqid 1 mode transport aead 'rfc7539esp(chacha20,poly1305)' 0x00 128 sel src 10.0.0.1/32 dst 10.0.0.2/32";
        assert!(sas_from_render(chacha).is_err());
    }

    #[test]
    fn a_direction_needs_its_payload_on_one_of_its_sas() {
        let sa = |src: &str, dst: &str, spi| RenderedSa {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            spi,
            encryption: String::new(),
            encryption_key: String::new(),
            authentication: String::new(),
            authentication_key: String::new(),
        };
        let seen = |spi, payload: &[u8]| Dissected {
            spi,
            tcp_ports: Some((443, 50000)),
            payload: payload.to_vec(),
        };
        // Near an epoch step: site -> peer has this epoch's SA and the next one's, ahead.
        let sas = [
            sa("10.10.0.10", "10.10.0.12", 1),
            sa("10.10.0.10", "10.10.0.12", 2),
            sa("10.10.0.12", "10.10.0.10", 3),
        ];
        let both = [seen(1, b"xfrm-lab probe 0"), seen(3, b"xfrm-lab probe 0")];
        assert!(directions_without_payload(&sas, &both, b"xfrm-lab probe").is_empty());
        // The reply missing (only an ACK on site -> peer) is still a failure, naming both SAs.
        let no_reply = [seen(1, b""), seen(3, b"xfrm-lab probe 0")];
        let missing = directions_without_payload(&sas, &no_reply, b"xfrm-lab probe");
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].2, vec![1, 2]);
    }

    #[test]
    fn tshark_fields_parse_with_and_without_decryption() {
        let d = parse_fields("0x4be53f21\t51000\t443\t78:66:72:6d").unwrap();
        assert_eq!(d.spi, 0x4be5_3f21);
        assert_eq!(d.tcp_ports, Some((51000, 443)));
        assert_eq!(d.payload, b"xfrm");
        let d = parse_fields("258\t\t\t").unwrap();
        assert_eq!((d.spi, d.tcp_ports, d.payload.len()), (258, None, 0));
    }
}
