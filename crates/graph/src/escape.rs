//! Names from a dump made safe to print.
//!
//! Class names, method names and file names in a dump are whatever the
//! program made them: `define_method("\e]0;PWNED\a")` or `eval(code,
//! nil, "\e[2J")` put terminal escape sequences, and NUL bytes, into them.
//! Every name that reaches a table, a path, a tree or a flame graph goes
//! through [`escape_control`], which writes such characters the way string
//! values are already shown (Rust's escapes, as `{:?}` writes them:
//! `\u{1b}`, `\u{7}`, `\0`, `\n`), and leaves everything else as it is.

use std::borrow::Cow;

/// Characters a terminal would act on rather than show: C0 and C1 controls,
/// DEL, and the Unicode controls that reorder text (bidi overrides and
/// isolates), which can make a name read as something else.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

fn escape(s: &str, keep_newlines: bool) -> Cow<'_, str> {
    let bad = |c: char| needs_escape(c) && !(keep_newlines && c == '\n');
    if !s.contains(bad) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if bad(c) {
            if c.is_control() {
                out.extend(c.escape_debug());
            } else {
                out.extend(c.escape_unicode());
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `s` with every control character escaped (line breaks and tabs too):
/// for one name or one table cell.
pub fn escape_control(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// `s` with every control character but `\n` escaped: for a whole report,
/// whose lines are its own.
pub fn escape_control_text(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_acts_on() {
        assert_eq!(escape_control("Foo::Bar app.rb:3"), "Foo::Bar app.rb:3");
        assert!(matches!(escape_control("plain"), Cow::Borrowed(_)));
        assert_eq!(
            escape_control("\u{1b}]0;PWNED\u{7}"),
            "\\u{1b}]0;PWNED\\u{7}"
        );
        assert_eq!(escape_control("a\0b\u{1b}[2J"), "a\\0b\\u{1b}[2J");
        assert_eq!(
            escape_control("x\ny\tz\u{7f}\u{9b}"),
            "x\\ny\\tz\\u{7f}\\u{9b}"
        );
        assert_eq!(escape_control("abc\u{202e}fed"), "abc\\u{202e}fed");
        // The same text as a Debug-formatted string value, quotes aside.
        let v = "\u{1b}[31mred\0";
        assert_eq!(format!("\"{}\"", escape_control(v)), format!("{v:?}"));
        // Unicode that is not a control stays.
        assert_eq!(escape_control("café ✓ 日本"), "café ✓ 日本");
        assert_eq!(escape_control_text("a\u{1b}\nb\n"), "a\\u{1b}\nb\n");
    }
}
