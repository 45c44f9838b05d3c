//! Checking `files:` entries, and file modes.

use std::collections::HashMap;

use crate::diag::{Diagnostic, Diagnostics};
use crate::model::File;
use crate::source::{Sp, Span};

use super::Context;
use super::spec::check_id;

/// One `files:` entry; `seen` holds the paths of the entries before it.
pub(super) fn check_file(
    f: &Sp<File>,
    path: &str,
    cx: &Context,
    seen: &mut HashMap<String, Span>,
    diags: &mut Diagnostics,
) {
    let anchor = [
        &f.path,
        &f.contents,
        &f.source,
        &f.metadata,
        &f.symlink,
        &f.mode,
    ]
    .into_iter()
    .flatten()
    .map(|s| s.span)
    .next()
    .unwrap_or_default();
    check_file_path(f, path, anchor, seen, diags);
    check_file_kind(f, path, anchor, diags);
    if let Some(m) = &f.metadata
        && !matches!(m.value.as_str(), "yaml" | "json")
    {
        diags.push(Diagnostic::error(
            "file",
            m.span,
            format!(
                "{path}.metadata: expected `yaml` or `json`, found `{}`",
                m.value
            ),
        ));
    }
    if let Some(o) = &f.optional
        && o.value
        && f.source.is_none()
    {
        diags.push(Diagnostic::warning(
            "file",
            o.span,
            format!("{path}.optional applies only to files read from a `source`"),
        ));
    }
    if let Some(m) = &f.mode
        && let Err(msg) = parse_mode(&m.value)
    {
        diags.push(Diagnostic::error(
            "file-mode",
            m.span,
            format!("{path}.mode: {msg}"),
        ));
    }
    for (key, id) in [("uid", &f.uid), ("gid", &f.gid)] {
        if let Some(id) = id {
            check_id(id, &format!("{path}.{key}"), cx, diags);
        }
    }
}

/// `path`: given, inside the image, written once, not hidden by a tmpfs.
fn check_file_path(
    f: &File,
    path: &str,
    anchor: Span,
    seen: &mut HashMap<String, Span>,
    diags: &mut Diagnostics,
) {
    match &f.path {
        None => diags.push(Diagnostic::error(
            "file",
            anchor,
            format!("{path}: missing required key `path`"),
        )),
        Some(p) => {
            let clean = p.value.trim_start_matches('/');
            if clean.is_empty() {
                diags.push(Diagnostic::error(
                    "file",
                    p.span,
                    format!("{path}.path names no file"),
                ));
            } else if clean.split('/').any(|c| c == "..") {
                diags.push(Diagnostic::error(
                    "file",
                    p.span,
                    format!("{path}.path: `{}` must not contain `..`", p.value),
                ));
            } else if let Some(&first) = seen.get(clean) {
                diags.push(
                    Diagnostic::warning(
                        "file",
                        p.span,
                        format!("{path}.path: `{clean}` is written twice; the later entry wins"),
                    )
                    .with_related(first, "first written here"),
                );
            } else {
                seen.insert(clean.to_string(), p.span);
            }
            if ["var/", "run/", "tmp/"]
                .iter()
                .any(|d| clean.starts_with(d))
            {
                diags.push(Diagnostic::warning(
                    "file",
                    p.span,
                    format!("{path}.path: /{clean} is under a directory that is a tmpfs at boot, which hides it"),
                ));
            }
        }
    }
}

/// What the entry is: a directory, a symlink, or a file with exactly one
/// of `contents`, `source` and `metadata`.
fn check_file_kind(f: &File, path: &str, anchor: Span, diags: &mut Diagnostics) {
    let directory = f.directory.as_ref().is_some_and(|d| d.value);
    let sources: Vec<(&str, Span)> = [
        ("contents", &f.contents),
        ("source", &f.source),
        ("metadata", &f.metadata),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| (k, v.span)))
    .collect();
    if directory {
        if let Some((k, span)) = sources.first() {
            diags.push(Diagnostic::error(
                "file",
                *span,
                format!("{path}: a directory cannot have `{k}`"),
            ));
        }
        if let Some(s) = &f.symlink {
            diags.push(Diagnostic::error(
                "file",
                s.span,
                format!("{path}: an entry cannot be both a directory and a symlink"),
            ));
        }
    } else if let Some(s) = &f.symlink {
        if let Some((k, span)) = sources.first() {
            diags.push(Diagnostic::error(
                "file",
                *span,
                format!("{path}: a symlink cannot have `{k}`"),
            ));
        }
        if s.value.is_empty() {
            diags.push(Diagnostic::error(
                "file",
                s.span,
                format!("{path}.symlink: the target is empty"),
            ));
        }
    } else {
        match sources.as_slice() {
            [] => diags.push(
                Diagnostic::error("file", anchor, format!("{path}: the file has no contents"))
                    .with_help("give exactly one of `contents`, `source` or `metadata` (or `directory: true`, or `symlink`)"),
            ),
            [_] => {}
            [(a, _), (b, span), ..] => diags.push(Diagnostic::error(
                "file",
                *span,
                format!("{path}: `{a}` and `{b}` both given; a file has exactly one of contents, source and metadata"),
            )),
        }
    }
}

/// An octal file mode such as `0644`, at most `07777`.
pub fn parse_mode(text: &str) -> Result<u32, ModeError> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(8)) {
        return Err(ModeError::NotOctal(text.to_string()));
    }
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => Err(ModeError::TooLarge(text.to_string())),
    }
}

/// Why a file mode does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModeError {
    #[error("`{0}` is not an octal mode such as \"0644\"")]
    NotOctal(String),
    #[error("`{0}` is larger than the largest mode, 07777")]
    TooLarge(String),
}
