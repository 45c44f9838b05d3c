//! Diagnostics: what is wrong with a configuration, and where.
//!
//! Every problem found is collected, so one run reports all of them. They
//! render two ways: one plain `file:line:column: error: message` line each
//! (for logs and golden tests), or as miette reports with the snippet.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use crate::source::{SourceMap, Span};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem in a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable name for the kind of problem, e.g. `unknown-key`.
    pub code: &'static str,
    pub message: String,
    /// Where; `None` only for problems with no place in any file.
    pub span: Option<Span>,
    /// A short note shown under the snippet.
    pub label: Option<String>,
    pub help: Option<String>,
    /// Other places worth showing, e.g. the first of two duplicates.
    pub related: Vec<(Span, String)>,
}

impl Diagnostic {
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code,
            message: message.into(),
            span: Some(span),
            label: None,
            help: None,
            related: Vec::new(),
        }
    }

    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(code, span, message)
        }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_related(mut self, span: Span, note: impl Into<String>) -> Self {
        self.related.push((span, note.into()));
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:column: severity: message`, then indented help and related lines.
    pub fn render_plain(&self, sources: &SourceMap) -> String {
        let mut out = String::new();
        match self.span {
            Some(span) => {
                let _ = write!(
                    out,
                    "{}:{}:{}: ",
                    sources.name(span.file),
                    span.line,
                    span.column
                );
            }
            None => out.push_str("slipway: "),
        }
        let _ = write!(out, "{}: {}", self.severity, self.message);
        if let Some(help) = &self.help {
            let _ = write!(out, "\n    help: {help}");
        }
        for (span, note) in &self.related {
            let _ = write!(
                out,
                "\n    {}:{}:{}: note: {note}",
                sources.name(span.file),
                span.line,
                span.column
            );
        }
        out
    }

    /// This diagnostic as a JSON object (`validate --json`): `file`, `line`,
    /// `column` (1-based, columns in characters), `severity`, `code`,
    /// `message`, and `label`, `hint` and `related` where there are any.
    pub fn to_json(&self, sources: &SourceMap) -> serde_json::Value {
        let place = |span: &Span| {
            serde_json::json!({
                "file": sources.name(span.file),
                "line": span.line,
                "column": span.column,
            })
        };
        let mut out = match &self.span {
            Some(span) => place(span),
            None => serde_json::json!({ "file": null, "line": null, "column": null }),
        };
        out["severity"] = self.severity.to_string().into();
        out["code"] = self.code.into();
        out["message"] = self.message.clone().into();
        if let Some(label) = &self.label {
            out["label"] = label.clone().into();
        }
        if let Some(help) = &self.help {
            out["hint"] = help.clone().into();
        }
        if !self.related.is_empty() {
            out["related"] = self
                .related
                .iter()
                .map(|(span, note)| {
                    let mut r = place(span);
                    r["note"] = note.clone().into();
                    r
                })
                .collect();
        }
        out
    }

    /// This diagnostic as a miette report carrying its source snippet.
    pub fn to_report(&self, sources: &SourceMap) -> Report {
        let source = self
            .span
            .and_then(|span| sources.get(span.file))
            .map(|file| {
                miette::NamedSource::new(file.name.clone(), file.text.clone()).with_language("yaml")
            });
        Report {
            diagnostic: self.clone(),
            source,
            related: self
                .related
                .iter()
                .map(|(span, note)| RelatedReport {
                    note: note.clone(),
                    span: *span,
                    source: sources.get(span.file).map(|f| {
                        miette::NamedSource::new(f.name.clone(), f.text.clone())
                            .with_language("yaml")
                    }),
                })
                .collect(),
        }
    }
}

/// Everything found while reading one configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    pub fn error_count(&self) -> usize {
        self.items.iter().filter(|d| d.is_error()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// In file order: by file, then position, errors before warnings at one place.
    pub fn sorted(mut self) -> Self {
        self.items.sort_by_key(|d| {
            let at = d.span.map(|s| (s.file, s.offset));
            (at, d.severity)
        });
        self
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.is_error())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| !d.is_error())
    }

    /// All diagnostics, one plain block each.
    pub fn render_plain(&self, sources: &SourceMap) -> String {
        let mut out = String::new();
        for d in &self.items {
            out.push_str(&d.render_plain(sources));
            out.push('\n');
        }
        out
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

/// A [`Diagnostic`] with its source, ready for a miette handler.
#[derive(Debug)]
pub struct Report {
    diagnostic: Diagnostic,
    source: Option<miette::NamedSource<Arc<str>>>,
    related: Vec<RelatedReport>,
}

/// A secondary place of a [`Report`], shown as a note with its own snippet.
#[derive(Debug)]
struct RelatedReport {
    note: String,
    span: Span,
    source: Option<miette::NamedSource<Arc<str>>>,
}

fn source_span(span: Span) -> miette::SourceSpan {
    miette::SourceSpan::new(span.offset.into(), span.len)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl std::error::Error for Report {}

impl miette::Diagnostic for Report {
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.diagnostic
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let span = self.diagnostic.span?;
        let label = self.diagnostic.label.clone();
        Some(Box::new(std::iter::once(
            miette::LabeledSpan::new_primary_with_span(label, source_span(span)),
        )))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        if self.related.is_empty() {
            return None;
        }
        Some(Box::new(
            self.related.iter().map(|r| r as &dyn miette::Diagnostic),
        ))
    }
}

impl fmt::Display for RelatedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.note)
    }
}

impl std::error::Error for RelatedReport {}

impl miette::Diagnostic for RelatedReport {
    fn severity(&self) -> Option<miette::Severity> {
        Some(miette::Severity::Advice)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        Some(Box::new(std::iter::once(
            miette::LabeledSpan::new_primary_with_span(None, source_span(self.span)),
        )))
    }
}
