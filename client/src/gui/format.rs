//! Text the app shows: sizes, speeds, and the chat history rendered into a text buffer plus
//! its style buffer (one style letter per byte, as FLTK's `TextDisplay` wants). Pure
//! functions, unit-tested.

use super::model::Line;

/// Style letters of the chat view (see `theme::chat_styles`, same order).
pub mod style {
    /// Message text.
    pub const TEXT: char = 'A';
    /// Our own name.
    pub const ME: char = 'B';
    /// The friend's name.
    pub const FRIEND: char = 'C';
    /// Delivered tick.
    pub const ACKED: char = 'D';
    /// Hints and the "sending" mark.
    pub const HINT: char = 'E';
    /// A `<File>` line.
    pub const FILE: char = 'F';
    /// Notices.
    pub const NOTICE: char = 'G';
}

/// `1.5 MB`, `512 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else if v < 10.0 {
        format!("{v:.1} {}", UNITS[u])
    } else {
        format!("{v:.0} {}", UNITS[u])
    }
}

/// `2.3 MB/s`.
pub fn rate(bytes_per_sec: u64) -> String {
    format!("{}/s", bytes(bytes_per_sec))
}

/// Breaks text into lines of at most `width` characters at spaces (for dialogs, which do
/// not wrap by themselves). Existing line breaks are kept.
pub fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    for (i, para) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let mut len = 0;
        for word in para.split(' ') {
            let w = word.chars().count();
            if len > 0 && len + 1 + w > width {
                out.push('\n');
                len = 0;
            } else if len > 0 {
                out.push(' ');
                len += 1;
            }
            out.push_str(word);
            len += w;
        }
    }
    out
}

/// The chat as text + styles, and for each text line the index of the model line it shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderedChat {
    /// The text.
    pub text: String,
    /// One style letter per byte of `text`.
    pub styles: String,
    /// Text line number (0-based) → index into the chat's lines.
    pub line_of: Vec<usize>,
}

impl RenderedChat {
    fn push(&mut self, s: &str, style: char) {
        self.text.push_str(s);
        self.styles.extend(std::iter::repeat_n(style, s.len()));
    }

    fn end_line(&mut self, model_line: usize) {
        let newlines = self.text.matches('\n').count() + 1 - self.line_of.len();
        self.line_of
            .extend(std::iter::repeat_n(model_line, newlines));
        self.push("\n", style::TEXT);
    }
}

/// Renders a chat: `me: text ✓`, `bob: text`, `<File> bob: 'name'`, notices.
pub fn render_chat(lines: &[Line], me: &str, friend: &str) -> RenderedChat {
    let mut r = RenderedChat::default();
    for (i, line) in lines.iter().enumerate() {
        match line {
            Line::Message {
                outgoing,
                text,
                acked,
                ..
            } => {
                if *outgoing {
                    r.push(me, style::ME);
                } else {
                    r.push(friend, style::FRIEND);
                }
                r.push(": ", style::TEXT);
                r.push(text, style::TEXT);
                if *outgoing {
                    if *acked {
                        r.push("  ✓", style::ACKED);
                    } else {
                        r.push("  ○ waiting", style::HINT);
                    }
                }
            }
            Line::File { sender, name, .. } => {
                r.push(&format!("<File> {sender}: '{name}'"), style::FILE);
                r.push("   (double-click: open folder)", style::HINT);
            }
            Line::Notice { text, .. } => r.push(&format!("— {text}"), style::NOTICE),
        }
        r.end_line(i);
    }
    r
}

/// The index of the model line shown at byte `pos` of a rendered chat.
pub fn line_at(r: &RenderedChat, pos: usize) -> Option<usize> {
    let pos = pos.min(r.text.len());
    let text_line = r.text.get(..pos)?.matches('\n').count();
    r.line_of.get(text_line).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn wraps_at_spaces_and_keeps_breaks() {
        assert_eq!(wrap("aaa bbb ccc", 7), "aaa bbb\nccc");
        assert_eq!(wrap("one\n\ntwo three", 5), "one\n\ntwo\nthree");
        assert_eq!(
            wrap("averyveryverylongword x", 5),
            "averyveryverylongword\nx"
        );
    }

    #[test]
    fn sizes_and_rates() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1500), "1.5 KB");
        assert_eq!(bytes(25_000_000), "25 MB");
        assert_eq!(rate(2_300_000), "2.3 MB/s");
    }

    #[test]
    fn chat_renders_with_one_style_per_byte() {
        let lines = vec![
            Line::Message {
                id: "1".into(),
                outgoing: true,
                text: "héllo".into(),
                at_ms: 1,
                acked: true,
            },
            Line::Message {
                id: "2".into(),
                outgoing: false,
                text: "two\nlines".into(),
                at_ms: 2,
                acked: false,
            },
            Line::File {
                id: "f1".into(),
                sender: "bob".into(),
                name: "a.txt".into(),
                path: PathBuf::from("/x/a.txt"),
                at_ms: 3,
            },
            Line::Message {
                id: "3".into(),
                outgoing: true,
                text: "wait".into(),
                at_ms: 4,
                acked: false,
            },
        ];
        let r = render_chat(&lines, "alice", "bob");
        assert_eq!(r.text.len(), r.styles.len());
        assert!(r
            .text
            .starts_with("alice: héllo  ✓\nbob: two\nlines\n<File> bob: 'a.txt'"));
        assert!(r.text.contains("alice: wait  ○ waiting\n"));
        assert_eq!(r.line_of, [0, 1, 1, 2, 3]);
        let file_pos = r.text.find("<File>").unwrap_or(0);
        assert_eq!(line_at(&r, file_pos + 3), Some(2));
        assert_eq!(line_at(&r, 0), Some(0));
    }
}
