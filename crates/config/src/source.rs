//! Source files and positions inside them.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Index of a file in a [`SourceMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FileId(pub u32);

/// Where a value was written: file, byte range, and 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Span {
    pub file: FileId,
    pub offset: usize,
    pub len: usize,
    pub line: u32,
    pub column: u32,
}

/// A value with the place it was written.
///
/// Equality ignores the span, so two configs compare equal when they say the
/// same thing, wherever they say it.
#[derive(Clone, Debug, Default)]
pub struct Sp<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Sp<T> {
    pub fn new(value: T, span: Span) -> Self {
        Self { value, span }
    }

    /// A value made by the tool itself, with no place in any file.
    pub fn synthetic(value: T) -> Self {
        Self {
            value,
            span: Span::default(),
        }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Sp<U> {
        Sp {
            value: f(self.value),
            span: self.span,
        }
    }

    pub fn as_ref(&self) -> Sp<&T> {
        Sp {
            value: &self.value,
            span: self.span,
        }
    }
}

impl<T: PartialEq> PartialEq for Sp<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<T: Eq> Eq for Sp<T> {}

impl<T> std::ops::Deref for Sp<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: fmt::Display> fmt::Display for Sp<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

/// One configuration source.
#[derive(Debug)]
pub struct SourceFile {
    /// The name shown in diagnostics (the path as given, or `<stdin>`).
    pub name: String,
    /// The directory `@pkg:` paths are relative to.
    pub base_dir: PathBuf,
    pub text: Arc<str>,
}

/// All the sources of one configuration, in the order they were given.
#[derive(Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, name: impl Into<String>, base_dir: PathBuf, text: &str) -> FileId {
        let id = FileId(u32::try_from(self.files.len()).unwrap_or(u32::MAX));
        self.files.push(SourceFile {
            name: name.into(),
            base_dir,
            text: Arc::from(text),
        });
        id
    }

    pub fn get(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id.0 as usize)
    }

    pub fn name(&self, id: FileId) -> &str {
        self.get(id).map_or("<unknown>", |f| f.name.as_str())
    }

    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileId(u32::try_from(i).unwrap_or(u32::MAX)), f))
    }
}

/// 1-based line and column (in characters) of a byte offset in `text`.
///
/// Scans `text` up to `offset`: for one position. Many positions in one text
/// go through a [`LineIndex`], which does not rescan.
pub fn line_column(text: &str, offset: usize) -> (u32, u32) {
    LineIndex::new(text).line_column(text, offset)
}

/// The byte offsets where each line of a text starts, so that turning a byte
/// offset into a line and column costs a binary search and a scan of one
/// line, not of everything before it.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { starts }
    }

    /// 1-based line and column (in characters) of `offset` in the text this
    /// index was made from.
    pub fn line_column(&self, text: &str, offset: usize) -> (u32, u32) {
        let offset = offset.min(text.len());
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let column = text.get(start..offset).map_or(0, |s| s.chars().count()) + 1;
        (
            u32::try_from(line).unwrap_or(u32::MAX),
            u32::try_from(column).unwrap_or(u32::MAX),
        )
    }

    /// The byte offset of 1-based `line` and `column` (in characters), if the
    /// text has that line; a column past the line's end gives its end.
    pub fn offset(&self, text: &str, line: u32, column: u32) -> Option<usize> {
        let start = *self
            .starts
            .get(usize::try_from(line).ok()?.checked_sub(1)?)?;
        let rest = text.get(start..)?;
        let line_text = rest.split('\n').next().unwrap_or(rest);
        let skip = usize::try_from(column).ok()?.saturating_sub(1);
        Some(
            start
                + line_text
                    .char_indices()
                    .nth(skip)
                    .map_or(line_text.len(), |(i, _)| i),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_agrees_with_a_scan() {
        let text = "a: 1\nbé: [x,\n\n  y]\nlast";
        let index = LineIndex::new(text);
        for offset in (0..=text.len()).filter(|&o| text.is_char_boundary(o)) {
            let before = &text[..offset];
            let line = before.matches('\n').count() + 1;
            let start = before.rfind('\n').map_or(0, |i| i + 1);
            let column = before[start..].chars().count() + 1;
            let (l, c) = index.line_column(text, offset);
            assert_eq!((l as usize, c as usize), (line, column), "offset {offset}");
            assert_eq!(index.offset(text, l, c), Some(offset), "offset {offset}");
        }
        assert_eq!(index.offset(text, 9, 1), None);
    }
}
