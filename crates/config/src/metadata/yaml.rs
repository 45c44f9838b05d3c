//! yaml.v2's block layout and quoting, for the values configurations hold.
//!
//! Hand-written: no YAML crate lays out documents as yaml.v2 does (sequences
//! not indented under their key, `[]`/`{}` for empty collections, its
//! choice of quoting), and the metadata file is compared byte for byte.

use std::fmt::Write as _;

use super::Json;

pub(super) fn yaml_map(entries: &[(String, Json)], indent: usize, out: &mut String) {
    for (i, (k, v)) in entries.iter().enumerate() {
        // The first key of a mapping inside a sequence shares the `- ` line.
        if i > 0 || !out.ends_with("- ") {
            pad(out, indent);
        }
        out.push_str(&yaml_str(k));
        out.push(':');
        yaml_value_after_key(v, indent, out);
    }
}

pub(super) fn yaml_value_after_key(v: &Json, indent: usize, out: &mut String) {
    match v {
        Json::Obj(m) if !m.is_empty() => {
            out.push('\n');
            yaml_map(m, indent + 2, out);
        }
        Json::Arr(s) if !s.is_empty() => {
            out.push('\n');
            // yaml.v2 does not indent a sequence under its mapping key.
            yaml_seq(s, indent, out);
        }
        other => {
            out.push(' ');
            yaml_scalar_line(other, indent + 2, out);
        }
    }
}

pub(super) fn yaml_seq(items: &[Json], indent: usize, out: &mut String) {
    for item in items {
        pad(out, indent);
        out.push_str("- ");
        match item {
            Json::Obj(m) if !m.is_empty() => yaml_map(m, indent + 2, out),
            Json::Arr(s) if !s.is_empty() => {
                out.push('\n');
                yaml_seq(s, indent + 2, out);
            }
            other => yaml_scalar_line(other, indent + 2, out),
        }
    }
}

/// A scalar (or empty collection) and its line end; `indent` is where a
/// literal block's lines start.
pub(super) fn yaml_scalar_line(v: &Json, indent: usize, out: &mut String) {
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Json::UInt(n) => {
            let _ = write!(out, "{n}");
        }
        Json::Arr(_) => out.push_str("[]"),
        Json::Obj(_) => out.push_str("{}"),
        Json::Str(s) if s.contains('\n') && literal_ok(s) => {
            literal(s, indent, out);
            return;
        }
        Json::Str(s) => out.push_str(&yaml_str(s)),
    }
    out.push('\n');
}

/// Whether a multi-line string can be a literal block that reads back the
/// same: printable, no trailing spaces on a line, no leading space first.
pub(super) fn literal_ok(s: &str) -> bool {
    !s.starts_with([' ', '\t', '\n'])
        && !s.chars().any(|c| c != '\n' && c.is_control())
        && s.split('\n').all(|l| !l.ends_with([' ', '\t']))
}

/// `|`, `|-` or `|+` by how the string ends, as libyaml chooses.
pub(super) fn literal(s: &str, indent: usize, out: &mut String) {
    let body = s.trim_end_matches('\n');
    let trailing = s.len() - body.len();
    out.push('|');
    match trailing {
        0 => out.push('-'),
        1 => {}
        _ => out.push('+'),
    }
    out.push('\n');
    for line in s[..body.len()].split('\n') {
        if !line.is_empty() {
            pad(out, indent);
            out.push_str(line);
        }
        out.push('\n');
    }
    for _ in 1..trailing {
        out.push('\n');
    }
}

/// A string as yaml.v2 writes it: plain when it reads back as the same
/// string, double-quoted when it would read as another type, single-quoted
/// when only its characters forbid plain style.
pub(super) fn yaml_str(s: &str) -> String {
    if resolves_to_other_type(s)
        || s.chars().any(|c| c.is_control())
        || !s.is_ascii() && has_special_unicode(s)
    {
        return double_quoted(s);
    }
    if plain_ok(s) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "''"))
}

pub(super) fn has_special_unicode(s: &str) -> bool {
    s.chars()
        .any(|c| matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}'))
}

pub(super) fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() || has_special_unicode(&c.to_string()) => {
                let n = c as u32;
                if n <= 0xff {
                    let _ = write!(out, "\\x{n:02X}");
                } else {
                    let _ = write!(out, "\\u{n:04X}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// yaml.v2's resolver (YAML 1.1): strings that would read back as null, a
/// boolean or a number must be quoted.
pub(super) fn resolves_to_other_type(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
        ".NaN", ".NAN", "<<",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let plain = s.replace('_', "");
    let digits = plain.strip_prefix(['+', '-']).unwrap_or(&plain);
    if digits.is_empty() {
        return false;
    }
    let all = |t: &str, f: fn(char) -> bool| !t.is_empty() && t.chars().all(f);
    if all(digits, |c| c.is_ascii_digit()) {
        return true;
    }
    if let Some(hex) = digits.strip_prefix("0x") {
        return all(hex, |c| c.is_ascii_hexdigit());
    }
    if let Some(bin) = digits.strip_prefix("0b") {
        return all(bin, |c| c == '0' || c == '1');
    }
    // Floats: digits with one dot and an optional exponent.
    let (mantissa, exponent) = match digits.find(['e', 'E']) {
        Some(i) => (&digits[..i], Some(&digits[i + 1..])),
        None => (digits, None),
    };
    let mantissa_ok = mantissa.matches('.').count() <= 1
        && mantissa.chars().any(|c| c.is_ascii_digit())
        && mantissa.chars().all(|c| c.is_ascii_digit() || c == '.');
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        all(e, |c| c.is_ascii_digit())
    });
    if mantissa_ok && exponent_ok {
        return true;
    }
    // Sexagesimal numbers (`1:20`), which yaml.v2 quotes as well.
    let parts: Vec<&str> = digits.split(':').collect();
    parts.len() > 1
        && parts[0].chars().next().is_some_and(|c| c.is_ascii_digit())
        && parts
            .iter()
            .all(|p| all(p, |c| c.is_ascii_digit() || c == '.'))
}

/// libyaml's test for plain style in block context.
pub(super) fn plain_ok(s: &str) -> bool {
    let first = match s.chars().next() {
        Some(c) => c,
        None => return false,
    };
    if s.starts_with(' ') || s.ends_with(' ') || s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    let next = s.chars().nth(1);
    let indicator_start = match first {
        '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"' | '%'
        | '@' | '`' => true,
        '?' | ':' | '-' => next.is_none_or(|c| c == ' '),
        _ => false,
    };
    if indicator_start {
        return false;
    }
    let chars: Vec<char> = s.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        let after = chars.get(i + 1);
        match c {
            ':' if after.is_none_or(|a| *a == ' ') => return false,
            '#' if i > 0 && chars[i - 1] == ' ' => return false,
            _ => {}
        }
    }
    true
}

fn pad(out: &mut String, n: usize) {
    for _ in 0..n {
        out.push(' ');
    }
}
