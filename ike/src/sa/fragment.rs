//! IKE fragmentation (RFC 7383): once both ends announced IKEV2_FRAGMENTATION_SUPPORTED in
//! IKE_SA_INIT, an SK message of ours that would make a bigger IP datagram than
//! [`Fragmentation::size`] goes out as SKF fragments, each encrypted and authenticated on its
//! own; the peer's fragments are verified one by one before they are kept, and reassembled
//! within [`Fragmentation::max_fragments`] and [`Fragmentation::max_message`].

use std::collections::BTreeMap;
use std::net::SocketAddr;

use tracing::debug;
use zeroize::Zeroizing;

use super::endpoint::Ctx;
use super::ike_sa::{IkeSa, Role};
use crate::codec::{decode_payloads, Header, Message, Payload};
use crate::crypto::{open_skf, seal_sk, seal_skf, skf_capacity, Cipher};
use crate::rng::Rng;

/// Fragmentation settings.
#[derive(Debug, Clone, Copy)]
pub struct Fragmentation {
    /// Announce and accept IKEV2_FRAGMENTATION_SUPPORTED in IKE_SA_INIT.
    pub enabled: bool,
    /// The largest IP datagram (IP and UDP headers included) one of our IKE messages may
    /// make; bigger SK messages are fragmented. 1280 by default, like strongSwan: the IPv6
    /// minimum MTU, which RFC 7383 §2.5.1 recommends for IPv6 and which IPv4 paths carry in
    /// practice (its IPv4 floor, 576, would cut a certificate chain into many more pieces).
    pub size: usize,
    /// Total Fragments accepted at most for one message of the peer.
    pub max_fragments: u16,
    /// Bytes of one reassembled message of the peer at most.
    pub max_message: usize,
}

impl Default for Fragmentation {
    fn default() -> Fragmentation {
        Fragmentation {
            enabled: true,
            size: 1280,
            max_fragments: 64,
            max_message: 16 * 1024,
        }
    }
}

/// The longest IKE message that fits a `size`-byte IP datagram from `from` to `to`: less the
/// IP header, UDP header and, on port 4500, the non-ESP marker (RFC 7383 §2.5.1).
pub(super) fn message_limit(size: usize, from: SocketAddr, to: SocketAddr) -> usize {
    let ip = if to.is_ipv4() { 20 } else { 40 };
    let marker = if from.port() == 4500 || to.port() == 4500 {
        4
    } else {
        0
    };
    size.saturating_sub(ip + 8 + marker)
}

/// The keys of one direction: cipher, SK_e, SK_a.
pub(super) type DirKeys<'a> = (Cipher, &'a [u8], &'a [u8]);

/// Our message with inner chain `inner` (first payload `first`) as datagrams: one SK
/// message, or SKF fragments of at most `limit` bytes if it is longer and `limit` is set.
pub(super) fn seal_message(
    (cipher, enc, integ): DirKeys<'_>,
    header: &Header,
    (first, inner): (u8, &[u8]),
    limit: Option<usize>,
    rng: &mut dyn Rng,
) -> Vec<Vec<u8>> {
    let whole = seal_sk(cipher, enc, integ, header, first, inner, rng);
    let Some(limit) = limit.filter(|l| whole.len() > *l) else {
        return vec![whole];
    };
    let capacity = skf_capacity(cipher, limit);
    let Some(total) = inner
        .len()
        .checked_div(capacity)
        .map(|n| n + usize::from(inner.len() % capacity != 0))
        .and_then(|n| u16::try_from(n).ok())
    else {
        return vec![whole]; // cannot be cut that small: let the path decide
    };
    // RFC 7383 §2.5: the first fragment names the first inner payload, the others 0.
    (1..=total)
        .zip(inner.chunks(capacity))
        .map(|(number, piece)| {
            let next = if number == 1 { first } else { 0 };
            seal_skf(
                cipher,
                enc,
                integ,
                header,
                next,
                (number, total),
                piece,
                rng,
            )
        })
        .collect()
}

/// Fragments of one message of the peer, each already verified.
pub(super) struct Reassembly {
    message_id: u32,
    total: u16,
    first_inner: u8,
    pieces: BTreeMap<u16, Zeroizing<Vec<u8>>>,
    bytes: usize,
}

const TOO_MANY: &str = "too many fragments";
const TOO_BIG: &str = "reassembled message too big";

