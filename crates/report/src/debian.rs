//! Licences of Debian packages, read from the machine-readable
//! `/usr/share/doc/<package>/copyright` (DEP-5) and mapped to SPDX.
//!
//! Debian's short names are its own (`GPL-2+`, `Expat`, `BSD-3-clause`,
//! `public-domain`); the table below maps those with an exact SPDX
//! counterpart, and every other name becomes a `LicenseRef-Debian-…` whose
//! text, when the file has it, is kept as extracted licensing information.
//! Hand-written: DEP-5 is a few deb822 paragraphs, and no crate maps
//! Debian's names.

use std::collections::BTreeMap;

/// Debian short name (lower case, without a trailing `+`) and its SPDX
/// identifier, with the identifier for `+` (or later) where it differs.
const MAP: &[(&str, &str, Option<&str>)] = &[
    ("agpl-3", "AGPL-3.0-only", Some("AGPL-3.0-or-later")),
    ("agpl-3.0", "AGPL-3.0-only", Some("AGPL-3.0-or-later")),
    ("apache-2", "Apache-2.0", None),
    ("apache-2.0", "Apache-2.0", None),
    ("artistic-2.0", "Artistic-2.0", None),
    ("bsd-2-clause", "BSD-2-Clause", None),
    ("bsd-3-clause", "BSD-3-Clause", None),
    ("bsd-4-clause", "BSD-4-Clause", None),
    ("cc0", "CC0-1.0", None),
    ("cc0-1.0", "CC0-1.0", None),
    ("curl", "curl", None),
    ("expat", "MIT", None),
    ("gfdl-1.2", "GFDL-1.2-only", Some("GFDL-1.2-or-later")),
    ("gfdl-1.3", "GFDL-1.3-only", Some("GFDL-1.3-or-later")),
    ("gpl-1", "GPL-1.0-only", Some("GPL-1.0-or-later")),
    ("gpl-2", "GPL-2.0-only", Some("GPL-2.0-or-later")),
    ("gpl-2.0", "GPL-2.0-only", Some("GPL-2.0-or-later")),
    ("gpl-3", "GPL-3.0-only", Some("GPL-3.0-or-later")),
    ("gpl-3.0", "GPL-3.0-only", Some("GPL-3.0-or-later")),
    ("isc", "ISC", None),
    ("lgpl-2", "LGPL-2.0-only", Some("LGPL-2.0-or-later")),
    ("lgpl-2.0", "LGPL-2.0-only", Some("LGPL-2.0-or-later")),
    ("lgpl-2.1", "LGPL-2.1-only", Some("LGPL-2.1-or-later")),
    ("lgpl-3", "LGPL-3.0-only", Some("LGPL-3.0-or-later")),
    ("lgpl-3.0", "LGPL-3.0-only", Some("LGPL-3.0-or-later")),
    ("mit", "MIT", None),
    ("mpl-1.1", "MPL-1.1", None),
    ("mpl-2.0", "MPL-2.0", None),
    ("openssl", "OpenSSL", None),
    ("unicode-dfs-2016", "Unicode-DFS-2016", None),
    ("x11", "X11", None),
    ("zlib", "Zlib", None),
];

/// A package's licence: an SPDX expression (or `NOASSERTION`), and the
/// `LicenseRef-` licences it uses with their names and texts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Licence {
    pub expression: String,
    /// `LicenseRef-…` id → (Debian's name, text).
    pub extracted: BTreeMap<String, (String, String)>,
}

impl Licence {
    pub fn none() -> Licence {
        Licence {
            expression: "NOASSERTION".into(),
            extracted: BTreeMap::new(),
        }
    }
}

/// deb822 paragraphs: field name (lower case) → value (first line, then
/// continuation lines without their leading space; ` .` is an empty line).
fn paragraphs(text: &str) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some((_, value)) = current.last_mut() {
                let l = line.trim();
                value.push('\n');
                value.push_str(if l == "." { "" } else { l });
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            current.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn field<'a>(p: &'a [(String, String)], name: &str) -> Option<&'a str> {
    p.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// `LicenseRef-Debian-<name>`, with the characters SPDX ids do not allow replaced.
fn licence_ref(name: &str) -> String {
    let mut id = String::from("LicenseRef-Debian-");
    for c in name.chars() {
        match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '.' | '-' => id.push(c),
            '+' => id.push_str("-or-later"),
            _ => id.push('-'),
        }
    }
    id
}

