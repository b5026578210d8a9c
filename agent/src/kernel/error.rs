//! Kernel errors, classified: which are answers (idempotence), which name a missing kernel
//! feature, which are worth a retry.

use std::fmt;

/// What an errno from the XFRM netlink interface means for us.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// EEXIST: adding what exists (the object needs an update instead).
    Exists,
    /// ESRCH/ENOENT: the object is not there (a delete is then done).
    NotFound,
    /// EPERM/EACCES: needs CAP_NET_ADMIN in the namespace.
    Permission,
    /// This kernel lacks a feature (ESP, an algorithm); the text names it and its option.
    MissingFeature(String),
    /// ENOBUFS/EAGAIN/EBUSY/EINTR: transient.
    Transient,
    /// EINVAL and the rest: the request itself is wrong.
    Invalid,
}

/// A NACK from the kernel: errno plus the extended-ack message (NETLINK_EXT_ACK), if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nack {
    pub errno: i32,
    pub message: Option<String>,
}

impl Nack {
    pub fn kind(&self) -> ErrorKind {
        match self.errno {
            libc::EEXIST => ErrorKind::Exists,
            libc::ESRCH | libc::ENOENT if !self.is_algorithm_missing() => ErrorKind::NotFound,
            libc::EPERM | libc::EACCES => ErrorKind::Permission,
            libc::ENOBUFS | libc::EAGAIN | libc::EBUSY | libc::EINTR => ErrorKind::Transient,
            _ => ErrorKind::Invalid,
        }
    }
    /// xfrm_user.c answers "Requested AEAD/CRYPT/AUTH algorithm not found" (ENOSYS) when the
    /// crypto API cannot instantiate the transform.
    fn is_algorithm_missing(&self) -> bool {
        self.message
            .as_deref()
            .is_some_and(|m| m.contains("algorithm not found"))
            || self.errno == libc::ENOSYS
    }
}

impl fmt::Display for Nack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let io = std::io::Error::from_raw_os_error(self.errno);
        match &self.message {
            Some(m) => write!(f, "{m} ({io})"),
            None => write!(f, "{io}"),
        }
    }
}

/// Any failure of the netlink layer.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("netlink socket: {0}")]
    Io(std::io::Error),
    #[error("kernel refused: {0}")]
    Nack(Nack),
    #[error("{0}")]
    Classified(ErrorKindText),
    #[error("cannot decode kernel message: {0}")]
    Decode(String),
    #[error("cannot enter network namespace {name} (/run/netns/{name}): {error}")]
    Netns { name: String, error: std::io::Error },
}

impl From<std::io::Error> for KernelError {
    fn from(e: std::io::Error) -> KernelError {
        KernelError::Io(e)
    }
}

/// A classified error with its human text (missing feature, permission).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorKindText {
    pub kind: ErrorKind,
    pub text: String,
}

impl fmt::Display for ErrorKindText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl KernelError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            KernelError::Io(e) if e.raw_os_error() == Some(libc::EPERM) => ErrorKind::Permission,
            KernelError::Io(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOBUFS | libc::EAGAIN | libc::EINTR)
                ) =>
            {
                ErrorKind::Transient
            }
            KernelError::Io(_) | KernelError::Decode(_) | KernelError::Netns { .. } => {
                ErrorKind::Invalid
            }
            KernelError::Nack(n) => n.kind(),
            KernelError::Classified(c) => c.kind.clone(),
        }
    }
    /// Whether doing the same thing again may succeed (after a re-observe for Exists and
    /// NotFound, as-is for transient errors).
    pub fn can_retry(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::Exists | ErrorKind::NotFound | ErrorKind::Transient
        )
    }
}

/// The kernel option behind a crypto algorithm name, for "this kernel lacks X" messages.
pub fn crypto_config_hint(alg: &str) -> &'static str {
    if alg.contains("gcm") {
        "CONFIG_CRYPTO_GCM"
    } else if alg.contains("chacha") {
        "CONFIG_CRYPTO_CHACHA20POLY1305"
    } else if alg.contains("des3") {
        "CONFIG_CRYPTO_DES"
    } else if alg.contains("cbc") {
        "CONFIG_CRYPTO_CBC and CONFIG_CRYPTO_AES"
    } else if alg.contains("sha256") {
        "CONFIG_CRYPTO_HMAC and CONFIG_CRYPTO_SHA256"
    } else if alg.contains("sha1") {
        "CONFIG_CRYPTO_HMAC and CONFIG_CRYPTO_SHA1"
    } else {
        "the matching CONFIG_CRYPTO_* option"
    }
}