/// What became of a received fragment.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Kept (or a duplicate); the message is not whole yet.
    Incomplete,
    /// The last missing fragment: the message's inner payloads.
    Complete(Vec<Payload>),
    /// Refused, for this reason; what was kept before is untouched unless the reason says.
    Dropped(&'static str),
}

/// Takes SKF message `msg` (from `datagram`) into `slot`, verified with the peer's `keys`.
pub(super) fn receive(
    slot: &mut Option<Reassembly>,
    limits: &Fragmentation,
    keys: DirKeys<'_>,
    datagram: &[u8],
    msg: &Message,
) -> Outcome {
    let Some(Payload::Skf { number, total, .. }) = msg.payloads.last() else {
        return Outcome::Dropped("not a fragment");
    };
    let (number, total) = (*number, *total);
    if number == 0 || number > total {
        return Outcome::Dropped("fragment number out of range");
    }
    if total > limits.max_fragments {
        return Outcome::Dropped(TOO_MANY);
    }
    let id = msg.header.message_id;
    let current = slot.as_ref().filter(|r| r.message_id == id);
    // RFC 7383 §2.6.2: a smaller Total Fragments than already seen is a stale fragment.
    if current.is_some_and(|r| total < r.total) {
        return Outcome::Dropped("fewer total fragments than before");
    }
    // Verified before it can displace anything: a forgery changes nothing.
    let Ok(opened) = open_skf(keys.0, keys.1, keys.2, datagram, msg) else {
        return Outcome::Dropped("integrity check failed");
    };
    // A larger Total Fragments means the peer re-fragmented: start over (§2.6.2).
    if current.is_none_or(|r| total > r.total) {
        *slot = Some(Reassembly {
            message_id: id,
            total,
            first_inner: 0,
            pieces: BTreeMap::new(),
            bytes: 0,
        });
    }
    let Some(r) = slot.as_mut() else {
        return Outcome::Dropped("no reassembly");
    };
    if r.pieces.contains_key(&number) {
        return Outcome::Incomplete;
    }
    r.bytes += opened.piece.len();
    if r.bytes > limits.max_message {
        *slot = None;
        return Outcome::Dropped(TOO_BIG);
    }
    if number == 1 {
        r.first_inner = opened.first_inner;
    }
    r.pieces.insert(number, opened.piece);
    if r.pieces.len() < usize::from(r.total) {
        return Outcome::Incomplete;
    }
    let Some(r) = slot.take() else {
        return Outcome::Dropped("no reassembly");
    };
    let mut inner = Zeroizing::new(Vec::with_capacity(r.bytes));
    r.pieces.values().for_each(|p| inner.extend_from_slice(p));
    match decode_payloads(r.first_inner, &inner) {
        Ok(payloads) => Outcome::Complete(payloads),
        Err(_) => Outcome::Dropped("reassembled payloads are malformed"),
    }
}

/// Feeds the peer's SKF fragment to reassembly: `true` when `msg` is not a fragment or
/// completes its message (whose inner payloads then wait in `IkeSa::reassembled`).
pub(super) fn reassemble(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_>,
    datagram: &[u8],
    msg: &Message,
) -> bool {
    if !matches!(msg.payloads.last(), Some(Payload::Skf { .. })) {
        return true;
    }
    let id = sa.id().0;
    if !sa.fragmentation || msg.payloads.len() != 1 {
        debug!(sa = id, "dropped fragment: fragmentation not negotiated");
        return false;
    }
    let peer = match sa.role {
        Role::Initiator => Role::Responder,
        Role::Responder => Role::Initiator,
    };
    let index = usize::from(msg.header.is_response());
    let mut slot = sa.fragments[index].take();
    let Some((e, a)) = sa.keys_of(peer) else {
        return false;
    };
    let keys = (sa.cipher, e, a);
    let outcome = receive(&mut slot, &ctx.config.fragmentation, keys, datagram, msg);
    sa.fragments[index] = slot;
    match outcome {
        Outcome::Complete(payloads) => {
            sa.reassembled = Some(payloads);
            true
        }
        Outcome::Incomplete => false,
        Outcome::Dropped(reason) => {
            if [TOO_MANY, TOO_BIG].contains(&reason) {
                ctx.counters.reassembly_refused += 1;
            }
            let message_id = msg.header.message_id;
            debug!(sa = id, message_id, reason, "dropped fragment");
            false
        }
    }
}