/// One Debian licence name as an SPDX id, or `None` for a `LicenseRef`.
pub fn spdx_id(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let (base, plus) = match lower.strip_suffix('+') {
        Some(b) => (b, true),
        None => (lower.as_str(), false),
    };
    let mapped = MAP
        .iter()
        .find(|(d, _, _)| *d == base)
        .map(|(_, id, later)| match (plus, later) {
            (true, Some(l)) => (*l).to_owned(),
            (true, None) => format!("{id}+"),
            (false, _) => (*id).to_owned(),
        });
    let id = match mapped {
        Some(id) => id,
        // A name that is already an SPDX identifier, written exactly.
        None => {
            let found = spdx::license_id(name)?;
            if found.is_deprecated() || found.name != name.trim_end_matches('+') {
                return None;
            }
            name.to_owned()
        }
    };
    // The table is checked against the SPDX list: a typo can never slip out.
    spdx::license_id(&id)
        .filter(|l| !l.is_deprecated())
        .map(|_| id)
}

/// A DEP-5 `License:` first line (`GPL-2+ or Expat`, `LGPL-2.1+ and
/// GPL-2+`, `GPL-2+ with OpenSSL exception`) as an SPDX expression; the
/// `LicenseRef`s it needed are added to `refs` with `texts`' text.
fn expression(
    short: &str,
    texts: &BTreeMap<String, String>,
    own_text: &str,
    refs: &mut BTreeMap<String, (String, String)>,
) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut term: Vec<&str> = Vec::new();
    let mut ops = 0;
    let flush = |term: &mut Vec<&str>,
                 out: &mut Vec<String>,
                 refs: &mut BTreeMap<String, (String, String)>| {
        if term.is_empty() {
            return;
        }
        let name = term.join(" ");
        term.clear();
        let id = match spdx_id(&name) {
            Some(id) => id,
            None => {
                let id = licence_ref(&name);
                let text = texts
                    .get(&name.to_ascii_lowercase())
                    .cloned()
                    .filter(|t| !t.trim().is_empty())
                    .or_else(|| Some(own_text.to_owned()).filter(|t| !t.trim().is_empty()))
                    .unwrap_or_else(|| {
                        format!("Debian's licence name {name:?}; the text is in the package's copyright file")
                    });
                refs.entry(id.clone()).or_insert((name, text));
                id
            }
        };
        out.push(id);
    };
    for word in short.split_whitespace() {
        let op = match word.to_ascii_lowercase().trim_end_matches(',') {
            "or" | "|" => Some("OR"),
            "and" | "&" => Some("AND"),
            _ => None,
        };
        match op {
            Some(op) => {
                flush(&mut term, &mut out, refs);
                out.push(op.to_owned());
                ops += 1;
            }
            None => {
                // `A, B` lists licences that all apply.
                if let Some(stripped) = word.strip_suffix(',') {
                    term.push(stripped);
                    flush(&mut term, &mut out, refs);
                    out.push("AND".to_owned());
                    ops += 1;
                } else {
                    term.push(word);
                }
            }
        }
    }
    flush(&mut term, &mut out, refs);
    // Drop dangling operators from malformed lines.
    while out.last().is_some_and(|t| t == "AND" || t == "OR") {
        out.pop();
    }
    while out.first().is_some_and(|t| t == "AND" || t == "OR") {
        out.remove(0);
    }
    let text = out.join(" ");
    if ops > 0 && out.len() > 1 {
        format!("({text})")
    } else {
        text
    }
}

/// The licence of a package from its `copyright` file. A file that is not
/// machine-readable (no `Format:` naming the copyright format) says nothing
/// SPDX can use: `NOASSERTION`.
pub fn from_copyright(text: &str) -> Licence {
    let paras = paragraphs(text);
    let Some(header) = paras.first() else {
        return Licence::none();
    };
    if !field(header, "format").is_some_and(|f| f.contains("copyright-format")) {
        return Licence::none();
    }
    // Stand-alone `License:` paragraphs hold the texts of short names.
    let mut texts = BTreeMap::new();
    for p in &paras {
        if field(p, "files").is_none()
            && let Some(l) = field(p, "license")
            && let Some((name, body)) = l.split_once('\n')
        {
            texts.insert(name.trim().to_ascii_lowercase(), body.to_owned());
        }
    }
    let mut refs = BTreeMap::new();
    let mut terms: Vec<String> = Vec::new();
    for p in &paras {
        let is_header = std::ptr::eq(p, header);
        if (field(p, "files").is_none() && !is_header) || field(p, "license").is_none() {
            continue;
        }
        let licence = field(p, "license").unwrap_or_default();
        let (short, own) = licence.split_once('\n').unwrap_or((licence, ""));
        if short.trim().is_empty() {
            continue;
        }
        let e = expression(short, &texts, own, &mut refs);
        if !e.is_empty() && !terms.contains(&e) {
            terms.push(e);
        }
    }
    terms.sort();
    if terms.is_empty() {
        return Licence::none();
    }
    let expression = if terms.len() == 1 {
        terms[0]
            .trim_start_matches('(')
            .trim_end_matches(')')
            .to_owned()
    } else {
        terms.join(" AND ")
    };
    // Whatever came out must parse as SPDX; a file too odd for that says nothing.
    let expression = if spdx::Expression::parse_mode(&expression, spdx::ParseMode::STRICT).is_ok() {
        expression
    } else {
        return Licence::none();
    };
    refs.retain(|id, _| expression.contains(id.as_str()));
    Licence {
        expression,
        extracted: refs,
    }
}

