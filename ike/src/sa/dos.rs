//! Denial-of-service resistance of the responder (RFC 7296 §2.6): a new IKE_SA_INIT is
//! screened before any allocation or Diffie-Hellman. Past a half-open threshold (global, or
//! of its source address) it must return a stateless cookie; half-open and established IKE
//! SAs are capped; every refusal is counted and logged at most once per [`LOG_EVERY`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::Config;
use crate::codec::{notify, Message, Payload};
use crate::crypto::{prf, Secret};
use crate::rng::{random_vec, Rng};

/// One warning at most per this long, summing up what was refused since the last.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Counters of the responder's defences, as plain data for status and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DosCounters {
    /// COOKIE notifies sent (no state kept for the request).
    pub cookies_sent: u64,
    /// IKE_SA_INITs whose cookie was wrong or made with a retired secret.
    pub cookies_invalid: u64,
    /// IKE_SA_INITs dropped: `max_ike_sas` IKE SAs held.
    pub refused_ike_sa_limit: u64,
    /// IKE_SA_INITs dropped: `max_half_open` half-open SAs held.
    pub refused_half_open: u64,
    /// IKE_SA_INITs dropped: `max_half_open_per_source` half-open SAs with that address.
    pub refused_half_open_per_source: u64,
    /// Half-open SAs forgotten after `half_open_timeout` without IKE_AUTH.
    pub half_open_expired: u64,
    /// Fragments dropped over the reassembly bounds (`Fragmentation::max_*`).
    pub reassembly_refused: u64,
}

impl DosCounters {
    /// New IKE_SA_INITs refused (dropped or answered with a COOKIE) in all.
    pub fn refused(&self) -> u64 {
        self.cookies_sent
            + self.refused_ike_sa_limit
            + self.refused_half_open
            + self.refused_half_open_per_source
    }
}

/// The cookie secrets: the current one, and the one before it, still accepted until the
/// next rotation so that a cookie handed out just before a rotation still works.
struct Cookies {
    current: (u8, Secret),
    previous: Option<(u8, Secret)>,
    rotated_at: Instant,
}

impl Cookies {
    fn new(rng: &mut dyn Rng, now: Instant) -> Cookies {
        Cookies {
            current: (0, Secret::new(random_vec(rng, 32))),
            previous: None,
            rotated_at: now,
        }
    }

    fn rotate_if_due(&mut self, rng: &mut dyn Rng, now: Instant, every: Duration) {
        if now.saturating_duration_since(self.rotated_at) < every {
            return;
        }
        let version = self.current.0.wrapping_add(1);
        let fresh = (version, Secret::new(random_vec(rng, 32)));
        let old = std::mem::replace(&mut self.current, fresh);
        // A secret two rotations old is retired even if no request came in between.
        let stale = now.saturating_duration_since(self.rotated_at) >= every * 2;
        self.previous = (!stale).then_some(old);
        self.rotated_at = now;
    }

    /// RFC 7296 §2.6: `<VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>)`, here with
    /// the secret as the PRF key.
    fn issue(&self, ni: &[u8], ip: IpAddr, spi_i: u64) -> Vec<u8> {
        make(&self.current, ni, ip, spi_i)
    }

    fn check(&self, cookie: &[u8], ni: &[u8], ip: IpAddr, spi_i: u64) -> bool {
        let Some(version) = cookie.first() else {
            return false;
        };
        [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|(v, _)| v == version)
            .is_some_and(|secret| same(&make(secret, ni, ip, spi_i), cookie))
    }
}

fn make((version, secret): &(u8, Secret), ni: &[u8], ip: IpAddr, spi_i: u64) -> Vec<u8> {
    let ip = match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let mac = prf(secret.expose(), &[ni, &ip, &spi_i.to_be_bytes()]);
    let mut cookie = vec![*version];
    cookie.extend_from_slice(&mac[..]);
    cookie
}

/// Compares without an early exit, so timing does not tell how much of a guess was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Half-open responder SAs (IKE_SA_INIT answered, no IKE_AUTH yet) by SPI and by source.
#[derive(Default)]
struct HalfOpen {
    by_spi: HashMap<u64, IpAddr>,
    by_source: HashMap<IpAddr, usize>,
}

impl HalfOpen {
    fn of(&self, ip: IpAddr) -> usize {
        self.by_source.get(&ip).copied().unwrap_or(0)
    }

    fn set(&mut self, spi: u64, source: Option<IpAddr>) {
        match (self.by_spi.get(&spi).copied(), source) {
            (None, Some(ip)) => {
                self.by_spi.insert(spi, ip);
                *self.by_source.entry(ip).or_default() += 1;
            }
            (Some(ip), None) => {
                self.by_spi.remove(&spi);
                if let Some(n) = self.by_source.get_mut(&ip) {
                    *n -= 1;
                    if *n == 0 {
                        self.by_source.remove(&ip);
                    }
                }
            }
            _ => {}
        }
    }
}

