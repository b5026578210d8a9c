//! What the diff reads of the kernel as dumped (`Observed`), and the merge join it walks
//! desired and installed with: both are maps ordered by key, so no desired key is looked
//! up one by one.

use std::iter::Peekable;

use crate::model::{Observed, PolicyKey, PolicySpec, SaKey, SaSpec};

/// What the diff reads of a dump: ordered iterators (for the merge join) and lookups.
impl Observed {
    pub fn policy_specs(&self) -> impl Iterator<Item = (&PolicyKey, &PolicySpec)> {
        self.policies.iter()
    }
    pub fn policy(&self, k: &PolicyKey) -> Option<&PolicySpec> {
        self.policies.get(k)
    }
    pub fn state_specs(&self) -> impl Iterator<Item = (&SaKey, &SaSpec)> {
        self.states.iter().map(|(k, s)| (k, &s.spec))
    }
    pub fn foreign_policy(&self, k: &PolicyKey) -> bool {
        !self.foreign_policies.is_empty() && self.foreign_policies.contains(k)
    }
    pub fn foreign_state(&self, k: &SaKey) -> bool {
        !self.foreign_states.is_empty() && self.foreign_states.contains(k)
    }
}

/// One key of a merge join: only wanted, only installed, or both.
pub enum Pair<'a, K, W, H> {
    Want(&'a K, &'a W),
    Have(&'a K, &'a H),
    Both(&'a K, &'a W, &'a H),
}

/// Merge two key-ordered sequences.
pub struct Join<'a, K, W, H, A, B>
where
    A: Iterator<Item = (&'a K, &'a W)>,
    B: Iterator<Item = (&'a K, &'a H)>,
    K: 'a,
    W: 'a,
    H: 'a,
{
    want: Peekable<A>,
    have: Peekable<B>,
}

pub fn join<'a, K: Ord + 'a, W: 'a, H: 'a, A, B>(want: A, have: B) -> Join<'a, K, W, H, A, B>
where
    A: Iterator<Item = (&'a K, &'a W)>,
    B: Iterator<Item = (&'a K, &'a H)>,
{
    Join {
        want: want.peekable(),
        have: have.peekable(),
    }
}

impl<'a, K: Ord, W, H, A, B> Iterator for Join<'a, K, W, H, A, B>
where
    A: Iterator<Item = (&'a K, &'a W)>,
    B: Iterator<Item = (&'a K, &'a H)>,
{
    type Item = Pair<'a, K, W, H>;

    fn next(&mut self) -> Option<Self::Item> {
        use std::cmp::Ordering::*;
        let order = match (self.want.peek(), self.have.peek()) {
            (None, None) => return None,
            (Some(_), None) => Less,
            (None, Some(_)) => Greater,
            (Some((a, _)), Some((b, _))) => a.cmp(b),
        };
        Some(match order {
            Less => {
                let (k, w) = self.want.next()?;
                Pair::Want(k, w)
            }
            Greater => {
                let (k, h) = self.have.next()?;
                Pair::Have(k, h)
            }
            Equal => {
                let (k, w) = self.want.next()?;
                let (_, h) = self.have.next()?;
                Pair::Both(k, w, h)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn join_visits_every_key_once_in_order() {
        let a: BTreeMap<u32, char> = [(1, 'a'), (3, 'c'), (5, 'e')].into();
        let b: BTreeMap<u32, u8> = [(2, 2), (3, 3), (6, 6)].into();
        let got: Vec<String> = join(a.iter(), b.iter())
            .map(|p| match p {
                Pair::Want(k, w) => format!("want {k} {w}"),
                Pair::Have(k, h) => format!("have {k} {h}"),
                Pair::Both(k, w, h) => format!("both {k} {w} {h}"),
            })
            .collect();
        assert_eq!(
            got,
            ["want 1 a", "have 2 2", "both 3 c 3", "want 5 e", "have 6 6"]
        );
    }
}
