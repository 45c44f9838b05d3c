//! Plain text tables: columns padded to their widest cell, the last one
//! not padded.

use std::fmt::Write as _;

pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up() {
        let rows = vec![
            vec!["getty".to_owned(), "READY".to_owned(), "12".to_owned()],
            vec!["sshd".to_owned(), "EXITED".to_owned(), "".to_owned()],
        ];
        assert_eq!(
            super::render(&["NAME", "STATE", "PID"], &rows),
            "NAME   STATE   PID\ngetty  READY   12\nsshd   EXITED\n"
        );
    }
}
