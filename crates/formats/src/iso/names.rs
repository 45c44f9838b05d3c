//! ISO 9660 file identifiers.
//!
//! Readers that know Rock Ridge (Linux, isolinux, xorriso) use the `NM`
//! name; the ISO 9660 identifier only has to be valid and unique within its
//! directory. Identifiers use d-characters (`A-Z0-9_`), at most 31
//! characters before the `;1` version of a file (ISO 9660 level 2 and 3),
//! and collisions are resolved by a counter in the order of the real names,
//! so the result depends only on the directory's names.

use std::collections::{HashMap, HashSet};

const MAX_LEN: usize = 31;
const MAX_EXT: usize = 8;

fn d_chars(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| match c {
            'a'..='z' => c.to_ascii_uppercase(),
            'A'..='Z' | '0'..='9' | '_' => c,
            _ => '_',
        })
        .take(max)
        .collect()
}

/// The (name, extension) of a first choice of identifier. Directories have
/// no extension; a file's extension follows its last dot (not a leading one).
fn split(name: &str, is_dir: bool) -> (String, Option<String>) {
    if is_dir {
        return (d_chars(name, MAX_LEN), None);
    }
    match name.rfind('.') {
        Some(i) if i > 0 => {
            let ext = d_chars(&name[i + 1..], MAX_EXT);
            let stem = d_chars(&name[..i], MAX_LEN - 1 - ext.len());
            (stem, Some(ext))
        }
        _ => (d_chars(name, MAX_LEN - 1), Some(String::new())),
    }
}

/// One identifier: `NAME` for a directory, `NAME.EXT;1` for anything else.
fn identifier(stem: &str, ext: &Option<String>) -> Vec<u8> {
    match ext {
        None => stem.as_bytes().to_vec(),
        Some(ext) => format!("{stem}.{ext};1").into_bytes(),
    }
}

/// Identifiers for the children of one directory, given as (name, is a
/// directory) in the order of their names; returned in the same order.
pub(crate) fn assign(children: &[(&str, bool)]) -> Vec<Vec<u8>> {
    let mut taken: HashSet<Vec<u8>> = HashSet::with_capacity(children.len());
    // The next counter to try for each first choice, so many names with
    // one first choice cost linear time, not quadratic.
    let mut counters: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut out = Vec::with_capacity(children.len());
    for (name, is_dir) in children {
        let (stem, ext) = split(name, *is_dir);
        let first = identifier(&stem, &ext);
        let mut id = first.clone();
        if taken.contains(&id) {
            let n = counters.entry(first).or_insert(1);
            loop {
                // Keep the extension, replace the end of the stem by `_N`.
                let suffix = format!("_{n}");
                *n += 1;
                let room = MAX_LEN - ext.as_ref().map_or(0, |e| e.len() + 1) - suffix.len();
                let short: String = stem.chars().take(room).collect();
                id = identifier(&format!("{short}{suffix}"), &ext);
                if !taken.contains(&id) {
                    break;
                }
            }
        }
        taken.insert(id.clone());
        out.push(id);
    }
    out
}

/// The ECMA-119 9.3 order of identifiers: by name, then by extension, each
/// padded with spaces (which sort below every d-character, so this is the
/// byte order of the parts), then by version (all ours are 1).
pub(crate) fn order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    fn parts(id: &[u8]) -> (&[u8], &[u8]) {
        let id = id.split(|&c| c == b';').next().unwrap_or(id);
        match id.iter().position(|&c| c == b'.') {
            Some(i) => (&id[..i], &id[i + 1..]),
            None => (id, &[]),
        }
    }
    parts(a).cmp(&parts(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(children: &[(&str, bool)]) -> Vec<String> {
        assign(children)
            .into_iter()
            .map(|b| String::from_utf8(b).unwrap())
            .collect()
    }

    #[test]
    fn identifiers() {
        assert_eq!(
            ids(&[
                ("boot", true),
                ("initrd.gz", false),
                ("vmlinuz", false),
                (".bashrc", false),
                ("a-b.c.d", false),
                ("lib.d", true),
            ]),
            [
                "BOOT",
                "INITRD.GZ;1",
                "VMLINUZ.;1",
                "_BASHRC.;1",
                "A_B_C.D;1",
                "LIB_D"
            ]
        );
    }

    #[test]
    fn collisions_get_counters() {
        let got = ids(&[
            ("Foo", false),
            ("foo", false),
            ("FOO", false),
            ("x".repeat(40).as_str(), true),
            ("x".repeat(41).as_str(), true),
        ]);
        assert_eq!(got[0], "FOO.;1");
        assert_eq!(got[1], "FOO_1.;1");
        assert_eq!(got[2], "FOO_2.;1");
        assert_eq!(got[3], "X".repeat(31));
        assert_eq!(got[4], format!("{}_1", "X".repeat(29)));
        let long = ids(&[
            ("a".repeat(300).as_str(), false),
            ("b.verylongextension", false),
        ]);
        assert!(long.iter().all(|id| id.len() <= MAX_LEN + 2), "{long:?}");
    }

    /// Many names with one first choice: unique, and fast.
    #[test]
    fn many_collisions() {
        let names: Vec<String> = (0..50_000)
            .map(|i| format!("{}{i}", "p".repeat(40)))
            .collect();
        let children: Vec<(&str, bool)> = names.iter().map(|n| (n.as_str(), false)).collect();
        let ids = assign(&children);
        let unique: HashSet<&Vec<u8>> = ids.iter().collect();
        assert_eq!(unique.len(), names.len());
    }

    #[test]
    fn ecma_order() {
        use std::cmp::Ordering::*;
        assert_eq!(order(b"A.;1", b"A_B.;1"), Less);
        assert_eq!(order(b"AB", b"A"), Greater);
        assert_eq!(order(b"A.B;1", b"A.C;1"), Less);
        assert_eq!(order(b"A_B", b"A.B;1"), Greater);
    }
}
