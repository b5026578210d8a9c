//! "Did you mean …?": the closest candidate within a small edit distance.

/// Optimal-string-alignment distance: Levenshtein plus adjacent transpositions, so that
/// "requrie" is one edit from "require", as a typist would count it.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev2: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        prev2 = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

/// Words longer than this get no suggestion (names have at most 63 characters).
const MAX_WORD: usize = 64;

/// The candidate closest to `word` at distance <= 2 (and not a complete rewrite of a short
/// word), the first one winning a tie; failing that, the only candidate that `word` is a
/// prefix of ("rekey" → "rekey-interval").
pub(crate) fn closest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    if word.len() > MAX_WORD {
        return None; // no name or key is this long, and the distance would cost len²
    }
    let lower = word.to_lowercase();
    let candidates: Vec<&str> = candidates.into_iter().filter(|c| *c != word).collect();
    let near = candidates
        .iter()
        .map(|c| (distance(&lower, &c.to_lowercase()), *c))
        .filter(|(d, c)| *d <= 2 && *d < c.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c);
    near.or_else(|| {
        let mut by_prefix = candidates
            .iter()
            .filter(|c| lower.len() >= 3 && c.to_lowercase().starts_with(&lower));
        match (by_prefix.next(), by_prefix.next()) {
            (Some(c), None) => Some(*c),
            _ => None,
        }
    })
}

/// ` (did you mean "x"?)`, or nothing.
pub(crate) fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> String {
    closest(word, candidates)
        .map(|c| format!(" (did you mean \"{c}\"?)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("requir", "require"), 1);
        assert_eq!(distance("requrie", "require"), 1);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions() {
        let actions = ["require", "request", "permit", "block"];
        assert_eq!(closest("requir", actions), Some("require"));
        assert_eq!(closest("Permit", actions), Some("permit"));
        assert_eq!(closest("allow", actions), None);
        assert_eq!(closest("x", ["y"]), None);
        assert_eq!(
            closest("rekey", ["grace", "rekey-interval"]),
            Some("rekey-interval")
        );
        assert_eq!(closest("aes-gcm", ["aes-gcm-128", "aes-gcm-256"]), None);
        assert_eq!(did_you_mean("bock", actions), " (did you mean \"block\"?)");
        assert_eq!(did_you_mean("zzzzz", actions), "");
    }
}
