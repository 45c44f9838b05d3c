//! Showing diagnostics and messages on standard error.

use std::io::IsTerminal;

use slipway_config::{Diagnostics, SourceMap};

fn fancy() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Print every diagnostic with its snippet: coloured on a terminal, plain otherwise.
pub fn report_diagnostics(sources: &SourceMap, diagnostics: &Diagnostics) {
    let theme = if fancy() {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    let handler = miette::GraphicalReportHandler::new_themed(theme).with_context_lines(1);
    for d in diagnostics.iter() {
        let report = d.to_report(sources);
        let mut out = String::new();
        // The plain line first: `file:line:column: error: message`, easy to grep.
        eprintln!(
            "{}",
            d.render_plain(sources).lines().next().unwrap_or_default()
        );
        if handler.render_report(&mut out, &report).is_ok() {
            eprint!("{out}");
        }
    }
}

pub fn warn(message: &str) {
    eprintln!("slipway: warning: {message}");
}

pub use slipway_contract::errors::chain;