/// What to do with a new IKE_SA_INIT request.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Screen {
    /// Go on: answer it and keep state.
    Admit,
    /// Answer with this COOKIE, keep nothing.
    Cookie(Vec<u8>),
    /// Drop it, answer nothing.
    Drop,
}

/// A new IKE_SA_INIT request `msg` from `from` at `now`, while `ike_sas` IKE SAs are held.
#[derive(Clone, Copy)]
pub(super) struct Request<'m> {
    pub(super) now: Instant,
    pub(super) from: IpAddr,
    pub(super) msg: &'m Message,
    pub(super) ike_sas: usize,
}

/// The responder's defences: cookie secrets, half-open accounting, counters.
pub(super) struct Guard {
    cookies: Cookies,
    half_open: HalfOpen,
    pub(super) counters: DosCounters,
    logged: Option<(Instant, u64)>,
}

impl Guard {
    pub(super) fn new(rng: &mut dyn Rng, now: Instant) -> Guard {
        Guard {
            cookies: Cookies::new(rng, now),
            half_open: HalfOpen::default(),
            counters: DosCounters::default(),
            logged: None,
        }
    }

    /// Screens a new IKE_SA_INIT: a hash at most, and nothing kept of the request.
    pub(super) fn screen(&mut self, config: &Config, rng: &mut dyn Rng, r: &Request<'_>) -> Screen {
        let verdict = self.decide(config, rng, r);
        if verdict != Screen::Admit {
            self.log(r.now, r.from, config);
        }
        verdict
    }

    fn decide(&mut self, config: &Config, rng: &mut dyn Rng, r: &Request<'_>) -> Screen {
        let Request {
            now,
            from,
            msg,
            ike_sas,
        } = *r;
        let c = &mut self.counters;
        if ike_sas >= config.max_ike_sas {
            c.refused_ike_sa_limit += 1;
            return Screen::Drop;
        }
        let (total, mine) = (self.half_open.by_spi.len(), self.half_open.of(from));
        let over = |t: Option<usize>, n: usize| t.is_some_and(|t| n >= t);
        let demand = config.require_cookie
            || over(config.cookie_threshold, total)
            || over(config.cookie_threshold_per_source, mine);
        // Without a nonce the request is malformed: the full check answers INVALID_SYNTAX.
        if let (true, Some(ni)) = (demand, nonce(msg)) {
            self.cookies.rotate_if_due(rng, now, config.cookie_rotation);
            let spi_i = msg.header.spi_i;
            match returned_cookie(msg) {
                Some(cookie) if self.cookies.check(cookie, ni, from, spi_i) => {}
                returned => {
                    c.cookies_invalid += u64::from(returned.is_some());
                    c.cookies_sent += 1;
                    return Screen::Cookie(self.cookies.issue(ni, from, spi_i));
                }
            }
        }
        if total >= config.max_half_open {
            c.refused_half_open += 1;
            return Screen::Drop;
        }
        if mine >= config.max_half_open_per_source {
            c.refused_half_open_per_source += 1;
            return Screen::Drop;
        }
        Screen::Admit
    }

    /// Records whether responder SA `spi` is half-open with `source` (`None`: it is not).
    pub(super) fn set_half_open(&mut self, spi: u64, source: Option<IpAddr>) {
        self.half_open.set(spi, source);
    }

    /// Half-open responder SAs held.
    pub(super) fn half_open(&self) -> usize {
        self.half_open.by_spi.len()
    }

    fn log(&mut self, now: Instant, from: IpAddr, config: &Config) {
        debug!(%from, "refused IKE_SA_INIT (cookie or limit)");
        let refused = self.counters.refused();
        let due = self
            .logged
            .is_none_or(|(at, _)| now.saturating_duration_since(at) >= LOG_EVERY);
        if !due {
            return;
        }
        let since = refused - self.logged.map_or(0, |(_, n)| n);
        self.logged = Some((now, refused));
        let c = &self.counters;
        warn!(
            refused_since_last = since,
            half_open = self.half_open(),
            cookies_sent = c.cookies_sent,
            cookies_invalid = c.cookies_invalid,
            ike_sa_limit = c.refused_ike_sa_limit,
            half_open_limit = c.refused_half_open,
            per_source_limit = c.refused_half_open_per_source,
            max_ike_sas = config.max_ike_sas,
            "IKE responder under load: demanding cookies or dropping IKE_SA_INIT (logged once per 10 s)"
        );
    }
}

fn nonce(msg: &Message) -> Option<&[u8]> {
    msg.payloads.iter().find_map(|p| match p {
        Payload::Nonce(n) => Some(n.as_slice()),
        _ => None,
    })
}

/// The cookie of a COOKIE notify, which RFC 7296 §2.6 puts first.
fn returned_cookie(msg: &Message) -> Option<&[u8]> {
    match msg.payloads.first() {
        Some(Payload::Notify(n)) if n.notify_type == notify::COOKIE => Some(&n.data),
        _ => None,
    }
}
