//! Where a YAML syntax error really is.
//!
//! The parser reports where it gave up, which is often lines after the
//! mistake: a tab is reported at the scalar before it, an unclosed `[` or
//! quote at the next line that does not fit, a `#` that ended a block scalar
//! at the text after it. These checks look at the source around that place
//! and, when they recognise the mistake, move the report to the character
//! that caused it and say what it is. Anything they do not recognise keeps
//! the parser's own position and words.

/// A better place and wording for a syntax error.
#[derive(Debug, PartialEq, Eq)]
pub struct Culprit {
    /// Byte offset of the offending character.
    pub offset: usize,
    pub message: String,
    pub help: Option<String>,
}

/// Looks for the mistake behind the parser's `message` at byte `offset`.
pub fn culprit(text: &str, offset: usize, message: &str) -> Option<Culprit> {
    let offset = offset.min(text.len());
    hash_in_block_scalar(text, offset)
        .or_else(|| tab(text, offset, message))
        .or_else(|| unclosed_quote(text, offset, message))
        .or_else(|| {
            // Only where the parser's words fit a collection left open: a
            // `[` in a block scalar's text is no collection.
            let fits = ["indentation", "flow", "expected ','", "end of stream"]
                .iter()
                .any(|w| message.contains(w));
            fits.then(|| unclosed_flow(text, offset)).flatten()
        })
        .or_else(|| misindented(text, offset, message))
}

/// Byte offset where the line holding `offset` starts.
fn line_start(text: &str, offset: usize) -> usize {
    text[..offset].rfind('\n').map_or(0, |i| i + 1)
}

/// The lines of `text` with their starting byte offsets.
fn lines_with_offsets(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n').scan(0, |at, line| {
        let start = *at;
        *at += line.len() + 1;
        Some((start, line))
    })
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// The first tab in the leading whitespace of a line, from the line of the
/// report on: tabs are reported at the scalar before them.
fn tab(text: &str, offset: usize, message: &str) -> Option<Culprit> {
    if !message.contains("tab") {
        return None;
    }
    let from = line_start(text, offset);
    let at = lines_with_offsets(&text[from..]).find_map(|(start, line)| {
        let lead = line.len() - line.trim_start_matches([' ', '\t']).len();
        line[..lead].find('\t').map(|i| from + start + i)
    })?;
    Some(Culprit {
        offset: at,
        message: "a tab in indentation".into(),
        help: Some("YAML does not allow tabs for indentation; use spaces".into()),
    })
}

/// A `#` at column 0 right after a block scalar's `|` or `>` (or inside its
/// text) ends the scalar: the indented lines after it then no longer fit.
fn hash_in_block_scalar(text: &str, offset: usize) -> Option<Culprit> {
    let error_line = text[..offset].matches('\n').count();
    let lines: Vec<(usize, &str)> = lines_with_offsets(text).collect();
    // Walk back from the error to the block scalar's header, remembering
    // the earliest column-0 comment passed on the way.
    let mut hash = None;
    for i in (0..error_line.min(lines.len())).rev() {
        let (start, line) = lines[i];
        if line.starts_with('#') {
            hash = Some(start);
            continue;
        }
        if is_block_scalar_header(line) {
            let hash = hash?;
            let (_, error_text) = lines.get(error_line)?;
            if indent(error_text) <= indent(line) {
                return None;
            }
            return Some(Culprit {
                offset: hash,
                message: format!(
                    "this `#` at column 1 ends the block scalar begun on line {}",
                    i + 1
                ),
                help: Some(
                    "a block scalar's text must be indented; indent this line to keep it in \
                     the text, or remove it"
                        .into(),
                ),
            });
        }
        // Text of the scalar itself (indented) or blank lines: keep going;
        // anything at column 0 that is not a comment is outside any scalar.
        if !line.trim().is_empty() && indent(line) == 0 {
            return None;
        }
    }
    None
}

/// `key: |`, `- >-`, `key: |2+ # comment` ...
fn is_block_scalar_header(line: &str) -> bool {
    let code = match line.find(" #") {
        Some(i) => &line[..i],
        None => line,
    }
    .trim_end();
    let Some(i) = code.rfind(['|', '>']) else {
        return false;
    };
    let (before, indicators) = (&code[..i], &code[i + 1..]);
    indicators
        .chars()
        .all(|c| matches!(c, '+' | '-' | '1'..='9'))
        && (before.trim().is_empty() || before.ends_with(": ") || before.ends_with("- "))
}

/// A line whose indentation matches none of the blocks above it, reported
/// at its first character: say so, with the indentations that would fit.
fn misindented(text: &str, offset: usize, message: &str) -> Option<Culprit> {
    if !message.contains("did not find expected") {
        return None;
    }
    let start = line_start(text, offset);
    let line = text[start..].split('\n').next()?;
    if offset != start + indent(line) {
        return None;
    }
    // The indentations open above: each line less indented than the ones
    // after it starts a block.
    let mut levels: Vec<usize> = Vec::new();
    for (_, above) in lines_with_offsets(&text[..start]) {
        let content = above.trim_start_matches(' ');
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let at = indent(above);
        levels.retain(|&l| l < at);
        levels.push(at);
        // A sequence entry's content is a block too: `- name:` opens `name`'s.
        if let Some(rest) = content.strip_prefix("- ") {
            levels.push(at + 2 + indent(rest));
        }
    }
    let here = indent(line);
    if levels.contains(&here) {
        return None;
    }
    let fits: Vec<String> = levels.iter().map(usize::to_string).collect();
    Some(Culprit {
        offset,
        message: format!("this line is indented by {here} spaces, which matches no block above it"),
        help: Some(format!(
            "indent it like the entries it belongs with ({} spaces fit here)",
            fits.join(", ")
        )),
    })
}