/// Turn a NACK on an SA write into "this kernel lacks …" when that is what it means:
/// EPROTONOSUPPORT "Requested type not found" is xfrm_get_type() failing (no ESP module);
/// ENOSYS/ENOENT "Requested … algorithm not found" names the transform. `algs` are the SA's
/// algorithm names, in the order AEAD or (enc, auth).
pub fn classify_sa_nack(nack: &Nack, is_v6: bool, algs: &[&str]) -> Option<ErrorKindText> {
    let msg = nack.message.as_deref().unwrap_or("");
    if nack.errno == libc::EPROTONOSUPPORT {
        let opt = if is_v6 {
            "CONFIG_INET6_ESP"
        } else {
            "CONFIG_INET_ESP"
        };
        return Some(ErrorKindText {
            kind: ErrorKind::MissingFeature(format!("ESP ({opt})")),
            text: format!(
                "this kernel has no ESP support ({opt} not set or module esp{} not loaded): \
                 kernel said \"{msg}\"",
                if is_v6 { "6" } else { "4" }
            ),
        });
    }
    let alg_missing = msg.contains("algorithm not found")
        || (nack.errno == libc::ENOSYS)
        || (nack.errno == libc::ENOENT && !algs.is_empty());
    if !alg_missing {
        return None;
    }
    let alg = if msg.contains("AUTH") {
        algs.get(1).or(algs.first())
    } else {
        algs.first()
    }
    .copied()
    .unwrap_or("?");
    let hint = crypto_config_hint(alg);
    Some(ErrorKindText {
        kind: ErrorKind::MissingFeature(format!("algorithm {alg} ({hint})")),
        text: format!(
            "this kernel cannot do the ESP algorithm {alg} (enable {hint}): kernel said \"{msg}\""
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_and_retry() {
        let n = |errno| Nack {
            errno,
            message: None,
        };
        assert_eq!(n(libc::EEXIST).kind(), ErrorKind::Exists);
        assert_eq!(n(libc::ESRCH).kind(), ErrorKind::NotFound);
        assert_eq!(n(libc::ENOENT).kind(), ErrorKind::NotFound);
        assert_eq!(n(libc::EPERM).kind(), ErrorKind::Permission);
        assert!(KernelError::Nack(n(libc::ENOBUFS)).can_retry());
        assert!(!KernelError::Nack(n(libc::EINVAL)).can_retry());
    }

    #[test]
    fn missing_esp_and_algorithms_are_named() {
        let esp = Nack {
            errno: libc::EPROTONOSUPPORT,
            message: Some("Requested type not found".into()),
        };
        let c = classify_sa_nack(&esp, false, &["rfc4106(gcm(aes))"]).unwrap();
        assert_eq!(
            c.kind,
            ErrorKind::MissingFeature("ESP (CONFIG_INET_ESP)".into())
        );
        let aead = Nack {
            errno: libc::ENOSYS,
            message: Some("Requested AEAD algorithm not found".into()),
        };
        let c = classify_sa_nack(&aead, true, &["rfc4106(gcm(aes))"]).unwrap();
        assert!(c.text.contains("CONFIG_CRYPTO_GCM"), "{}", c.text);
        let auth = Nack {
            errno: libc::ENOSYS,
            message: Some("Requested AUTH algorithm not found".into()),
        };
        let c = classify_sa_nack(&auth, false, &["cbc(aes)", "hmac(sha256)"]).unwrap();
        assert!(c.text.contains("hmac(sha256)"), "{}", c.text);
        let inval = Nack {
            errno: libc::EINVAL,
            message: None,
        };
        assert!(classify_sa_nack(&inval, false, &["x"]).is_none());
    }
}
