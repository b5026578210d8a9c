//! What the heap examples share: a counting global allocator and a wire between one
//! initiator endpoint and a responder.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use ike::sa::{Endpoint, Event, Transmit};

/// Counts the bytes live (as requested) and their peak; forwards to the system allocator.
pub struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(l.size() as isize, Ordering::Relaxed) + l.size() as isize;
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}

/// Bytes live now.
pub fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// The most bytes live since [`reset_peak`].
#[allow(dead_code)] // ike_heap has no use for it
pub fn peak() -> isize {
    PEAK.load(Ordering::Relaxed)
}

/// Starts a new peak from the bytes live now.
#[allow(dead_code)] // ike_heap has no use for it
pub fn reset_peak() {
    PEAK.store(live(), Ordering::Relaxed);
}

/// The side answering the initiator.
pub trait Responder {
    fn receive(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, datagram: &[u8]);
    fn transmit(&mut self, now: Instant) -> Option<Transmit>;
}

impl Responder for Endpoint {
    fn receive(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, datagram: &[u8]) {
        self.handle(now, from, to, datagram);
    }
    fn transmit(&mut self, now: Instant) -> Option<Transmit> {
        self.poll_transmit(now)
    }
}

/// Delivers datagrams both ways until the wire is quiet; returns Child SAs ready at the
/// initiator.
pub fn exchange(ini: &mut Endpoint, resp: &mut impl Responder, now: Instant) -> u32 {
    let mut ready = 0;
    loop {
        let mut moved = false;
        while let Some(t) = ini.poll_transmit(now) {
            moved = true;
            resp.receive(now, t.from, t.to, &t.payload);
        }
        while let Some(t) = resp.transmit(now) {
            moved = true;
            let events = ini.handle(now, t.from, t.to, &t.payload);
            ready += events
                .iter()
                .filter(|e| matches!(e, Event::ChildSaReady(c) if c.rekeyed.is_none()))
                .count() as u32;
        }
        if !moved {
            return ready;
        }
    }
}