/// A crate's `license` field (an SPDX expression, `/` for OR in old
/// crates) as a strict SPDX expression, or `NOASSERTION`.
pub fn crate_licence(license: Option<&str>) -> String {
    let Some(text) = license.map(str::trim).filter(|l| !l.is_empty()) else {
        return "NOASSERTION".into();
    };
    let text = text.replace('/', " OR ");
    match spdx::Expression::parse_mode(&text, spdx::ParseMode::STRICT) {
        Ok(_) => text,
        Err(_) => "NOASSERTION".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COPYRIGHT: &str = "\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: demo
Source: https://example.invalid/demo

Files: *
Copyright: 2001 Someone
License: GPL-2+

Files: lib/*
Copyright: 2002 Else
License: LGPL-2.1+ or Expat

Files: contrib/*
Copyright: 2003 Odd
License: Demo-Licence
 You may do as you like.
 .
 Really.

Files: debian/*
Copyright: 2004 Debian
License: GPL-2+

License: GPL-2+
 This program is free software...
";

    #[test]
    fn dep5_to_spdx() {
        let l = from_copyright(COPYRIGHT);
        assert_eq!(
            l.expression,
            "(LGPL-2.1-or-later OR MIT) AND GPL-2.0-or-later AND LicenseRef-Debian-Demo-Licence"
        );
        let (name, text) = &l.extracted["LicenseRef-Debian-Demo-Licence"];
        assert_eq!(name, "Demo-Licence");
        assert_eq!(text, "You may do as you like.\n\nReally.");
        spdx::Expression::parse(&l.expression).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn names() {
        assert_eq!(spdx_id("GPL-2+").as_deref(), Some("GPL-2.0-or-later"));
        assert_eq!(spdx_id("GPL-2").as_deref(), Some("GPL-2.0-only"));
        assert_eq!(spdx_id("Expat").as_deref(), Some("MIT"));
        assert_eq!(spdx_id("BSD-3-clause").as_deref(), Some("BSD-3-Clause"));
        assert_eq!(spdx_id("Apache-2.0").as_deref(), Some("Apache-2.0"));
        assert_eq!(spdx_id("public-domain"), None);
        assert_eq!(spdx_id("GPL-2.0").as_deref(), Some("GPL-2.0-only"));
        assert_eq!(spdx_id("LGPL-2.0+").as_deref(), Some("LGPL-2.0-or-later"));
        assert_eq!(spdx_id("eCos-2.0"), None, "deprecated ids are not used");
        assert_eq!(
            licence_ref("GPL-2+ with OpenSSL exception"),
            "LicenseRef-Debian-GPL-2-or-later-with-OpenSSL-exception"
        );
        let l = from_copyright(
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-2+ with OpenSSL exception\n",
        );
        assert_eq!(
            l.expression,
            "LicenseRef-Debian-GPL-2-or-later-with-OpenSSL-exception"
        );
        assert_eq!(l.extracted.len(), 1);
    }

    #[test]
    fn not_machine_readable() {
        assert_eq!(from_copyright("This is free software.\n"), Licence::none());
        assert_eq!(from_copyright(""), Licence::none());
    }

    #[test]
    fn crates() {
        assert_eq!(crate_licence(Some("MIT/Apache-2.0")), "MIT OR Apache-2.0");
        assert_eq!(
            crate_licence(Some("MIT OR Apache-2.0")),
            "MIT OR Apache-2.0"
        );
        assert_eq!(crate_licence(Some("Nonsense")), "NOASSERTION");
        assert_eq!(crate_licence(None), "NOASSERTION");
    }
}
