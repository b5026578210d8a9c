//! Host identity: X25519 private keys, their files, and the per-pair key schedule.
//!
//! Per pair of identities the X25519 shared secret is extracted once with HKDF-SHA256
//! (salted with both public keys, so the pair is bound to who they are) and cached; SA keys
//! are then expanded per direction, per epoch, bound to both addresses and the cipher.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use hkdf::Hkdf;
use policy_schema::{Policy, PublicKey};
use sha2::Sha256;
use x25519_dalek::StaticSecret;

use crate::secret::Secret;

/// A key file is 45 bytes of base64; anything past this is not a key (and not read).
pub const MAX_KEY_FILE_SIZE: u64 = 64 << 10;

/// Version label mixed into every derivation; bump it to change the key schedule.
pub const KDF_LABEL: &[u8] = b"xfrm-agent v1";

/// Why a key could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("private key {path}: {reason}")]
    Read {
        path: PathBuf,
        reason: policy_schema::ReadError,
    },
    #[error(
        "private key {path} is readable by group or others (mode {mode:04o}); \
         run `chmod 600 {path}` (it is refused, like ssh does)"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("private key {what} is not base64 of 32 bytes")]
    Malformed { what: String },
    #[error(
        "no host in the policy has the public key {0} of this private key \
         (add it to [[hosts]], or pass --host NAME for tooling)"
    )]
    NotInPolicy(PublicKey),
    #[error("--host {0}: no such host in the policy")]
    UnknownHost(String),
    #[error("cluster {cluster}: the key {path} is not the cluster's private key")]
    WrongClusterKey { cluster: String, path: PathBuf },
    #[error(
        "the X25519 shared secret with public key {0} is all zeros (a low-order point): \
         its SA keys would follow from the policy file alone, so it gets no SAs"
    )]
    NonContributory(PublicKey),
}

/// An X25519 private key (with its public key, computed once). Debug never prints the
/// secret; the library zeroizes it on drop.
#[derive(Clone)]
pub struct PrivateKey(StaticSecret, PublicKey);

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey([redacted], public {})", self.public())
    }
}

impl PrivateKey {
    /// A fresh random key from the OS generator.
    pub fn generate() -> PrivateKey {
        PrivateKey::from_secret(StaticSecret::random())
    }
    pub fn from_bytes(bytes: [u8; 32]) -> PrivateKey {
        PrivateKey::from_secret(StaticSecret::from(bytes))
    }
    fn from_secret(s: StaticSecret) -> PrivateKey {
        let public = PublicKey(x25519_dalek::PublicKey::from(&s).to_bytes());
        PrivateKey(s, public)
    }
    /// Parse base64 text (surrounding whitespace ignored).
    pub fn from_base64(text: &str, what: &str) -> Result<PrivateKey, KeyError> {
        let malformed = || KeyError::Malformed { what: what.into() };
        let bytes = zeroize::Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| malformed())?,
        );
        let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| malformed())?;
        Ok(PrivateKey::from_bytes(arr))
    }
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0.as_bytes())
    }
    pub fn public(&self) -> PublicKey {
        self.1
    }
    /// Read a key file, refusing one that group or others can read.
    pub fn load(path: &Path) -> Result<PrivateKey, KeyError> {
        let bytes = read_private_file(path, MAX_KEY_FILE_SIZE)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| KeyError::Malformed {
            what: path.display().to_string(),
        })?;
        PrivateKey::from_base64(text, &path.display().to_string())
    }
    /// The X25519 shared secret with `peer`, refused when it is not contributory (the
    /// peer key is a low-order point and the secret all zeros, whatever our key): the
    /// policy file refuses such keys, this refuses them for any key that gets here.
    fn shared(&self, peer: &PublicKey) -> Result<Secret, KeyError> {
        let shared = self
            .0
            .diffie_hellman(&x25519_dalek::PublicKey::from(peer.0));
        if !shared.was_contributory() {
            return Err(KeyError::NonContributory(*peer));
        }
        Ok(Secret::new(shared.as_bytes().to_vec()))
    }
}

/// Read a private key file of at most `max` bytes (zeroized when dropped), refusing it
/// before reading when group or others may access it.
pub(crate) fn read_private_file(
    path: &Path,
    max: u64,
) -> Result<zeroize::Zeroizing<Vec<u8>>, KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let read_err = |reason| KeyError::Read {
        path: path.into(),
        reason,
    };
    let (mut file, meta) = policy_schema::file::open_regular(path).map_err(read_err)?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions {
            path: path.into(),
            mode: mode & 0o7777,
        });
    }
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    policy_schema::file::read_capped(&mut file, max, &mut bytes).map_err(read_err)?;
    Ok(bytes)
}

/// The extracted secret of one pair of identities, ready to expand SA keys from.
#[derive(Clone)]
pub struct PairKey {
    hkdf: Hkdf<Sha256>,
}

impl fmt::Debug for PairKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PairKey([redacted])")
    }
}