/// A `[` or `{` still open where the parser stopped.
fn unclosed_flow(text: &str, offset: usize) -> Option<Culprit> {
    let mut open: Vec<(usize, char)> = Vec::new();
    let mut quote: Option<char> = None;
    let mut chars = text[..offset].char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match quote {
            Some('"') => match c {
                '\\' => {
                    chars.next();
                }
                '"' => quote = None,
                _ => {}
            },
            Some(_) => {
                if c == '\'' {
                    if chars.peek().map(|&(_, n)| n) == Some('\'') {
                        chars.next();
                    } else {
                        quote = None;
                    }
                }
            }
            None => match c {
                '"' | '\'' if starts_scalar(text, i) => quote = Some(c),
                '#' if i == 0 || text[..i].ends_with([' ', '\t', '\n']) => {
                    // A comment runs to the end of its line.
                    while chars.next_if(|&(_, n)| n != '\n').is_some() {}
                }
                '[' | '{' if open.is_empty() && !starts_scalar(text, i) => {}
                '[' | '{' => open.push((i, c)),
                ']' | '}' => {
                    open.pop();
                }
                _ => {}
            },
        }
    }
    let (at, c) = *open.last()?;
    let close = if c == '[' { ']' } else { '}' };
    Some(Culprit {
        offset: at,
        message: format!("this `{c}` is never closed"),
        help: Some(format!(
            "close it with `{close}` before the line the parser stopped at"
        )),
    })
}

/// Whether a scalar (quoted or a flow collection) can start at byte `i`:
/// at the start of a line's content, or after `: `, `- `, `[`, `{` or `,`.
fn starts_scalar(text: &str, i: usize) -> bool {
    let before = text[line_start(text, i)..i].trim_end_matches(' ');
    before.is_empty()
        || before.ends_with(':')
        || before.ends_with('-')
        || before.ends_with(['[', '{', ','])
        || before.ends_with("? ")
}

/// The quote that opens the scalar the parser could not finish.
fn unclosed_quote(text: &str, offset: usize, message: &str) -> Option<Culprit> {
    if !message.contains("quoted scalar") {
        return None;
    }
    let end = line_start(text, offset);
    let lines: Vec<(usize, &str)> = lines_with_offsets(&text[..end]).collect();
    lines.iter().rev().find_map(|&(start, line)| {
        let open = unclosed_in_line(line)?;
        Some(Culprit {
            offset: start + open,
            message: format!(
                "this {} quote is never closed",
                if line[open..].starts_with('"') {
                    "double"
                } else {
                    "single"
                }
            ),
            help: Some("close the string on the same line, or indent its continuation".into()),
        })
    })
}

/// Byte index of a quote that opens a scalar on `line` and is not closed
/// on it.
fn unclosed_in_line(line: &str) -> Option<usize> {
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '#' && (i == 0 || line[..i].ends_with(' ')) {
            return None;
        }
        if !matches!(c, '"' | '\'') || !starts_scalar(line, i) {
            continue;
        }
        let mut closed = false;
        while let Some((_, n)) = chars.next() {
            if c == '"' && n == '\\' {
                chars.next();
            } else if n == c {
                if c == '\'' && chars.peek().map(|&(_, x)| x) == Some('\'') {
                    chars.next();
                } else {
                    closed = true;
                    break;
                }
            }
        }
        if !closed {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, offset: usize) -> (usize, usize) {
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = offset - line_start(text, offset) + 1;
        (line, col)
    }

    #[test]
    fn block_scalar_headers() {
        for yes in ["  contents: |", "  - >-", "a: |2+ # x", "|"] {
            assert!(is_block_scalar_header(yes), "{yes}");
        }
        for no in ["a: b|c", "a: '|'", "a: x", "# |"] {
            assert!(!is_block_scalar_header(no), "{no}");
        }
    }

    #[test]
    fn quotes_closed_on_their_line_are_not_culprits() {
        assert_eq!(unclosed_in_line(r#"  a: "x \" y""#), None);
        assert_eq!(unclosed_in_line("  a: 'it''s'"), None);
        assert_eq!(unclosed_in_line("  a: don't"), None);
        assert_eq!(unclosed_in_line(r#"  a: "open"#), Some(5));
    }

    #[test]
    fn flow_brackets_inside_strings_and_comments_do_not_count() {
        let text = "a: \"[\"\nb: x # [\nc: [1, 2]\nd: {e: [f]}\nnext: 1\n";
        assert_eq!(unclosed_flow(text, text.len()), None);
        let text = "a: [1, {b: 2}\nnext: 1\n";
        let c = unclosed_flow(text, text.len()).unwrap();
        assert_eq!(at(text, c.offset), (1, 4));
    }
}
