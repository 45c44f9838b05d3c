//! Turning [`Node`]s into the typed model, reporting every problem on the way.
//!
//! Each model type says how it is read ([`FromNode`]); mappings are read
//! through [`Fields`], which remembers the keys a type asked for, so the keys
//! it rejects as unknown are exactly the ones it does not read: the schema and
//! the model cannot drift apart.

use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, Diagnostics};
use crate::source::{Sp, Span};
use crate::yaml::{Node, Value};

/// A `@pkg:PATH` scalar: a package directory whose tag stands in its place.
///
/// Two references are equal when they name the same directory, however written.
#[derive(Clone, Debug, Eq, PartialOrd, Ord)]
pub struct PackageRef {
    /// PATH as written after `@pkg:`.
    pub raw: String,
    /// PATH joined to the directory of the file it was written in, with `.`
    /// and `..` resolved lexically.
    pub dir: PathBuf,
}

impl PartialEq for PackageRef {
    fn eq(&self, other: &Self) -> bool {
        self.dir == other.dir
    }
}

impl std::hash::Hash for PackageRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.dir.hash(state);
    }
}

/// `a/./b/../c` -> `a/c`, without touching the filesystem.
pub fn normalize_path(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

pub const PKG_PREFIX: &str = "@pkg:";

/// State shared while one file is decoded.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub diags: &'a mut Diagnostics,
    /// The text of the file, to quote what was written.
    pub text: &'a str,
    pub base_dir: &'a Path,
    /// Every `@pkg:` scalar met, wherever it was.
    pub packages: Vec<Sp<PackageRef>>,
}

impl Ctx<'_> {
    pub fn error(&mut self, code: &'static str, span: Span, message: impl Into<String>) {
        self.diags.push(Diagnostic::error(code, span, message));
    }

    pub fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// The source text of a node, as written.
    pub fn written(&self, span: Span) -> &str {
        self.text
            .get(span.offset..span.offset + span.len)
            .unwrap_or("")
    }

    fn wrong_type(&mut self, node: &Node, path: &str, expected: &str) {
        let mut d = Diagnostic::error(
            "wrong-type",
            node.span,
            format!("{path}: expected {expected}, found {}", node.value.kind()),
        )
        .with_label(format!("expected {expected}"));
        if expected == "a string"
            && let Value::Int(_) | Value::Float(_) | Value::Bool(_) = node.value
        {
            let written = self.written(node.span).to_string();
            if !written.is_empty() {
                d = d.with_help(format!("quote it to make it a string: \"{written}\""));
            }
        }
        self.push(d);
    }

    pub fn package(&mut self, text: &str, span: Span) -> Option<PackageRef> {
        let raw = text.strip_prefix(PKG_PREFIX)?;
        if raw.trim().is_empty() {
            self.error(
                "package-reference",
                span,
                "`@pkg:` needs the path of a package directory",
            );
            return None;
        }
        let pkg = PackageRef {
            raw: raw.to_string(),
            dir: normalize_path(&self.base_dir.join(raw)),
        };
        self.packages.push(Sp::new(pkg.clone(), span));
        Some(pkg)
    }
}

/// A type that can be read from a node.
pub trait FromNode: Sized {
    /// How error messages name what was expected.
    const EXPECTED: &'static str;

    /// Read `node`, reporting problems into `cx`; `None` when it could not be read.
    fn from_node(node: &Node, path: &str, cx: &mut Ctx<'_>) -> Option<Self>;
}

impl<T: FromNode> FromNode for Sp<T> {
    const EXPECTED: &'static str = T::EXPECTED;
    fn from_node(node: &Node, path: &str, cx: &mut Ctx<'_>) -> Option<Self> {
        T::from_node(node, path, cx).map(|v| Sp::new(v, node.span))
    }
}

impl FromNode for String {
    const EXPECTED: &'static str = "a string";
    fn from_node(node: &Node, path: &str, cx: &mut Ctx<'_>) -> Option<Self> {
        match &node.value {
            Value::Str(s) => {
                if s.starts_with(PKG_PREFIX) {
                    cx.package(s, node.span);
                }
                Some(s.clone())
            }
            _ => {
                cx.wrong_type(node, path, Self::EXPECTED);
                None
            }
        }
    }
}

impl FromNode for bool {
    const EXPECTED: &'static str = "a boolean (true or false)";
    fn from_node(node: &Node, path: &str, cx: &mut Ctx<'_>) -> Option<Self> {
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                cx.wrong_type(node, path, Self::EXPECTED);
                None
            }
        }
    }
}