impl PairKey {
    /// Both sides compute the same value: the public keys are ordered before use. Refused
    /// for a peer key whose shared secret is not contributory.
    pub fn new(local: &PrivateKey, peer: &PublicKey) -> Result<PairKey, KeyError> {
        let me = local.public();
        let (a, b) = if me <= *peer {
            (me, *peer)
        } else {
            (*peer, me)
        };
        let mut salt = Vec::with_capacity(KDF_LABEL.len() + 64);
        salt.extend_from_slice(KDF_LABEL);
        salt.extend_from_slice(&a.0);
        salt.extend_from_slice(&b.0);
        let shared = local.shared(peer)?;
        Ok(PairKey {
            hkdf: Hkdf::<Sha256>::new(Some(&salt), shared.expose()),
        })
    }
    /// `len` bytes of key material for `info` (which must bind direction, epoch, cipher…).
    pub fn expand(&self, info: &[u8], len: usize) -> Secret {
        let mut out = vec![0u8; len];
        self.hkdf
            .expand(info, &mut out)
            .expect("SA keys are far below HKDF's 255*32-byte limit");
        Secret::new(out)
    }
    /// `a + b` bytes for `info`, split into two secrets (encryption key, authentication
    /// key) without an intermediate heap copy.
    pub fn expand_split(&self, info: &[u8], a: usize, b: usize) -> (Secret, Secret) {
        let mut buf = zeroize::Zeroizing::new([0u8; 64]);
        let okm = &mut buf[..a + b];
        self.hkdf
            .expand(info, okm)
            .expect("SA keys are far below HKDF's 255*32-byte limit");
        (
            Secret::new(okm[..a].to_vec()),
            Secret::new(okm[a..].to_vec()),
        )
    }
}

