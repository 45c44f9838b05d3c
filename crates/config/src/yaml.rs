//! Reading YAML into a tree of nodes that all know where they were written.
//!
//! This is the only place that talks to the YAML parser. Everything after it
//! works on [`Node`]s, so every later error can point at file:line:column.
//! The parser runs with explicit limits, so hostile input (alias bombs, deep
//! nesting, huge files) ends in an error, never in unbounded time or memory.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::source::{FileId, LineIndex, Span};
use crate::yaml_errors;

/// Largest configuration file accepted, in bytes.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;
/// Deepest nesting of sequences and mappings accepted (LinuxKit files need
/// fewer than ten levels).
pub const MAX_DEPTH: usize = 32;
/// Stack for the parser's thread: deserialising is recursive, and unoptimised
/// builds use tens of kilobytes a level.
const PARSER_STACK_BYTES: usize = 32 * 1024 * 1024;
/// Most nodes (scalars, sequences, mappings) one file may produce, aliases expanded.
pub const MAX_NODES: usize = 1_000_000;
/// Most events replayed through aliases in one file.
pub const MAX_ALIAS_EVENTS: usize = 100_000;

/// A YAML value with its place in the source.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in the order written; duplicate keys are kept so that they can be reported.
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// What kind of value this is, as an error message names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// Why a file could not be read as YAML at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: String,
    pub span: Span,
    pub help: Option<String>,
}

/// Parse `text` (already checked to be UTF-8) into a node tree.
fn parser_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            max_nodes: MAX_NODES,
            max_reader_input_bytes: Some(MAX_FILE_BYTES),
            max_documents: 1,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_ALIAS_EVENTS,
            max_replay_stack_depth: 16,
        },
        strict_indentation: true,
        strict_booleans: true,
        // `mode: 0755` keeps its spelling, so it reads as the octal string it means.
        leading_zero_numbers_as_strings: true,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
        merge_keys: serde_saphyr::MergeKeyPolicy::Merge,
        with_snippet: false,
    }
}

pub fn parse(file: FileId, text: &str) -> Result<Node, SyntaxError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(SyntaxError {
            message: format!(
                "file is {} bytes; configuration files are limited to {} bytes",
                text.len(),
                MAX_FILE_BYTES
            ),
            span: Span {
                file,
                line: 1,
                column: 1,
                ..Span::default()
            },
            help: None,
        });
    }
    if text.trim().is_empty() {
        return Ok(Node {
            value: Value::Null,
            span: Positions::new(file, text).span(0, 0),
        });
    }
    let parsed = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("yaml".into())
            .stack_size(PARSER_STACK_BYTES)
            .spawn_scoped(scope, || {
                let at = Positions {
                    file,
                    text,
                    lines: LineIndex::new(text),
                };
                match serde_saphyr::from_str_with_options::<Spanned<Raw>>(text, parser_options()) {
                    Ok(root) => Ok(at.convert(root)),
                    Err(err) => Err(at.syntax_error(&err)),
                }
            })
            .map(|handle| handle.join())
    });
    match parsed {
        Ok(Ok(result)) => result,
        // The thread could not start, or the parser panicked: report, never unwind.
        Ok(Err(_)) | Err(_) => Err(SyntaxError {
            message: "the YAML parser failed on this file".into(),
            span: Positions::new(file, text).span(0, 0),
            help: None,
        }),
    }
}

/// Turns the parser's locations into [`Span`]s of one file.
struct Positions<'t> {
    file: FileId,
    text: &'t str,
    lines: LineIndex,
}

impl<'t> Positions<'t> {
    fn new(file: FileId, text: &'t str) -> Positions<'t> {
        Positions {
            file,
            text,
            lines: LineIndex::new(text),
        }
    }

    fn span(&self, offset: usize, len: usize) -> Span {
        let (line, column) = self.lines.line_column(self.text, offset);
        Span {
            file: self.file,
            offset,
            len,
            line,
            column,
        }
    }

    fn location(&self, loc: &serde_saphyr::Location) -> Span {
        let span = loc.span();
        let text = self.text;
        match (span.byte_offset(), span.byte_len()) {
            (Some(offset), Some(len)) => {
                let offset = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(text.len());
                let len = usize::try_from(len).unwrap_or(0).min(text.len() - offset);
                self.span(offset, len)
            }
            // Errors carry a line and column only: find their byte offset so
            // the snippet shows that line, not the first.
            _ => {
                let line = u32::try_from(loc.line()).unwrap_or(u32::MAX);
                let column = u32::try_from(loc.column()).unwrap_or(u32::MAX);
                match self.lines.offset(text, line, column) {
                    Some(offset) => self.span(offset, 0),
                    None => self.span(text.len(), 0),
                }
            }
        }
    }

    fn convert(&self, raw: Spanned<Raw>) -> Node {
        let span = self.location(&raw.referenced);
        let value = match raw.value {
            Raw::Null => Value::Null,
            Raw::Bool(b) => Value::Bool(b),
            Raw::Int(i) => Value::Int(i),
            Raw::Float(f) => Value::Float(f),
            Raw::Str(s) => Value::Str(s),
            Raw::Seq(items) => Value::Seq(items.into_iter().map(|n| self.convert(n)).collect()),
            Raw::Map(entries) => Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (self.convert(k), self.convert(v)))
                    .collect(),
            ),
        };
        Node { value, span }
    }

    fn syntax_error(&self, err: &serde_saphyr::Error) -> SyntaxError {
        let text = self.text;
        let span = match err.location() {
            Some(loc) => self.location(&loc),
            None => self.span(0, 0),
        };
        let message = explain_limit(&strip_location_suffix(&err.to_string()));
        if let Some(found) = yaml_errors::culprit(text, span.offset, &message) {
            return SyntaxError {
                // The parser's words stay, after what the mistake is.
                message: format!("{} ({message})", found.message),
                span: self.span(found.offset, 1),
                help: found.help,
            };
        }
        let help = text
            .get(span.offset..)
            .filter(|rest| rest.starts_with("@pkg:") || message.contains('@'))
            .map(|_| "`@pkg:` references must be quoted: \"@pkg:./path\"".to_string());
        SyntaxError {
            message,
            span,
            help,
        }
    }
}

