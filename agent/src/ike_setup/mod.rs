//! Everything IKEv2 keying needs from the policy and this host's files, in one value for
//! the daemon: the `ike` configuration (our certificate, key and identity, the authorities'
//! anchors and CRLs), the policy's admission, and the keying timers.

mod admission;
#[cfg(test)]
mod handshake_tests;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ike::cert::{CertVerifier, RevocationMode};
use ike::codec::{Id, IdType};
use ike::crypto::Cipher as IkeCipher;
use policy_schema::{Authority, Cipher, Encapsulation, Policy, Revocation};

pub use admission::{cert_identity, PolicyAdmission};

use crate::credentials::{HostCredentials, MAX_CREDENTIAL_FILE_SIZE};
use crate::keying::{Admission, Settings};
use crate::load::PolicyFiles;

/// What the daemon builds its [`crate::keying::Keying`] from.
pub struct IkeSetup {
    pub config: ike::sa::Config,
    pub admission: Arc<dyn Admission>,
    pub settings: Settings,
}

/// The IKEv2 setup of host `host`, or `None` when no pair of this host is keyed over IKEv2
/// (no authority admits peers here and no rule here says `key-exchange = "ikev2"`).
/// Errors name the file: host credentials missing or bad, an authority's CA or CRL file
/// unreadable or not a certificate/CRL.
pub fn ike_setup(
    policy: &Policy,
    host: &str,
    files: &PolicyFiles,
) -> anyhow::Result<Option<IkeSetup>> {
    let settings = settings(policy);
    let admission = PolicyAdmission::new(policy, host, &settings);
    if !admission.keys_any() {
        return Ok(None);
    }
    let (Some(cert), Some(key)) = (&files.cert, &files.cert_key) else {
        anyhow::bail!(
            "host {host}: the policy keys some of its pairs with IKEv2 (a rule with key-exchange = \"ikev2\" or an authority admitting peers), which needs this host's certificate and key: give --cert FILE and --cert-key FILE"
        );
    };
    let id = files.cert_id.as_deref().map(parse_id).transpose()?;
    let creds = HostCredentials::load(cert, key, id)?;
    let verifier = verifier(policy)?;
    let mut config = ike::sa::Config::new(creds.key, creds.certificates, creds.id, verifier);
    config.esp_ciphers = esp_ciphers(policy, config.esp_ciphers);
    config.force_encap = (policy.host(host)).is_some_and(|h| h.encapsulation == Encapsulation::Udp);
    tracing::info!(host, subject = %creds.subject, "IKEv2 keying configured");
    Ok(Some(IkeSetup {
        config,
        admission: Arc::new(admission),
        settings,
    }))
}

/// Keying timers from `[defaults]`: Child SAs rekeyed every `rekey-interval` (up to a
/// tenth earlier, spread over peers), IKE SAs every four intervals, old inbound SAs kept
/// `grace`; liveness checks after 30 s of silence.
pub fn settings(policy: &Policy) -> Settings {
    let d = &policy.defaults;
    let interval = Duration::from_secs(d.rekey_interval.max(60));
    Settings {
        rekey_after: interval,
        rekey_jitter: interval / 10,
        ike_rekey_after: interval * 4,
        grace: Duration::from_secs(d.grace),
        ..Settings::default()
    }
}

/// The ESP ciphers to offer: those of the rules (file order) the ike crate supports,
/// then the rest of `defaults`.
fn esp_ciphers(policy: &Policy, defaults: Vec<IkeCipher>) -> Vec<IkeCipher> {
    let mut out: Vec<IkeCipher> = Vec::new();
    let ruled = policy.rules.iter().filter(|r| r.action.uses_esp());
    for c in ruled.filter_map(|r| ike_cipher(r.cipher)).chain(defaults) {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// The rule cipher as the ike crate names it (ChaCha20 and 3DES are not negotiated).
fn ike_cipher(c: Cipher) -> Option<IkeCipher> {
    match c {
        Cipher::AesGcm128 => Some(IkeCipher::AesGcm16 { bits: 128 }),
        Cipher::AesGcm256 => Some(IkeCipher::AesGcm16 { bits: 256 }),
        Cipher::AesCbcHmacSha256 => Some(IkeCipher::AesCbcHmacSha256 { bits: 128 }),
        Cipher::Chacha20Poly1305 | Cipher::TripleDesHmacSha1 => None,
    }
}

/// A verifier holding every `[[authorities]]` entry with its CA certificates and CRLs.
pub fn verifier(policy: &Policy) -> anyhow::Result<CertVerifier> {
    let mut v = CertVerifier::new();
    for a in &policy.authorities {
        add_authority(&mut v, a)?;
    }
    Ok(v)
}

fn add_authority(v: &mut CertVerifier, a: &Authority) -> anyhow::Result<()> {
    // Each file alone first (a CRL with the CA certificates, which must have signed it),
    // so that an error names it.
    let read = |kind: &str, path: &Path, cas: &[&[u8]]| {
        let snap = policy_schema::file::read_regular(path, MAX_CREDENTIAL_FILE_SIZE)
            .with_context(|| format!("authority {}: {kind} {}", a.name, path.display()))?;
        let (cas, crls): (&[&[u8]], &[&[u8]]) = match kind {
            "CRL" => (cas, &[&snap.bytes]),
            _ => (&[&snap.bytes], &[]),
        };
        CertVerifier::new()
            .add_authority(&a.name, cas, crls, RevocationMode::Relaxed)
            .with_context(|| format!("authority {}: {kind} {}", a.name, path.display()))?;
        anyhow::Ok(snap.bytes)
    };
    let cas = (a.ca_certificates.iter())
        .map(|p| read("CA certificate", p, &[]))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let crls = (a.crls.iter())
        .map(|p| read("CRL", p, &slices(&cas)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mode = match a.revocation {
        Revocation::Strict => RevocationMode::Strict,
        Revocation::Relaxed => RevocationMode::Relaxed,
    };
    v.add_authority(&a.name, &slices(&cas), &slices(&crls), mode)
        .with_context(|| format!("authority {}", a.name))
}

fn slices(v: &[Vec<u8>]) -> Vec<&[u8]> {
    v.iter().map(Vec::as_slice).collect()
}

/// `--cert-id`: an IP address, `user@domain` (RFC822), or a host name (FQDN); a DN is the
/// default (the certificate's subject), so it needs no flag.
pub fn parse_id(s: &str) -> anyhow::Result<Id> {
    let s = s.trim();
    let (id_type, data) = if let Ok(ip) = s.parse::<IpAddr>() {
        match ip {
            IpAddr::V4(a) => (IdType::IPV4_ADDR, a.octets().to_vec()),
            IpAddr::V6(a) => (IdType::IPV6_ADDR, a.octets().to_vec()),
        }
    } else if s.contains('=') {
        anyhow::bail!(
            "--cert-id {s:?}: a DN identity is the default (the certificate's subject); give an address, a host name or user@domain, or leave --cert-id out"
        );
    } else if s.contains('@') {
        (IdType::RFC822_ADDR, s.as_bytes().to_vec())
    } else if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
    {
        (IdType::FQDN, s.as_bytes().to_vec())
    } else {
        anyhow::bail!("--cert-id {s:?}: expected an IP address, a host name or user@domain");
    };
    Ok(Id { id_type, data })
}
