//! A minimal aligned text table.

use heapscope_graph::escape_control;

/// `s`, with its control characters escaped; not copied when it has none.
fn safe(s: String) -> String {
    match escape_control(&s) {
        std::borrow::Cow::Borrowed(_) => s,
        std::borrow::Cow::Owned(o) => o,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

pub struct Table {
    headers: Vec<String>,
    aligns: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: Vec<String>, aligns: Vec<Align>) -> Self {
        assert_eq!(headers.len(), aligns.len());
        Table {
            headers,
            aligns,
            rows: Vec::new(),
        }
    }

    /// A table with these (header, alignment) columns.
    pub fn with_columns(columns: &[(&str, Align)]) -> Self {
        Table::new(
            columns.iter().map(|(h, _)| h.to_string()).collect(),
            columns.iter().map(|&(_, a)| a).collect(),
        )
    }

    /// Adds a row. Control characters in cells (escape sequences in a
    /// class, method or file name) are escaped: see [`escape_control`].
    pub fn row(&mut self, row: Vec<String>) {
        assert_eq!(row.len(), self.headers.len());
        self.rows.push(row.into_iter().map(safe).collect());
    }

    pub fn render(&self) -> String {
        let n = self.headers.len();
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for r in &self.rows {
            // A row with only its first cell filled (a detail line) may overhang.
            if r[1..].iter().all(|c| c.is_empty()) {
                continue;
            }
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(width(c));
            }
        }
        let mut out = String::new();
        let line = |cells: &[String], out: &mut String| {
            let mut s = String::new();
            if n > 1 && cells[1..].iter().all(|c| c.is_empty()) {
                s.push_str(&cells[0]);
            } else {
                for (i, c) in cells.iter().enumerate() {
                    if i > 0 {
                        s.push_str("  ");
                    }
                    let pad = widths[i].saturating_sub(width(c));
                    match self.aligns[i] {
                        Align::Left if i + 1 == n => s.push_str(c),
                        Align::Left => {
                            s.push_str(c);
                            s.extend(std::iter::repeat_n(' ', pad));
                        }
                        Align::Right => {
                            s.extend(std::iter::repeat_n(' ', pad));
                            s.push_str(c);
                        }
                    }
                }
            }
            out.push_str(s.trim_end());
            out.push('\n');
        };
        line(&self.headers, &mut out);
        for r in &self.rows {
            line(r, &mut out);
        }
        out
    }
}

/// Bytes in binary units with three significant digits: `512 B`, `1.50 KiB`, `23.4 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if v >= 100.0 {
        format!("{v:.0} {}", UNITS[u])
    } else if v >= 10.0 {
        format!("{v:.1} {}", UNITS[u])
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(10 * 1024 * 1024), "10.0 MiB");
        assert_eq!(human_bytes(300 * 1024 * 1024 * 1024), "300 GiB");
    }

    #[test]
    fn aligns_columns() {
        let mut t = Table::new(
            vec!["k".into(), "count".into()],
            vec![Align::Left, Align::Right],
        );
        t.row(vec!["alpha".into(), "1".into()]);
        t.row(vec!["b".into(), "1,000".into()]);
        assert_eq!(t.render(), "k      count\nalpha      1\nb      1,000\n");
    }

    #[test]
    fn cells_cannot_reach_the_terminal_raw() {
        let mut t = Table::new(
            vec!["class".into(), "count".into()],
            vec![Align::Left, Align::Right],
        );
        t.row(vec!["\u{1b}]0;PWNED\u{7}".into(), "1".into()]);
        t.row(vec!["a\0b\nc".into(), "2".into()]);
        let out = t.render();
        assert!(!out.contains(['\u{1b}', '\u{7}', '\0']), "{out:?}");
        assert!(out.contains("\\u{1b}]0;PWNED\\u{7}"), "{out}");
        // One line per row: a line break in a name does not add one.
        assert_eq!(out.lines().count(), 3);
    }
}
