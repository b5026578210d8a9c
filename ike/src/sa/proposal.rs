//! Building our proposals and choosing from the peer's (RFC 7296 §2.7, §3.3), and the
//! host-to-host traffic selectors of transport mode (§2.9).

use crate::codec::{protocol, Proposal, TrafficSelector, Transform};
use crate::crypto::{transform as tf, Cipher, DhGroup};

/// Our IKE proposals: AEAD ciphers in one, CBC + HMAC in another (they cannot share one).
pub(super) fn ike_proposals(ciphers: &[Cipher], groups: &[DhGroup]) -> Vec<Proposal> {
    let tail = |with_integ: bool| {
        let mut t = Vec::new();
        if with_integ {
            t.push(Transform::new(tf::INTEG, tf::AUTH_HMAC_SHA2_256_128));
        }
        t.push(Transform::new(tf::PRF, tf::PRF_HMAC_SHA2_256));
        t.extend(groups.iter().map(|g| Transform::new(tf::DH, g.number())));
        t
    };
    build(ciphers, protocol::IKE, Vec::new(), tail)
}

/// Our ESP proposals with inbound SPI `spi`, and a DH group for PFS in CREATE_CHILD_SA
/// (none in IKE_AUTH: the first Child SA uses the IKE SA's exchange).
pub(super) fn esp_proposals(ciphers: &[Cipher], spi: u32, pfs: &[DhGroup]) -> Vec<Proposal> {
    let tail = |with_integ: bool| {
        let mut t = Vec::new();
        if with_integ {
            t.push(Transform::new(tf::INTEG, tf::AUTH_HMAC_SHA2_256_128));
        }
        t.extend(pfs.iter().map(|g| Transform::new(tf::DH, g.number())));
        t.push(Transform::new(tf::ESN, tf::ESN_NONE));
        t
    };
    build(ciphers, protocol::ESP, spi.to_be_bytes().to_vec(), tail)
}

fn build(
    ciphers: &[Cipher],
    proto: u8,
    spi: Vec<u8>,
    tail: impl Fn(bool) -> Vec<Transform>,
) -> Vec<Proposal> {
    let (aead, plain): (Vec<Cipher>, Vec<Cipher>) = ciphers.iter().partition(|c| c.is_aead());
    [aead, plain]
        .into_iter()
        .filter(|group| !group.is_empty())
        .enumerate()
        .map(|(i, group)| {
            let encr = group.iter().map(|c| c.transforms().swap_remove(0));
            let is_aead = group.first().is_some_and(|c| c.is_aead());
            Proposal {
                number: u8::try_from(i + 1).unwrap_or(1),
                protocol: proto,
                spi: spi.clone(),
                transforms: encr.chain(tail(!is_aead)).collect(),
            }
        })
        .collect()
}

/// What we accepted of one proposal.
pub(super) struct Chosen {
    /// The proposal to send back: one transform per type, the peer's number.
    pub(super) proposal: Proposal,
    /// The cipher.
    pub(super) cipher: Cipher,
    /// The DH group (IKE only).
    pub(super) group: Option<DhGroup>,
}

/// The first of the peer's proposals for `proto` that we accept (the peer's order).
pub(super) fn choose(
    proposals: &[Proposal],
    proto: u8,
    ciphers: &[Cipher],
    groups: &[DhGroup],
) -> Option<Chosen> {
    proposals
        .iter()
        .filter(|p| p.protocol == proto)
        .find_map(|p| choose_one(p, ciphers, groups))
}

fn choose_one(p: &Proposal, ciphers: &[Cipher], groups: &[DhGroup]) -> Option<Chosen> {
    let of = |ty| p.transforms.iter().filter(move |t| t.transform_type == ty);
    let integ = of(tf::INTEG)
        .map(|t| t.id)
        .find(|&id| id == tf::AUTH_HMAC_SHA2_256_128);
    let (encr, cipher) = of(tf::ENCR).find_map(|t| {
        let integ = if t.id == tf::ENCR_AES_GCM_16 {
            None
        } else {
            integ
        };
        Cipher::from_transforms(t, integ)
            .filter(|c| ciphers.contains(c))
            .map(|c| (t.clone(), c))
    })?;
    let mut transforms = vec![encr];
    if !cipher.is_aead() {
        transforms.push(Transform::new(tf::INTEG, tf::AUTH_HMAC_SHA2_256_128));
    }
    let mut group = None;
    if p.protocol == protocol::IKE {
        of(tf::PRF).find(|t| t.id == tf::PRF_HMAC_SHA2_256)?;
        transforms.push(Transform::new(tf::PRF, tf::PRF_HMAC_SHA2_256));
        let g =
            of(tf::DH).find_map(|t| DhGroup::from_number(t.id).filter(|g| groups.contains(g)))?;
        transforms.push(Transform::new(tf::DH, g.number()));
        group = Some(g);
    } else {
        // PFS (CREATE_CHILD_SA only: `groups` is empty for IKE_AUTH, where DH is ignored).
        let offered: Vec<u16> = of(tf::DH).map(|t| t.id).filter(|&id| id != 0).collect();
        if !groups.is_empty() && !offered.is_empty() {
            let g = offered
                .iter()
                .find_map(|&id| DhGroup::from_number(id).filter(|g| groups.contains(g)))?;
            transforms.push(Transform::new(tf::DH, g.number()));
            group = Some(g);
        }
        // No extended sequence numbers; an ESP proposal without ESN means none.
        if of(tf::ESN).next().is_some() && of(tf::ESN).all(|t| t.id != tf::ESN_NONE) {
            return None;
        }
        transforms.push(Transform::new(tf::ESN, tf::ESN_NONE));
    }
    Some(Chosen {
        proposal: Proposal {
            number: p.number,
            protocol: p.protocol,
            spi: p.spi.clone(),
            transforms,
        },
        cipher,
        group,
    })
}

/// Whether selector `a` lies within `b`: its protocol, ports and addresses.
fn inside(a: &TrafficSelector, b: &TrafficSelector) -> bool {
    a.start.is_ipv4() == b.start.is_ipv4()
        && (b.protocol == 0 || a.protocol == b.protocol)
        && b.start_port <= a.start_port
        && a.end_port <= b.end_port
        && b.start <= a.start
        && a.end <= b.end
}

/// Whether `list` (the peer's proposal) covers every selector we want: the responder of a
/// tunnel-mode Child SA answers with exactly its own, a narrowing (RFC 7296 §2.9).
pub(super) fn covers_all(list: &[TrafficSelector], wanted: &[TrafficSelector]) -> bool {
    !wanted.is_empty() && wanted.iter().all(|w| list.iter().any(|ts| inside(w, ts)))
}

/// Whether every selector of `list` (the peer's answer) lies within one of `ours`.
pub(super) fn within_all(list: &[TrafficSelector], ours: &[TrafficSelector]) -> bool {
    !list.is_empty() && list.iter().all(|ts| ours.iter().any(|o| inside(ts, o)))
}