macro_rules! integer_from_node {
    ($($ty:ty => $expected:literal),* $(,)?) => {$(
        impl FromNode for $ty {
            const EXPECTED: &'static str = $expected;
            fn from_node(node: &Node, path: &str, cx: &mut Ctx<'_>) -> Option<Self> {
                match node.value {
                    Value::Int(i) => match <$ty>::try_from(i) {
                        Ok(v) => Some(v),
                        Err(_) => {
                            cx.error(
                                "out-of-range",
                                node.span,
                                format!(
                                    "{path}: {i} is out of range: expected {} from {} to {}",
                                    $expected,
                                    <$ty>::MIN,
                                    <$ty>::MAX
                                ),
                            );
                            None
                        }
                    },
                    _ => {
                        cx.wrong_type(node, path, $expected);
                        None
                    }
                }
            }
        }
    )*};
}

integer_from_node! {
    i64 => "an integer",
    u64 => "a non-negative integer",
    u32 => "a non-negative integer",
    u16 => "a non-negative integer",
}

impl<T: FromNode> FromNode for Vec<T> {
    const EXPECTED: &'static str = "a list";
    fn from_node(node: &Node, path: &str, cx: &mut Ctx<'_>) -> Option<Self> {
        let Value::Seq(items) = &node.value else {
            let expected = format!("a list of {}", plural(T::EXPECTED));
            cx.wrong_type(node, path, &expected);
            return None;
        };
        // Items that could not be read are left out (their errors are
        // reported), so the rest can still be checked.
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(v) = T::from_node(item, &format!("{path}[{i}]"), cx) {
                out.push(v);
            }
        }
        Some(out)
    }
}

/// "a string" -> "strings", for "a list of strings".
fn plural(expected: &str) -> String {
    let bare = expected
        .strip_prefix("a ")
        .or_else(|| expected.strip_prefix("an "))
        .unwrap_or(expected);
    match bare.split_once(' ') {
        Some((first, rest)) => format!("{first}s {rest}"),
        None => format!("{bare}s"),
    }
}

/// A mapping from strings to strings, in the order written (`sysctl`, `annotations`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StringMap(pub Vec<(Sp<String>, Sp<String>)>);

impl StringMap {
    pub fn get(&self, key: &str) -> Option<&Sp<String>> {
        self.0.iter().find(|(k, _)| k.value == key).map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Sp<String>, &Sp<String>)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl FromNode for StringMap {
    const EXPECTED: &'static str = "a mapping of strings to strings";
    fn from_node(node: &Node, path: &str, cx: &mut Ctx<'_>) -> Option<Self> {
        let Value::Map(entries) = &node.value else {
            cx.wrong_type(node, path, Self::EXPECTED);
            return None;
        };
        let mut out: Vec<(Sp<String>, Sp<String>)> = Vec::with_capacity(entries.len());
        let mut ok = true;
        for (k, v) in entries {
            let Some(key) = key_text(k, path, cx) else {
                ok = false;
                continue;
            };
            if let Some((first, _)) = out.iter().find(|(f, _)| f.value == key) {
                cx.push(duplicate_key(&key, path, k.span, first.span));
                ok = false;
                continue;
            }
            match String::from_node(v, &format!("{path}.{key}"), cx) {
                Some(value) => out.push((Sp::new(key, k.span), Sp::new(value, v.span))),
                None => ok = false,
            }
        }
        ok.then_some(StringMap(out))
    }
}

fn key_text(key: &Node, path: &str, cx: &mut Ctx<'_>) -> Option<String> {
    match &key.value {
        Value::Str(s) => Some(s.clone()),
        _ => {
            let written = cx.written(key.span).to_string();
            cx.error(
                "key-type",
                key.span,
                format!(
                    "{}: keys must be strings, found {} `{written}`",
                    display_path(path),
                    key.value.kind()
                ),
            );
            None
        }
    }
}

fn duplicate_key(key: &str, path: &str, at: Span, first: Span) -> Diagnostic {
    Diagnostic::error(
        "duplicate-key",
        at,
        format!("duplicate key `{key}` {}", where_in(path)),
    )
    .with_label("written again here")
    .with_related(first, format!("`{key}` first written here"))
}

fn display_path(path: &str) -> &str {
    if path.is_empty() {
        "the top level"
    } else {
        path
    }
}

/// "in services[0]", or "at the top level".
fn where_in(path: &str) -> String {
    if path.is_empty() {
        "at the top level".to_string()
    } else {
        format!("in {path}")
    }
}

/// An integer or a name (`uid`, `gid`, `additionalGids`): a name is `root` or a container's name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Id {
    Number(u32),
    Name(String),
}

