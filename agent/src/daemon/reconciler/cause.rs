//! Why a reconcile runs, and what one turn of the daemon's loop asks of it.

/// Why a reconcile runs (logged, and it decides what counts as a rotation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    Start,
    Reload,
    Addresses,
    Rotation,
    Drift,
    SoftExpire,
    Acquire,
    /// The SAs negotiated over IKEv2 changed.
    Keying,
    Resync,
    Retry,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Start => "start",
            Cause::Reload => "reload",
            Cause::Addresses => "addresses",
            Cause::Rotation => "rotation",
            Cause::Drift => "drift",
            Cause::SoftExpire => "soft-expire",
            Cause::Acquire => "acquire",
            Cause::Keying => "keying",
            Cause::Resync => "resync",
            Cause::Retry => "retry",
        }
    }
}

/// What one turn of the loop asks of the reconcile: the cause it runs under (logged, and
/// deciding what counts as a rotation), and whether any trigger of the turn needs the
/// whole kernel read. Only a reload, an address change or a keying change may read just
/// the keys the compiler or keying changed; a turn that also saw drift, a resync or a retry reads everything,
/// whichever cause names it.
#[derive(Debug, Default)]
pub struct Turn {
    pub cause: Option<Cause>,
    pub sweep: bool,
    /// Acquires for pairs keyed over IKEv2, for the IKE source to start exchanges.
    pub acquires: Vec<crate::keying::Acquire>,
    /// Soft (false) and hard (true) expires of negotiated SAs, for keying to rekey.
    pub expires: Vec<(crate::model::SaKey, bool)>,
}

impl Turn {
    /// Another trigger; the first one names the reconcile.
    pub fn add(&mut self, c: Cause) {
        self.cause = self.cause.or(Some(c));
        self.sweep |= !matches!(c, Cause::Reload | Cause::Addresses | Cause::Keying);
    }
    /// A trigger that names the reconcile whatever came before.
    pub fn name(&mut self, c: Cause) {
        self.add(c);
        self.cause = Some(c);
    }
}

#[cfg(test)]
mod tests {
    use super::{Cause, Turn};

    fn turn(adds: &[Cause]) -> Turn {
        let mut p = Turn::default();
        adds.iter().for_each(|c| p.add(*c));
        p
    }

    #[test]
    fn only_reloads_and_address_changes_may_skip_the_full_read() {
        let p = turn(&[Cause::Reload]);
        assert_eq!((p.cause, p.sweep), (Some(Cause::Reload), false));
        let p = turn(&[Cause::Addresses, Cause::Reload]);
        assert_eq!((p.cause, p.sweep), (Some(Cause::Addresses), false));
        // Drift seen in the same turn as a reload: the reload reads everything.
        let p = turn(&[Cause::Reload, Cause::Drift]);
        assert_eq!((p.cause, p.sweep), (Some(Cause::Reload), true));
        let p = turn(&[Cause::Drift, Cause::Reload]);
        assert_eq!((p.cause, p.sweep), (Some(Cause::Drift), true));
        // A resync that found the file changed is named a reload and still reads everything.
        let mut p = turn(&[Cause::Drift]);
        p.name(Cause::Reload);
        p.add(Cause::Resync);
        assert_eq!((p.cause, p.sweep), (Some(Cause::Reload), true));
        assert_eq!(turn(&[]).cause, None);
        let p = turn(&[Cause::Keying]);
        assert_eq!((p.cause, p.sweep), (Some(Cause::Keying), false));
        let p = turn(&[Cause::Keying, Cause::Acquire]);
        assert_eq!((p.cause, p.sweep), (Some(Cause::Keying), true));
    }
}
