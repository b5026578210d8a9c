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

/// The root table, or `None` when toml_edit must decide.
pub(crate) fn document(text: &str) -> Option<Table<'_>> {
    let source = Source::new(text);
    let tokens = source.lex().into_vec();
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
        return None;
    }
    events.builder.finish()
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
