//! What the reconciler knows about the kernel's owned objects after its last reconcile.

/// The kernel's sync state as of the last reconcile: one fact, three answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KernelSync {
    /// The kernel held the last desired set (every write acknowledged, nothing refused or
    /// held by a foreign object), with the owned (policies, states) counts: a reload the
    /// compiler patched then reads and diffs only the keys it touched.
    Held(usize, usize),
    /// Nothing is known beyond the last dump: not reconciled yet, a write was refused or
    /// conflicted, or the compiler was replaced. The next reconcile reads everything.
    #[default]
    Unknown,
    /// The last reconcile failed after compiling: the kernel may still lack what that
    /// compile changed, so the next one's writes are not someone else's drift.
    Failed,
}

impl KernelSync {
    /// The owned counts, when the kernel held the last desired set.
    pub fn held(self) -> Option<(usize, usize)> {
        match self {
            KernelSync::Held(p, s) => Some((p, s)),
            _ => None,
        }
    }

    /// The last desired set may no longer be what the kernel holds (a failure stays one).
    pub fn forget(&mut self) {
        if let KernelSync::Held(..) = self {
            *self = KernelSync::Unknown;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::KernelSync;

    #[test]
    fn forgetting_keeps_a_failure_and_drops_the_counts() {
        let mut s = KernelSync::Held(3, 4);
        assert_eq!(s.held(), Some((3, 4)));
        s.forget();
        assert_eq!(s, KernelSync::Unknown);
        let mut f = KernelSync::Failed;
        f.forget();
        assert_eq!(f, KernelSync::Failed);
        assert_eq!(f.held(), None);
    }
}
