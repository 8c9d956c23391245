//! Text from elsewhere made safe to print on a terminal.
//!
//! Names, reasons and error messages come from the daemon, which got many of them from the
//! trackers, other users or other peers. Printed raw, an escape sequence in a group name could
//! recolour, retitle or rewrite the user's terminal, and a newline or carriage return could
//! forge a line of output. [`safe`] is the one function every human line of p2pctl goes through
//! (the `--json` output is escaped by serde instead).

use std::borrow::Cow;
use std::fmt::Write;

/// `text` as one printable line: every control character (C0 including newline, tab and ESC,
/// DEL, C1) and every bidirectional-override character is replaced by a visible escape, `\x1b`
/// for ASCII ones, `\u{9b}` for the others. Text without any is returned as it is.
pub fn safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !needs_escape(c) {
            out.push(c);
        } else if c.is_ascii() {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// Characters that reorder the text around them on screen (the "Trojan source" ones).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_untouched_and_not_copied() {
        assert!(matches!(safe("g1  owner: alice"), Cow::Borrowed(_)));
        assert_eq!(safe("émoji 🎉 and ünïcode"), "émoji 🎉 and ünïcode");
        assert_eq!(safe(""), "");
    }

    #[test]
    fn escape_sequences_become_visible() {
        assert_eq!(safe("\u{1b}[31mred\u{1b}[0m"), "\\x1b[31mred\\x1b[0m");
        // An OSC that would set the window title, ended by BEL.
        assert_eq!(safe("\u{1b}]0;pwned\u{7}"), "\\x1b]0;pwned\\x07");
        assert_eq!(safe("del\u{7f}"), "del\\x7f");
        // C1: CSI and OSC in their 8-bit form.
        assert_eq!(safe("\u{9b}2J\u{9d}"), "\\u{9b}2J\\u{9d}");
        assert_eq!(safe("nul\0"), "nul\\x00");
    }

    #[test]
    fn line_breaks_cannot_forge_lines() {
        assert_eq!(
            safe("g1\n[C] [g2] fake.bin  100%"),
            "g1\\x0a[C] [g2] fake.bin  100%"
        );
        assert_eq!(safe("done\rlie"), "done\\x0dlie");
        assert_eq!(safe("a\tb"), "a\\x09b");
    }

    #[test]
    fn bidi_overrides_are_escaped() {
        assert_eq!(safe("file\u{202e}txt.exe"), "file\\u{202e}txt.exe");
        assert_eq!(safe("\u{2066}x\u{2069}"), "\\u{2066}x\\u{2069}");
    }

    #[test]
    fn every_control_character_is_escaped() {
        for c in (0u32..0x20).chain(0x7f..0xa0).filter_map(char::from_u32) {
            let text = c.to_string();
            let shown = safe(&text);
            assert!(
                shown.starts_with('\\') && !shown.chars().any(char::is_control),
                "{c:?} shown as {shown:?}"
            );
        }
    }
}