/// Say which of our limits a parser limit error is about, in our words.
fn explain_limit(message: &str) -> String {
    let limit = if message.contains("Depth") || message.contains("recursion limit") {
        Some(format!(
            "the YAML nests deeper than the limit of {MAX_DEPTH} levels"
        ))
    } else if message.contains("Nodes") || message.contains("Events") {
        Some(format!(
            "the YAML expands to more than {MAX_NODES} values (aliases included)"
        ))
    } else if message.contains("alias replay") || message.contains("Aliases") {
        Some(format!(
            "aliases expand to more than {MAX_ALIAS_EVENTS} values: refusing a possible alias bomb"
        ))
    } else if message.contains("Documents") {
        Some("a configuration file holds one YAML document".to_string())
    } else {
        None
    };
    limit.unwrap_or_else(|| message.to_string())
}

/// The parser appends " at line L column C"; we show positions our own way.
fn strip_location_suffix(message: &str) -> String {
    let first = message.lines().next().unwrap_or(message);
    match first.rfind(" at line ") {
        Some(i) => first[..i].to_string(),
        None => first.to_string(),
    }
}

/// What the parser gives us before positions are turned into [`Span`]s.
enum Raw {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(i128::from(v)))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::Int(i128::from(v)))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw, E> {
        Ok(i128::try_from(v).map_or(Raw::Float(v as f64), Raw::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Raw, E> {
        Ok(Raw::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(RawVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Raw>>()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Raw>>()? {
            let value = map.next_value::<Spanned<Raw>>()?;
            entries.push((key, value));
        }
        Ok(Raw::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Node, SyntaxError> {
        parse(FileId(0), text)
    }

    #[test]
    fn spans_point_at_values() {
        let text = "services:\n  - name: getty\n    image: linuxkit/getty:v1\n";
        let root = p(text).unwrap();
        let Value::Map(top) = &root.value else {
            panic!("{root:?}")
        };
        let Value::Seq(items) = &top[0].1.value else {
            panic!()
        };
        let Value::Map(svc) = &items[0].value else {
            panic!()
        };
        let (k, v) = &svc[1];
        assert_eq!(k.value, Value::Str("image".into()));
        assert_eq!((v.span.line, v.span.column), (3, 12));
        assert_eq!(
            &text[v.span.offset..v.span.offset + v.span.len],
            "linuxkit/getty:v1"
        );
    }

    #[test]
    fn scalars_keep_their_kind() {
        let root = p("a: 1\nb: '1'\nc: true\nd: yes\ne: ~\nf: 1.5\ng: 0755\n").unwrap();
        let Value::Map(m) = root.value else { panic!() };
        let kinds: Vec<_> = m.iter().map(|(_, v)| v.value.clone()).collect();
        assert_eq!(kinds[0], Value::Int(1));
        assert_eq!(kinds[1], Value::Str("1".into()));
        assert_eq!(kinds[2], Value::Bool(true));
        assert_eq!(kinds[3], Value::Str("yes".into()));
        assert_eq!(kinds[4], Value::Null);
        assert_eq!(kinds[5], Value::Float(1.5));
        assert_eq!(kinds[6], Value::Str("0755".into()));
    }

    #[test]
    fn duplicate_keys_are_kept() {
        let root = p("a: 1\na: 2\n").unwrap();
        let Value::Map(m) = root.value else { panic!() };
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = p("a:\n  - b\n c: [\n").unwrap_err();
        assert!(err.span.line >= 2, "{err:?}");
    }

    #[test]
    fn unquoted_pkg_reference_gets_a_hint() {
        let err = p("init:\n  - @pkg:./init\n").unwrap_err();
        assert!(err.help.unwrap().contains("quoted"));
    }
}
