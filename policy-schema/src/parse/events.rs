//! Fast path: TOML text → [`Table`] straight from toml_parser's events, the lexer and
//! parser toml_edit itself runs, without toml_edit's formatting-preserving document (half
//! of a 10,000-host reload went into building it). The tree follows `builder`'s rules;
//! any parse error, float or date makes it decline, and the caller parses with toml_edit,
//! which then decides, reports or accepts exactly as before.

use std::borrow::Cow;

use toml_parser::decoder::{Encoding, ScalarKind};
use toml_parser::parser::{parse_document, EventReceiver, RecursionGuard, ValidateWhitespace};
use toml_parser::{ErrorSink, ParseError, Raw, Source, Span as TokenSpan};

use super::builder::Builder;
use super::tree::{Table, ValueKind};

/// toml_edit's nesting limit (`parser::LIMIT`); deeper documents are its error to report.
const LIMIT: u32 = 80;

/// What the event parser made of a text.
pub(crate) enum Outcome<'t> {
    Tree(Table<'t>),
    /// toml_edit must decide (and word any syntax error).
    Declined,
    /// A key path with more than `MAX_KEY_PARTS` parts, at this offset: reported here,
    /// never handed to toml_edit, whose tree of it could not be dropped on the stack.
    TooDeep(usize),
}

/// The root table, or why not.
pub(crate) fn document(text: &str) -> Outcome<'_> {
    let source = Source::new(text);
    let tokens = source.lex().into_vec();
    if let Some(at) = deep_key(&tokens) {
        return Outcome::TooDeep(at);
    }
    let mut events = Events {
        source,
        builder: Builder::new(),
    };
    let mut failed = Failed(false);
    {
        let mut ws = ValidateWhitespace::new(&mut events, source);
        let mut guard = RecursionGuard::new(&mut ws, LIMIT);
        parse_document(&tokens, &mut guard, &mut failed);
    }
    if failed.0 || events.builder.declined {
        return Outcome::Declined;
    }
    events
        .builder
        .finish()
        .map_or(Outcome::Declined, Outcome::Tree)
}

/// The most parts a key path may have: a header's or dotted key's parts plus those of the
/// keys of the inline tables around it (toml_edit's limit for nested arrays and inline
/// tables). The format needs two (`defaults.cipher`); a hostile file with 50,000 would
/// build a tree too deep to convert or drop on the stack.
pub(crate) const MAX_KEY_PARTS: usize = 80;

/// Offset of the key part that takes a key path past [`MAX_KEY_PARTS`], judged on the
/// tokens alone: also when the text has other errors or the builder declines it, so
/// toml_edit never gets such a text (it reports it at 1:1, and its tree and our
/// conversion of it recurse once per level).
fn deep_key(tokens: &[toml_parser::lexer::Token]) -> Option<usize> {
    use toml_parser::lexer::TokenKind as K;
    // Key parts of the inline tables open around here, and of the key being read.
    let (mut outer, mut open): (usize, Vec<usize>) = (0, Vec::new());
    let (mut parts, mut path, mut after_dot) = (0, 0, false);
    for t in tokens {
        match t.kind() {
            K::Whitespace => continue,
            K::Dot => {
                after_dot = true;
                continue;
            }
            K::Atom | K::BasicString | K::LiteralString => {
                parts = if after_dot { parts + 1 } else { 1 };
                if outer + parts > MAX_KEY_PARTS {
                    return Some(t.span().start());
                }
                after_dot = false;
                continue;
            }
            K::Equals => path = parts,
            K::LeftCurlyBracket => {
                open.push(path);
                outer += path;
            }
            K::RightCurlyBracket => outer -= open.pop().unwrap_or(0),
            // An inline table in an array sits under no key of its own.
            K::LeftSquareBracket | K::Comma => path = 0,
            _ => {}
        }
        (parts, after_dot) = (0, false);
    }
    None
}

/// Notes that the text has an error, without keeping it: toml_edit words the message.
struct Failed(bool);

impl ErrorSink for Failed {
    fn report_error(&mut self, _: ParseError) {
        self.0 = true;
    }
}

struct Events<'t> {
    source: Source<'t>,
    builder: Builder<'t>,
}

impl<'t> Events<'t> {
    fn raw(&self, span: TokenSpan, encoding: Option<Encoding>) -> Raw<'t> {
        let text = &self.source.input()[span.start()..span.end()];
        Raw::new_unchecked(text, encoding, span)
    }
}

impl EventReceiver for Events<'_> {
    fn std_table_open(&mut self, span: TokenSpan, _: &mut dyn ErrorSink) {
        self.builder.header_open(span.start());
    }
    fn std_table_close(&mut self, span: TokenSpan, _: &mut dyn ErrorSink) {
        self.builder.header_close(span.end(), false);
    }
    fn array_table_open(&mut self, span: TokenSpan, _: &mut dyn ErrorSink) {
        self.builder.header_open(span.start());
    }
    fn array_table_close(&mut self, span: TokenSpan, _: &mut dyn ErrorSink) {
        self.builder.header_close(span.end(), true);
    }
    fn inline_table_open(&mut self, span: TokenSpan, _: &mut dyn ErrorSink) -> bool {
        self.builder.open(span.start(), true);
        true
    }
    fn inline_table_close(&mut self, span: TokenSpan, _: &mut dyn ErrorSink) {
        self.builder.close(span.end(), false);
    }
    fn array_open(&mut self, span: TokenSpan, _: &mut dyn ErrorSink) -> bool {
        self.builder.open(span.start(), false);
        true
    }
    fn array_close(&mut self, span: TokenSpan, _: &mut dyn ErrorSink) {
        self.builder.close(span.end(), true);
    }
    fn simple_key(&mut self, span: TokenSpan, kind: Option<Encoding>, error: &mut dyn ErrorSink) {
        let mut name = Cow::Borrowed("");
        self.raw(span, kind).decode_key(&mut name, error);
        self.builder.key(span.start()..span.end(), name);
    }
    fn scalar(&mut self, span: TokenSpan, kind: Option<Encoding>, error: &mut dyn ErrorSink) {
        let mut text = Cow::Borrowed("");
        let kind = match self.raw(span, kind).decode_scalar(&mut text, error) {
            ScalarKind::String => ValueKind::String(text),
            ScalarKind::Boolean(b) => ValueKind::Boolean(b),
            ScalarKind::Integer(radix) => match i64::from_str_radix(&text, radix.value()) {
                Ok(i) => ValueKind::Integer(i),
                // toml_edit reports "integer number overflowed".
                Err(_) => return self.builder.decline(),
            },
            // Never valid in a policy; toml_edit checks their syntax and words the type.
            ScalarKind::Float | ScalarKind::DateTime => return self.builder.decline(),
        };
        self.builder.scalar(span.start()..span.end(), kind);
    }
    fn error(&mut self, _: TokenSpan, _: &mut dyn ErrorSink) {
        self.builder.decline();
    }
}
