//! The key parsers on any text: a host key file (`PrivateKey::from_base64`, what
//! `PrivateKey::load` reads), a public key (`PublicKey::from_base64`), and the same text as
//! a host's `public-key` in a policy. Beyond not panicking:
//! - a public key is kept in canonical form, and its printed form reads back as the same key
//!   (a private key file has one spelling);
//! - the policy and the plain parser agree on the key (the same X25519 shared secret);
//! - a key the policy accepts gives a contributory shared secret (not all-zero), and a
//!   canonical contributory key is accepted.

use std::sync::OnceLock;

use agent::keys::PrivateKey;
use policy_schema::PublicKey;
use x25519_dalek::StaticSecret;

use super::policy::FILE;

/// A point of order 8 (issue 11): its shared secret with any private key is all-zero.
pub const LOW_ORDER_KEY: &str = "4Ot6fDtBuK4WVuP68Z/EatoJjeucMrH9hmIFFl9JuAA=";

/// Parse the input as each kind of key.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(k) = PrivateKey::from_base64(text, "fuzzed key file") {
        assert_eq!(
            k.to_base64(),
            text.trim(),
            "a private key with two spellings"
        );
    }
    let parsed = PublicKey::from_base64(text);
    if let Some(k) = parsed {
        // Public keys are read in X25519's canonical form (bit 255 clear, reduced mod p),
        // so other spellings of a point are accepted; what is printed must read back as
        // the same key, and only canonical keys are kept.
        assert_eq!(
            PublicKey::from_base64(&k.to_base64()),
            Some(k),
            "a public key's printed form reads back as another key"
        );
        assert_eq!(k.0[31] & 0x80, 0, "a public key kept bit 255: {text}");
    }
    in_policy(text, parsed);
}

/// A policy whose only host has `key` as its public key.
pub fn policy_with_key(key: &str) -> String {
    format!(
        "version = 1\n[zones]\nlan = [\"10.0.0.0/24\"]\n\n[[hosts]]\nname = \"a\"\n\
         addresses = [\"10.0.0.1\"]\npublic-key = \"{key}\"\nzones = [\"lan\"]\n"
    )
}

fn in_policy(text: &str, parsed: Option<PublicKey>) {
    // Only what fits a TOML basic string unescaped: the value is then exactly `text`.
    if text.contains(['"', '\\']) || text.chars().any(char::is_control) {
        return;
    }
    match policy_schema::load(FILE, &policy_with_key(text)) {
        Ok(l) => {
            let k = l.policy.hosts[0].public_key;
            let p = parsed.expect("the policy accepts a key the parser refuses");
            assert_eq!(
                shared(&k),
                shared(&p),
                "the policy and the parser read different keys"
            );
            if low_order_refused() {
                assert!(contributory(&k), "accepted a low-order key: {text}");
            }
        }
        Err(e) => {
            let canonical = parsed.filter(|p| p.0[31] < 0x7f && text.trim() == text);
            if canonical.is_some_and(|p| contributory(&p)) {
                panic!("refused a good key {text}: {e}");
            }
        }
    }
}

fn me() -> StaticSecret {
    StaticSecret::from([7u8; 32])
}

fn shared(k: &PublicKey) -> [u8; 32] {
    me().diffie_hellman(&x25519_dalek::PublicKey::from(k.0))
        .to_bytes()
}

fn contributory(k: &PublicKey) -> bool {
    me().diffie_hellman(&x25519_dalek::PublicKey::from(k.0))
        .was_contributory()
}

/// Whether this tree refuses low-order keys (issue 11, fixed on another branch): the
/// contributory check arms itself once the fix is merged, so the campaign can run before.
fn low_order_refused() -> bool {
    static REFUSED: OnceLock<bool> = OnceLock::new();
    *REFUSED.get_or_init(|| policy_schema::load(FILE, &policy_with_key(LOW_ORDER_KEY)).is_err())
}
