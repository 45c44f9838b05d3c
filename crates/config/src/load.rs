//! Reading one or more configuration files into one merged, validated config.

use std::path::PathBuf;

use crate::decode::{Ctx, FromNode, PackageRef};
use crate::diag::{Diagnostic, Diagnostics};
use crate::merge::merge;
use crate::model::Config;
use crate::source::{FileId, SourceMap, Sp, Span, line_column};
use crate::validate::validate;
use crate::yaml;

/// One configuration source as given on the command line.
#[derive(Clone, Debug)]
pub struct Input {
    /// Shown in diagnostics: the path as given, or `<stdin>`.
    pub name: String,
    /// What `@pkg:` paths are relative to: the file's directory, or the
    /// working directory for standard input.
    pub base_dir: PathBuf,
    pub bytes: Vec<u8>,
}

/// A configuration that parsed and validated; it may still carry warnings.
#[derive(Debug)]
pub struct Loaded {
    pub sources: SourceMap,
    pub config: Config,
    /// Every `@pkg:` scalar, in the order written.
    pub packages: Vec<Sp<PackageRef>>,
    /// Warnings only.
    pub warnings: Diagnostics,
}

/// A configuration with errors: every one found, with the sources to show them.
#[derive(Debug)]
pub struct LoadError {
    pub sources: SourceMap,
    /// Errors and warnings, in file order.
    pub diagnostics: Diagnostics,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.diagnostics.error_count();
        write!(
            f,
            "the configuration has {n} error{}",
            if n == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for LoadError {}

/// Parse, merge in order and validate `inputs`, reporting every problem.
pub fn load(inputs: Vec<Input>) -> Result<Loaded, LoadError> {
    let mut sources = SourceMap::new();
    let mut diags = Diagnostics::new();
    let mut configs = Vec::new();
    let mut packages = Vec::new();
    let mut complete = true;
    for input in inputs {
        let text = match std::str::from_utf8(&input.bytes) {
            Ok(text) => text.to_string(),
            Err(err) => {
                // Keep the valid prefix so the error can show where it breaks.
                let valid = String::from_utf8_lossy(&input.bytes[..err.valid_up_to()]).into_owned();
                let id = sources.add(input.name, input.base_dir, &valid);
                let (line, column) = line_column(&valid, valid.len());
                diags.push(Diagnostic::error(
                    "encoding",
                    Span {
                        file: id,
                        offset: valid.len(),
                        len: 0,
                        line,
                        column,
                    },
                    format!(
                        "the file is not valid UTF-8: invalid byte 0x{:02x} at byte offset {}",
                        input.bytes.get(err.valid_up_to()).copied().unwrap_or(0),
                        err.valid_up_to()
                    ),
                ));
                complete = false;
                continue;
            }
        };
        let base_dir = input.base_dir.clone();
        let id = sources.add(input.name, input.base_dir, &text);
        match parse_file(id, &text, base_dir, &mut diags) {
            Some((config, pkgs)) => {
                configs.push(config);
                packages.extend(pkgs);
            }
            None => complete = false,
        }
    }
    // Check what could be read even when some of it could not, so one run
    // reports every problem; cross-references are checked only on a complete
    // model, where a missing name really is missing.
    let complete = complete && !diags.has_errors();
    if !configs.is_empty() {
        let config = merge(configs);
        validate(&config, complete, &mut diags);
        if complete && !diags.has_errors() {
            return Ok(Loaded {
                sources,
                config,
                packages,
                warnings: diags.sorted(),
            });
        }
    }
    Err(LoadError {
        sources,
        diagnostics: diags.sorted(),
    })
}

/// One file: YAML, then the model. `None` when it could not be read at all.
fn parse_file(
    id: FileId,
    text: &str,
    base_dir: PathBuf,
    diags: &mut Diagnostics,
) -> Option<(Config, Vec<Sp<PackageRef>>)> {
    let root = match yaml::parse(id, text) {
        Ok(root) => root,
        Err(err) => {
            let mut d = Diagnostic::error("syntax", err.span, err.message).with_label("here");
            if let Some(help) = err.help {
                d = d.with_help(help);
            }
            diags.push(d);
            return None;
        }
    };
    if root.value == yaml::Value::Null {
        diags.push(Diagnostic::warning(
            "empty-file",
            root.span,
            "the file is empty: it adds nothing to the configuration",
        ));
        return Some((Config::default(), Vec::new()));
    }
    let mut cx = Ctx {
        diags,
        text,
        base_dir: &base_dir,
        packages: Vec::new(),
    };
    let config = Config::from_node(&root, "", &mut cx);
    let packages = std::mem::take(&mut cx.packages);
    config.map(|c| (c, packages))
}

/// Parse one file without merging or validating: the model as written.
pub fn parse_unchecked(name: &str, text: &str) -> Result<Config, LoadError> {
    let mut sources = SourceMap::new();
    let mut diags = Diagnostics::new();
    let id = sources.add(name, PathBuf::from("/"), text);
    match parse_file(id, text, PathBuf::from("/"), &mut diags) {
        Some((config, _)) if !diags.has_errors() => Ok(config),
        _ => Err(LoadError {
            sources,
            diagnostics: diags.sorted(),
        }),
    }
}

/// Parse a configuration held in memory (tests, tools): one file named `name`.
pub fn load_str(name: &str, text: &str) -> Result<Loaded, LoadError> {
    load(vec![Input {
        name: name.to_string(),
        base_dir: PathBuf::from("."),
        bytes: text.as_bytes().to_vec(),
    }])
}
