//! encoding/json's `MarshalIndent(v, "", "    ")`.

use std::fmt::Write as _;

use super::GoValue;

pub(super) fn json(v: &GoValue, depth: usize, out: &mut String) {
    let indent = |out: &mut String, d: usize| {
        out.push('\n');
        for _ in 0..d {
            out.push_str("    ");
        }
    };
    match v {
        GoValue::Null => out.push_str("null"),
        GoValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        GoValue::Int(n) => {
            let _ = write!(out, "{n}");
        }
        GoValue::Str(s) => json_string(s, out),
        GoValue::Seq(items) if items.is_empty() => out.push_str("[]"),
        GoValue::Map(entries) if entries.is_empty() => out.push_str("{}"),
        GoValue::Seq(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, depth + 1);
                json(item, depth + 1, out);
            }
            indent(out, depth);
            out.push(']');
        }
        GoValue::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, depth + 1);
                json_string(k, out);
                out.push_str(": ");
                json(v, depth + 1, out);
            }
            indent(out, depth);
            out.push('}');
        }
    }
}

/// A JSON string as encoding/json escapes it: `<`, `>`, `&`, U+2028 and
/// U+2029 too (it escapes HTML by default).
pub(super) fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