impl FromNode for Id {
    const EXPECTED: &'static str = "a number or a name";
    fn from_node(node: &Node, path: &str, cx: &mut Ctx<'_>) -> Option<Self> {
        match &node.value {
            Value::Int(_) => u32::from_node(node, path, cx).map(Id::Number),
            Value::Str(_) => String::from_node(node, path, cx).map(Id::Name),
            _ => {
                cx.wrong_type(node, path, Self::EXPECTED);
                None
            }
        }
    }
}

/// The keys of one mapping, handed out to the type reading it.
#[derive(Debug)]
pub struct Fields<'n> {
    path: String,
    pub span: Span,
    entries: Vec<(String, &'n Node, &'n Node)>,
    taken: Vec<bool>,
    known: Vec<&'static str>,
}

impl<'n> Fields<'n> {
    /// Check `node` is a mapping with string keys, each once, and open it.
    pub fn open(node: &'n Node, path: &str, cx: &mut Ctx<'_>) -> Option<Self> {
        let Value::Map(map) = &node.value else {
            cx.wrong_type(
                node,
                if path.is_empty() { "the file" } else { path },
                "a mapping",
            );
            return None;
        };
        let mut entries: Vec<(String, &Node, &Node)> = Vec::with_capacity(map.len());
        for (k, v) in map {
            let Some(key) = key_text(k, path, cx) else {
                continue;
            };
            if let Some((_, first, _)) = entries.iter().find(|(name, _, _)| *name == key) {
                cx.push(duplicate_key(&key, path, k.span, first.span));
                continue;
            }
            entries.push((key, k, v));
        }
        let taken = vec![false; entries.len()];
        Some(Self {
            path: path.to_string(),
            span: node.span,
            entries,
            taken,
            known: Vec::new(),
        })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The node under `key`, if written; marks `key` as one this type knows.
    pub fn node(&mut self, key: &'static str) -> Option<(&'n Node, &'n Node)> {
        self.known.push(key);
        let i = self.entries.iter().position(|(k, _, _)| k == key)?;
        self.taken[i] = true;
        let (_, k, v) = self.entries[i];
        Some((k, v))
    }

    /// Read the value under `key`, if written.
    pub fn take<T: FromNode>(&mut self, key: &'static str, cx: &mut Ctx<'_>) -> Option<Sp<T>> {
        let (_, value) = self.node(key)?;
        let path = self.child_path(key);
        Sp::<T>::from_node(value, &path, cx)
    }

    /// Report a key this type requires but which is absent.
    pub fn require(&self, key: &'static str, present: bool, cx: &mut Ctx<'_>) {
        // A misspelling of `key` is reported as an unknown key with a hint;
        // saying `key` is missing as well would be noise.
        if present || self.entries.iter().any(|(k, _, _)| k == key) {
            return;
        }
        let misspelt = self
            .entries
            .iter()
            .any(|(k, _, _)| closest(k, &[key]).is_some());
        if !misspelt {
            cx.push(
                Diagnostic::error(
                    "missing-key",
                    self.span,
                    format!("{}: missing required key `{key}`", display_path(&self.path)),
                )
                .with_label(format!("`{key}` is required here")),
            );
        }
    }

    /// Report every key no one asked for, with the closest known one as a hint.
    pub fn finish(self, cx: &mut Ctx<'_>) {
        for (i, (key, k, _)) in self.entries.iter().enumerate() {
            if self.taken[i] {
                continue;
            }
            let mut d = Diagnostic::error(
                "unknown-key",
                k.span,
                format!("unknown key `{key}` {}", where_in(&self.path)),
            )
            .with_label("not a known key");
            if let Some(best) = closest(key, &self.known) {
                d = d.with_help(format!("did you mean `{best}`?"));
            } else if !self.known.is_empty() {
                d = d.with_help(format!("known keys: {}", self.known.join(", ")));
            }
            cx.push(d);
        }
    }
}

/// The known key most like `key`, if one is close enough to be a likely typo.
pub fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = key.to_ascii_lowercase();
    known
        .iter()
        .map(|k| {
            let distance = strsim::damerau_levenshtein(&lower, &k.to_ascii_lowercase());
            (distance, *k)
        })
        .filter(|(distance, k)| *distance <= (k.len() / 3).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_key() {
        assert_eq!(closest("imgae", &["name", "image"]), Some("image"));
        assert_eq!(
            closest("bindsadd", &["binds", "binds.add"]),
            Some("binds.add")
        );
        assert_eq!(
            closest("uidMappings", &["uidmappings"]),
            Some("uidmappings")
        );
        assert_eq!(closest("zzzzzz", &["name", "image"]), None);
    }

    #[test]
    fn plural_forms() {
        assert_eq!(plural("a string"), "strings");
        assert_eq!(plural("a number or a name"), "numbers or a name");
        assert_eq!(plural("an integer"), "integers");
    }
}