/// Who this agent is: a host of the policy, its key, and the keys of the clusters (virtual
/// addresses) it is a member of. Nothing here is cached: the compiler keeps the pair
/// secrets (`plan::Compiler`).
pub struct Identity {
    pub host: String,
    key: PrivateKey,
    cluster_keys: BTreeMap<String, PrivateKey>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("host", &self.host)
            .field("public", &self.key.public())
            .field("clusters", &self.cluster_keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Identity {
    /// Find this host in the policy by its public key (or by name with `host_override`).
    pub fn resolve(
        policy: &Policy,
        key: PrivateKey,
        host_override: Option<&str>,
    ) -> Result<Identity, KeyError> {
        let host = match host_override {
            Some(name) => policy
                .host(name)
                .ok_or_else(|| KeyError::UnknownHost(name.into()))?,
            None => policy
                .host_by_key(&key.public())
                .ok_or(KeyError::NotInPolicy(key.public()))?,
        };
        Ok(Identity {
            host: host.name.clone(),
            key,
            cluster_keys: BTreeMap::new(),
        })
    }
    /// Add the private key of a cluster this host is a member of; it must match the file.
    pub fn add_cluster_key(
        &mut self,
        policy: &Policy,
        cluster: &str,
        key: PrivateKey,
        path: &Path,
    ) -> Result<(), KeyError> {
        let ok = policy
            .cluster(cluster)
            .is_some_and(|c| c.public_key == key.public());
        if !ok {
            return Err(KeyError::WrongClusterKey {
                cluster: cluster.into(),
                path: path.into(),
            });
        }
        self.cluster_keys.insert(cluster.into(), key);
        Ok(())
    }
    pub fn public(&self) -> PublicKey {
        self.key.public()
    }
    /// This host's private key.
    pub fn key(&self) -> &PrivateKey {
        &self.key
    }
    /// The private key of `cluster`, if this agent holds it.
    pub fn cluster_key(&self, cluster: &str) -> Option<&PrivateKey> {
        self.cluster_keys.get(cluster)
    }
    /// Whether this agent holds the private key of `cluster`.
    pub fn has_cluster_key(&self, cluster: &str) -> bool {
        self.cluster_keys.contains_key(cluster)
    }
    /// Who this identity is, as far as a compile can tell: the host, its public key, and
    /// each cluster it holds a key of with that key's public half.
    pub fn fingerprint(&self) -> (String, PublicKey, Vec<(String, PublicKey)>) {
        let clusters = self
            .cluster_keys
            .iter()
            .map(|(n, k)| (n.clone(), k.public()))
            .collect();
        (self.host.clone(), self.key.public(), clusters)
    }

    /// Entries of `policy` whose public key is the bytes of a private key this identity
    /// holds (a private key pasted where its public key belongs, published in a
    /// world-readable file): (whose private key, which entry, the private key's base64).
    pub fn published_private_keys(&self, policy: &Policy) -> Vec<(String, String, String)> {
        let held = std::iter::once((format!("host {}", self.host), &self.key))
            .chain((self.cluster_keys.iter()).map(|(c, k)| (format!("cluster {c}"), k)));
        let entries: Vec<(String, PublicKey)> = (policy.hosts.iter())
            .map(|h| (format!("host {}", h.name), h.public_key))
            .chain((policy.clusters.iter()).map(|c| (format!("cluster {}", c.name), c.public_key)))
            .collect();
        let mut out = Vec::new();
        for (owner, key) in held {
            let as_public = PublicKey::canonical(*key.0.as_bytes());
            for (entry, _) in entries.iter().filter(|(_, k)| *k == as_public) {
                out.push((owner.clone(), entry.clone(), key.to_base64()));
            }
        }
        out
    }

    /// The public keys of the private keys this identity holds.
    pub fn held_keys(&self) -> impl Iterator<Item = PublicKey> + '_ {
        std::iter::once(self.key.public()).chain(self.cluster_keys.values().map(PrivateKey::public))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two hosts with fresh keys and nothing else: what `Identity` reads of a policy.
    /// Built here rather than with the compiler's testkit so that keys.rs, which sits
    /// below `plan`, does not reach up to it even in tests.
    fn two_hosts() -> Policy {
        let host = |name: &str, addr: &str| {
            policy_schema::testkit::host(name, &[addr], PrivateKey::generate().public())
        };
        Policy {
            version: 1,
            defaults: Default::default(),
            ownership: Default::default(),
            zones: vec![],
            hosts: vec![host("site", "10.10.0.10"), host("db", "10.10.0.11")],
            clusters: vec![],
            authorities: vec![],
            exemptions: vec![],
            rules: vec![],
        }
    }

    #[test]
    fn pair_keys_agree_on_both_sides() {
        let a = PrivateKey::generate();
        let b = PrivateKey::generate();
        let ab = PairKey::new(&a, &b.public()).unwrap().expand(b"x", 20);
        let ba = PairKey::new(&b, &a.public()).unwrap().expand(b"x", 20);
        assert_eq!(ab, ba);
        let other_info = PairKey::new(&a, &b.public()).unwrap().expand(b"y", 20);
        assert_ne!(ab, other_info);
    }

    /// Keys the policy file would refuse, given to the identity anyway (a future key type,
    /// a bypassed check): the pair is refused, for hosts and clusters alike, never derived
    /// from an all-zero secret.
    #[test]
    fn a_non_contributory_peer_key_refuses_the_pair() {
        let order8 = base64::engine::general_purpose::STANDARD
            .decode("4Ot6fDtBuK4WVuP68Z/EatoJjeucMrH9hmIFFl9JuAA=")
            .unwrap();
        let mut one = [0u8; 32];
        one[0] = 1;
        let order8: [u8; 32] = order8.try_into().unwrap();
        let mut p_minus_1 = [0xff; 32];
        (p_minus_1[0], p_minus_1[31]) = (0xec, 0x7f);
        let mut high = order8;
        high[31] |= 0x80;
        let weak = [[0u8; 32], one, p_minus_1, order8, high];
        let me = PrivateKey::generate();
        let cluster = PrivateKey::generate();
        let mut p = two_hosts();
        p.hosts[0].public_key = me.public();
        p.clusters.push(policy_schema::Cluster {
            name: "vip".into(),
            addresses: vec!["10.10.0.200".parse().unwrap()],
            public_key: cluster.public(),
            members: vec![p.hosts[0].name.clone()],
            encapsulation: Default::default(),
        });
        let mut id = Identity::resolve(&p, me.clone(), None).unwrap();
        id.add_cluster_key(&p, "vip", cluster, Path::new("c.key"))
            .unwrap();
        for peer in weak.map(PublicKey) {
            assert!(
                matches!(PairKey::new(&me, &peer), Err(KeyError::NonContributory(k)) if k == peer)
            );
            let cluster = id.cluster_key("vip").unwrap();
            assert!(PairKey::new(cluster, &peer).is_err(), "cluster {peer}");
        }
        assert!(PairKey::new(id.key(), &PrivateKey::generate().public()).is_ok());
    }

    #[test]
    fn a_private_key_published_as_a_public_key_is_found() {
        let me = PrivateKey::generate();
        let mut p = two_hosts();
        p.hosts[0].public_key = me.public();
        let id = Identity::resolve(&p, me.clone(), None).unwrap();
        assert!(id.published_private_keys(&p).is_empty());
        p.hosts[1].public_key = PublicKey::canonical(*me.0.as_bytes());
        let found = id.published_private_keys(&p);
        let entry = format!("host {}", p.hosts[1].name);
        assert_eq!(
            found,
            vec![(format!("host {}", id.host), entry, me.to_base64())]
        );
    }

    #[test]
    fn base64_round_trip_and_malformed() {
        let k = PrivateKey::generate();
        let k2 = PrivateKey::from_base64(&format!("{}\n", k.to_base64()), "t").unwrap();
        assert_eq!(k.public(), k2.public());
        assert!(PrivateKey::from_base64("AAAA", "t").is_err());
        assert!(PrivateKey::from_base64("not base64!", "t").is_err());
    }

    #[test]
    fn world_readable_key_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("xfrm-agent-keytest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k.key");
        std::fs::write(&path, PrivateKey::generate().to_base64()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = PrivateKey::load(&path).unwrap_err();
        assert!(
            matches!(err, KeyError::Permissions { mode: 0o644, .. }),
            "{err}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(PrivateKey::load(&path).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
