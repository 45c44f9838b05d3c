//! JSON exactly as Go's `json.MarshalIndent(v, "", "    ")` writes it:
//! fields in declaration order, maps sorted by key, HTML-safe escaping
//! (`<`, `>`, `&` as `\u003c`...), no trailing newline. LinuxKit writes a
//! container's `config.json` and the `files[].metadata: json` file so.
//!
//! Hand-written because serde_json escapes differently and the output must
//! match LinuxKit's byte for byte.

use std::fmt::Write as _;

/// A JSON value with ordered objects.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn str(s: impl Into<String>) -> Json {
        Json::Str(s.into())
    }

    pub fn strings<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Json {
        Json::Arr(items.into_iter().map(|s| Json::str(s.as_ref())).collect())
    }

    /// A Go integer of any width.
    pub fn int(n: i128) -> Json {
        match (i64::try_from(n), u64::try_from(n)) {
            (Ok(i), _) => Json::Int(i),
            (_, Ok(u)) => Json::UInt(u),
            // No configuration value is wider than 64 bits.
            _ => Json::Str(n.to_string()),
        }
    }

    /// A Go `map[string]string`: keys sorted.
    pub fn string_map(pairs: &[(String, String)]) -> Json {
        let mut sorted: Vec<&(String, String)> = pairs.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        // A later duplicate key wins, as it would in a Go map.
        let mut out: Vec<(String, Json)> = Vec::new();
        for (k, v) in sorted {
            match out.last_mut() {
                Some((last, value)) if last == k => *value = Json::str(v),
                _ => out.push((k.clone(), Json::str(v))),
            }
        }
        Json::Obj(out)
    }

    /// Go's `MarshalIndent(v, "", "    ")`.
    pub fn to_go_indent(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0);
        out
    }

    fn write(&self, out: &mut String, depth: usize) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Json::UInt(u) => {
                let _ = write!(out, "{u}");
            }
            Json::Str(s) => escape(s, out),
            Json::Arr(items) if items.is_empty() => out.push_str("[]"),
            Json::Obj(fields) if fields.is_empty() => out.push_str("{}"),
            Json::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    item.write(out, depth + 1);
                }
                newline(out, depth);
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    escape(k, out);
                    out.push_str(": ");
                    v.write(out, depth + 1);
                }
                newline(out, depth);
                out.push('}');
            }
        }
    }
}

fn newline(out: &mut String, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str("    ");
    }
}

fn escape(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_layout() {
        let v = Json::Obj(vec![
            ("a".into(), Json::Arr(vec![])),
            ("b".into(), Json::Obj(vec![])),
            ("c".into(), Json::strings(["x<y", "t\tz"])),
            ("d".into(), Json::Obj(vec![("e".into(), Json::UInt(1))])),
        ]);
        assert_eq!(
            v.to_go_indent(),
            "{\n    \"a\": [],\n    \"b\": {},\n    \"c\": [\n        \"x\\u003cy\",\n        \"t\\tz\"\n    ],\n    \"d\": {\n        \"e\": 1\n    }\n}"
        );
    }

    #[test]
    fn null_html_escapes_and_every_integer_width() {
        let v = Json::Arr(vec![
            Json::Null,
            Json::str("a<b>&\"c\"\n\u{8}"),
            Json::int(-1),
            Json::int(i128::from(u64::MAX)),
        ]);
        assert_eq!(
            v.to_go_indent(),
            "[\n    null,\n    \"a\\u003cb\\u003e\\u0026\\\"c\\\"\\n\\b\",\n    -1,\n    18446744073709551615\n]"
        );
    }
}
