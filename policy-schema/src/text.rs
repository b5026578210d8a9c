//! The file's own text inside messages: cut when long and with invisible characters
//! spelled out, so that a 10 MB value or a right-to-left override cannot flood or disguise
//! a message (in a terminal or the daemon's log).

/// Values and names longer than this many characters are cut in messages.
pub(crate) const MAX_SHOWN: usize = 60;

/// `s` as a message shows it: characters a terminal would not print as themselves
/// (controls, bidirectional overrides, zero-width characters…) escaped as `\u{…}`, and cut
/// after [`MAX_SHOWN`] characters with `…`. Quotes and backslashes stay as written.
pub(crate) fn shown(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_SHOWN + 8));
    for (i, c) in s.chars().enumerate() {
        if i == MAX_SHOWN {
            out.push('…');
            break;
        }
        push_visible(&mut out, c);
    }
    out
}

/// `s` cut after [`MAX_SHOWN`] characters with `…` (for text escaped elsewhere).
pub(crate) fn cut(s: &str) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(MAX_SHOWN) {
        Some((at, _)) => format!("{}…", &s[..at]).into(),
        None => s.into(),
    }
}

/// Whether [`shown`] would copy `s` unchanged (the common case, checked without copying).
pub(crate) fn is_plain(s: &str) -> bool {
    s.len() <= MAX_SHOWN && s.bytes().all(|b| matches!(b, b' '..=b'~'))
}

fn push_visible(out: &mut String, c: char) {
    if matches!(c, '"' | '\'' | '\\') || c.escape_debug().len() == 1 {
        out.push(c);
    } else {
        out.extend(c.escape_debug());
    }
}

/// One character for a message: `'ü'`, or `U+202E` for one that does not print as itself.
pub(crate) fn char_desc(c: char) -> String {
    if c.escape_debug().len() == 1 && !c.is_whitespace() {
        format!("'{c}'")
    } else {
        format!("U+{:04X}", u32::from(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_and_invisible_characters_spelled_out() {
        let long = "x".repeat(10_000_000);
        assert_eq!(shown(&long).chars().count(), MAX_SHOWN + 1);
        assert_eq!(shown("ab\u{202e}cd"), "ab\\u{202e}cd");
        assert_eq!(shown("a\u{200b}b\tc"), "a\\u{200b}b\\tc");
        assert_eq!(shown("über \"q\" \\"), "über \"q\" \\");
        assert!(is_plain("web-1") && !is_plain("ü") && !is_plain(&long));
        assert_eq!(char_desc('ü'), "'ü'");
        assert_eq!(char_desc('\u{202e}'), "U+202E");
        assert_eq!(char_desc(' '), "U+0020");
    }
}
