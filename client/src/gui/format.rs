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
    /// A clickable link (web address, file name, "show folder").
    pub const LINK: char = 'H';
    /// The time of a line.
    pub const TIME: char = 'I';
    /// A day separator.
    pub const DAY: char = 'J';
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

/// A fingerprint in groups of four characters, six groups a line, for reading aloud and
/// comparing by eye: `SHA256: abcd efgh … \n …`. Anything without the prefix is grouped
/// the same way.
pub fn fingerprint_groups(fp: &str) -> String {
    let (prefix, body) = match fp.split_once(':') {
        Some((p, b)) => (format!("{p}: "), b.trim()),
        None => (String::new(), fp.trim()),
    };
    let chars: Vec<char> = body.chars().collect();
    let groups: Vec<String> = chars.chunks(4).map(|c| c.iter().collect()).collect();
    let lines: Vec<String> = groups.chunks(6).map(|g| g.join(" ")).collect();
    let pad = " ".repeat(prefix.chars().count());
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                format!("{prefix}{l}")
            } else {
                format!("{pad}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A time left for a row: `45 s`, `3 min`, `2 h 05 min`.
pub fn duration_secs(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", secs.div_ceil(60)),
        _ => format!("{} h {:02} min", secs / 3600, (secs % 3600) / 60),
    }
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

/// What a click on a span of the chat opens (issue #15 items 8 and 12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A web link in a message.
    Url(String),
    /// A received or sent file.
    File(std::path::PathBuf),
    /// The folder of a file.
    Folder(std::path::PathBuf),
}

/// The chat as text + styles, and for each text line the index of the model line it shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderedChat {
    /// The text.
    pub text: String,
    /// One style letter per byte of `text`.
    pub styles: String,
    /// Text line number (0-based) → index into the chat's lines (`usize::MAX`: a day
    /// separator).
    pub line_of: Vec<usize>,
    /// Clickable spans: byte range in `text` and what a click opens.
    pub links: Vec<(std::ops::Range<usize>, Target)>,
}

impl RenderedChat {
    fn push(&mut self, s: &str, style: char) {
        self.text.push_str(s);
        self.styles.extend(std::iter::repeat_n(style, s.len()));
    }

    fn push_link(&mut self, s: &str, target: Target) {
        let start = self.text.len();
        self.push(s, style::LINK);
        self.links.push((start..self.text.len(), target));
    }

    /// Message text with its web links styled and clickable.
    fn push_text(&mut self, text: &str) {
        let mut rest = text;
        while let Some((before, url, after)) = split_link(rest) {
            self.push(before, style::TEXT);
            self.push_link(url, Target::Url(url.to_owned()));
            rest = after;
        }
        self.push(rest, style::TEXT);
    }

    fn end_line(&mut self, model_line: usize) {
        let newlines = self.text.matches('\n').count() + 1 - self.line_of.len();
        self.line_of
            .extend(std::iter::repeat_n(model_line, newlines));
        self.push("\n", style::TEXT);
    }
}

/// The first `http://` or `https://` link in `text`: (before, link, after). A link ends at
/// white space, and trailing punctuation of the sentence is not part of it.
pub fn split_link(text: &str) -> Option<(&str, &str, &str)> {
    let start = ["https://", "http://"]
        .iter()
        .filter_map(|p| text.find(p))
        .min()?;
    let tail = &text[start..];
    let mut len = tail.find(char::is_whitespace).unwrap_or(tail.len());
    while len > 0 && tail[..len].ends_with(['.', ',', ';', ':', '!', '?', ')', '\'', '"']) {
        len -= 1;
    }
    let scheme = if tail.starts_with("https://") { 8 } else { 7 };
    if len <= scheme {
        // "http://" alone: not a link; look after it.
        let (b, l, a) = split_link(&tail[scheme..])?;
        let cut = start + scheme + b.len();
        return Some((&text[..cut], l, a));
    }
    Some((&text[..start], &tail[..len], &tail[len..]))
}

/// The local clock's offset from UTC in seconds at `at_ms` (0 where unknown).
pub fn local_offset_s(at_ms: u64) -> i64 {
    #[cfg(unix)]
    {
        let t = libc::time_t::try_from(at_ms / 1000).unwrap_or(0);
        // SAFETY: `localtime_r` writes into the `tm` we own and reads only `t`.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
            return 0;
        }
        tm.tm_gmtoff
    }
    #[cfg(not(unix))]
    {
        let _ = at_ms;
        0
    }
}

/// Days since 1970-01-01 of a local time, and the seconds into that day.
fn local_day(at_ms: u64, offset_s: i64) -> (i64, i64) {
    let t = i64::try_from(at_ms / 1000).unwrap_or(0) + offset_s;
    (t.div_euclid(86_400), t.rem_euclid(86_400))
}

/// `14:05` (local time, 24 hours).
pub fn clock(at_ms: u64, offset_s: i64) -> String {
    let (_, secs) = local_day(at_ms, offset_s);
    format!("{:02}:{:02}", secs / 3600, secs % 3600 / 60)
}

/// The civil date (year, month 1-12, day 1-31) of a day number (days since 1970-01-01;
/// H. Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A day separator's words: `Today`, `Yesterday`, or `Tuesday 1 December 2026`.
pub fn day_label(day: i64, today: i64) -> String {
    const WEEKDAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    match today - day {
        0 => "Today".to_owned(),
        1 => "Yesterday".to_owned(),
        _ => {
            let (y, m, d) = civil(day);
            let wd = WEEKDAYS[day.rem_euclid(7) as usize];
            format!("{wd} {d} {} {y}", MONTHS[(m - 1) as usize])
        }
    }
}

/// When the chat is rendered: now, and the local offset from UTC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    /// Now, Unix ms.
    pub now_ms: u64,
    /// Local offset from UTC, seconds.
    pub offset_s: i64,
}

impl Clock {
    /// The machine's clock and time zone now.
    pub fn local() -> Self {
        let now_ms = peerchat_client::history::now_ms();
        Self {
            now_ms,
            offset_s: local_offset_s(now_ms),
        }
    }
}

/// Renders a chat: a separator line at each new day, then `14:05  me: text ✓`,
/// `bob: text`, `<File> bob: 'name'  show folder`, notices. Web links and file names are
/// clickable ([`RenderedChat::links`]).
pub fn render_chat(lines: &[Line], me: &str, friend: &str, clock: Clock) -> RenderedChat {
    let mut r = RenderedChat::default();
    let (today, _) = local_day(clock.now_ms, clock.offset_s);
    let mut last_day = None;
    for (i, line) in lines.iter().enumerate() {
        let at = match line {
            Line::Message { at_ms, .. } | Line::File { at_ms, .. } | Line::Notice { at_ms, .. } => {
                *at_ms
            }
        };
        let (day, _) = local_day(at, clock.offset_s);
        if last_day != Some(day) {
            last_day = Some(day);
            r.push(
                &format!("──────  {}  ──────", day_label(day, today)),
                style::DAY,
            );
            r.end_line(usize::MAX);
        }
        r.push(&format!("{}  ", clock_of(at, clock)), style::TIME);
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
                r.push_text(text);
                if *outgoing {
                    if *acked {
                        r.push("  ✓", style::ACKED);
                    } else {
                        r.push("  ○ waiting", style::HINT);
                    }
                }
            }
            Line::File {
                sender, name, path, ..
            } => {
                r.push(&format!("<File> {sender}: '"), style::FILE);
                r.push_link(name, Target::File(path.clone()));
                r.push("'   ", style::FILE);
                if let Some(dir) = path.parent() {
                    r.push_link("show folder", Target::Folder(dir.to_path_buf()));
                }
            }
            Line::Notice { text, .. } => r.push(&format!("— {text}"), style::NOTICE),
        }
        r.end_line(i);
    }
    r
}

/// Wraps a rendered chat to `width` pixels with a hanging indent: a message's continuation
/// lines (wrapped, or its own line breaks) start under its text, not under the time and
/// name, so the time column stays clear (issue #15). `measure(text, style)` is the width of
/// `text` in pixels in the font of `style`. Breaks go at spaces; a word wider than a whole
/// line is cut where the line ends and continues under the text too. Links and line numbers
/// follow the text.
pub fn hang_indent(
    r: &RenderedChat,
    width: f64,
    measure: &dyn Fn(&str, char) -> f64,
) -> RenderedChat {
    let mut out = RenderedChat::default();
    // Old byte index -> new byte index, for the links.
    let mut map: Vec<usize> = Vec::with_capacity(r.text.len() + 1);
    let space = measure(" ", style::TEXT).max(1.0);
    let mut indent_cols = 0usize;
    let mut start = 0usize;
    for (line_no, line) in r.text.split_inclusive('\n').enumerate() {
        let model_line = r.line_of.get(line_no).copied().unwrap_or(usize::MAX);
        let styles = &r.styles[start..start + line.len()];
        let body = line.trim_end_matches('\n');
        let first_style = styles.chars().next().unwrap_or(style::TEXT);
        if first_style == style::TIME {
            // The head: the time, and for a message the name and ": ".
            let head_end = head_len(body, styles);
            indent_cols = (measure_run(&body[..head_end], &styles[..head_end], measure) / space)
                .round() as usize;
        } else if first_style == style::DAY {
            indent_cols = 0;
        }
        let this_indent = if first_style == style::TIME || first_style == style::DAY {
            0
        } else {
            indent_cols
        };
        // Lines that continue a message's own line breaks are indented too.
        let pad = " ".repeat(this_indent);
        if !pad.is_empty() {
            out.push(&pad, style::TEXT);
        }
        let mut x = this_indent as f64 * space;
        let indent_x = indent_cols as f64 * space;
        let mut i = 0;
        while i < body.len() {
            // The next word with the spaces before it.
            let word_end = body[i..]
                .find(|c: char| c != ' ')
                .map(|j| i + j)
                .and_then(|j| body[j..].find(' ').map(|k| j + k).or(Some(body.len())))
                .unwrap_or(body.len());
            let word = &body[i..word_end];
            let w = measure_run(word, &styles[i..word_end], measure);
            let leading = word.len() - word.trim_start_matches(' ').len();
            let rest_w = measure_run(&word[leading..], &styles[i + leading..word_end], measure);
            if x + w <= width {
                // It fits where we are.
                push_mapped(&mut out, &mut map, word, &styles[i..word_end]);
                x += w;
            } else if indent_x + rest_w <= width {
                // It fits on a fresh line: break before it (unless the line holds nothing
                // but the indent yet); its leading spaces go.
                if x > indent_x + 0.5 && i > 0 {
                    new_line(&mut out, model_line, indent_cols);
                    x = indent_x;
                    for _ in 0..leading {
                        map.push(out.text.len());
                    }
                    let rest = &word[leading..];
                    push_mapped(&mut out, &mut map, rest, &styles[i + leading..word_end]);
                    x += rest_w;
                } else {
                    push_mapped(&mut out, &mut map, word, &styles[i..word_end]);
                    x += w;
                }
            } else {
                // Wider than any line (a long link, 200 letters without a space): it is
                // cut where the line ends and goes on under the text, not at the left
                // edge where the display would break it (issue #15).
                for (j, c) in word.char_indices() {
                    let (a, b) = (i + j, i + j + c.len_utf8());
                    let cw = measure_run(&body[a..b], &styles[a..b], measure);
                    if x + cw > width && x > indent_x + 0.5 {
                        new_line(&mut out, model_line, indent_cols);
                        x = indent_x;
                        if c == ' ' {
                            // A space at the break goes, as between words.
                            map.push(out.text.len());
                            continue;
                        }
                    }
                    push_mapped(&mut out, &mut map, &body[a..b], &styles[a..b]);
                    x += cw;
                }
            }
            i = word_end;
        }
        if line.ends_with('\n') {
            map.push(out.text.len());
            out.line_of.push(model_line);
            out.push("\n", style::TEXT);
        }
        start += line.len();
    }
    map.push(out.text.len());
    // A link cut over lines becomes one span a line, so the indent between the pieces
    // does not open it.
    let mut links = Vec::with_capacity(r.links.len());
    for (span, t) in &r.links {
        let mut piece: Option<std::ops::Range<usize>> = None;
        for old in span.clone() {
            let Some(&new) = map.get(old) else { break };
            piece = match piece {
                Some(p) if new == p.end => Some(p.start..new + 1),
                Some(p) if new < p.end => Some(p),
                Some(p) => {
                    links.push((p, t.clone()));
                    Some(new..new + 1)
                }
                None => Some(new..new + 1),
            };
        }
        if let Some(p) = piece {
            links.push((p, t.clone()));
        }
    }
    out.links = links;
    out
}

/// Appends `text` (drawn in `styles`) to `out`, recording where each byte went.
fn push_mapped(out: &mut RenderedChat, map: &mut Vec<usize>, text: &str, styles: &str) {
    for b in 0..text.len() {
        map.push(out.text.len() + b);
    }
    out.text.push_str(text);
    out.styles.push_str(styles);
}

/// Ends the line of `out` (it still belongs to model line `model_line`) and indents the next
/// by `indent_cols` spaces.
fn new_line(out: &mut RenderedChat, model_line: usize, indent_cols: usize) {
    out.line_of.push(model_line);
    out.push("\n", style::TEXT);
    out.push(&" ".repeat(indent_cols), style::TEXT);
}

/// The width of `text` drawn with one style letter per byte.
fn measure_run(text: &str, styles: &str, measure: &dyn Fn(&str, char) -> f64) -> f64 {
    let mut total = 0.0;
    let mut from = 0;
    let sb = styles.as_bytes();
    while from < text.len() {
        let st = sb[from];
        let mut to = from + 1;
        while to < text.len() && (sb[to] == st || !text.is_char_boundary(to)) {
            to += 1;
        }
        total += measure(&text[from..to], char::from(st));
        from = to;
    }
    total
}

/// How many bytes of a chat line are its head: the time (style TIME) and, for a message,
/// the name and the `": "` after it.
fn head_len(body: &str, styles: &str) -> usize {
    let sb = styles.as_bytes();
    let time_end = sb
        .iter()
        .position(|&c| char::from(c) != style::TIME)
        .unwrap_or(body.len());
    let after = &sb[time_end..];
    let name_style = after.first().map(|&c| char::from(c));
    if matches!(name_style, Some(s) if s == style::ME || s == style::FRIEND) {
        let name_end = time_end
            + after
                .iter()
                .position(|&c| c != after[0])
                .unwrap_or(after.len());
        if body[name_end..].starts_with(": ") {
            return name_end + 2;
        }
    }
    time_end
}

fn clock_of(at_ms: u64, c: Clock) -> String {
    clock(at_ms, c.offset_s)
}

/// The index of the model line shown at byte `pos` of a rendered chat.
pub fn line_at(r: &RenderedChat, pos: usize) -> Option<usize> {
    let pos = pos.min(r.text.len());
    let text_line = r.text.get(..pos)?.matches('\n').count();
    r.line_of
        .get(text_line)
        .copied()
        .filter(|&l| l != usize::MAX)
}

/// What a click at byte `pos` opens, if it is on a link.
pub fn target_at(r: &RenderedChat, pos: usize) -> Option<&Target> {
    r.links
        .iter()
        .find(|(span, _)| span.contains(&pos))
        .map(|(_, t)| t)
}

/// The next match of `query` in `text` at or after byte `from`, wrapping to the start;
/// case-insensitive for ASCII letters (Ctrl+F in a conversation).
pub fn find_next(text: &str, query: &str, from: usize) -> Option<std::ops::Range<usize>> {
    if query.is_empty() {
        return None;
    }
    let hay = text.to_ascii_lowercase();
    let needle = query.to_ascii_lowercase();
    let from = from.min(hay.len());
    let at = hay
        .get(from..)
        .and_then(|t| t.find(&needle))
        .map(|i| i + from)
        .or_else(|| hay.find(&needle))?;
    Some(at..at + needle.len())
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
        let r = render_chat(&lines, "alice", "bob", Clock::default());
        assert_eq!(r.text.len(), r.styles.len());
        assert!(r.text.starts_with(
            "──────  Today  ──────\n00:00  alice: héllo  ✓\n00:00  bob: two\nlines\n00:00  <File> bob: 'a.txt'"
        ));
        assert!(r.text.contains("alice: wait  ○ waiting\n"));
        assert_eq!(r.line_of, [usize::MAX, 0, 1, 1, 2, 3]);
        let file_pos = r.text.find("<File>").unwrap_or(0);
        assert_eq!(line_at(&r, file_pos + 3), Some(2));
        assert_eq!(line_at(&r, 0), None, "the day separator is no line");
        let name = r.text.find("a.txt").unwrap_or(0);
        assert_eq!(
            target_at(&r, name + 1),
            Some(&Target::File(PathBuf::from("/x/a.txt")))
        );
        let folder = r.text.find("show folder").unwrap_or(0);
        assert_eq!(
            target_at(&r, folder),
            Some(&Target::Folder(PathBuf::from("/x")))
        );
    }

    #[test]
    fn times_and_day_separators_in_local_time() {
        // Issue #15 item 2. 2026-12-01 is a Tuesday; the zone is UTC+1.
        let day = 20_788; // days from 1970-01-01 to 2026-12-01
        assert_eq!(civil(day), (2026, 12, 1));
        let ms = |d: i64, h: i64, m: i64| ((d * 86_400 + h * 3600 + m * 60) * 1000) as u64;
        let c = Clock {
            now_ms: ms(day, 9, 0),
            offset_s: 3600,
        };
        assert_eq!(clock(ms(day, 13, 5), 3600), "14:05");
        let msg = |id: &str, at: u64| Line::Message {
            id: id.into(),
            outgoing: false,
            text: id.into(),
            at_ms: at,
            acked: false,
        };
        let lines = [
            msg("a", ms(day - 40, 10, 0)),
            msg("b", ms(day - 1, 22, 30)), // 23:30 local, yesterday
            msg("c", ms(day - 1, 23, 30)), // 00:30 local, today
        ];
        let r = render_chat(&lines, "me", "bob", c);
        assert_eq!(
            r.text,
            "──────  Thursday 22 October 2026  ──────\n11:00  bob: a\n\
             ──────  Yesterday  ──────\n23:30  bob: b\n\
             ──────  Today  ──────\n00:30  bob: c\n"
        );
        assert_eq!(r.text.len(), r.styles.len());
    }

    #[test]
    fn web_links_are_found_without_trailing_punctuation() {
        assert_eq!(
            split_link("see https://example.org/a?b=1. ok"),
            Some(("see ", "https://example.org/a?b=1", ". ok"))
        );
        assert_eq!(split_link("no link here"), None);
        assert_eq!(split_link("(http://x.y)"), Some(("(", "http://x.y", ")")));
        let lines = [Line::Message {
            id: "1".into(),
            outgoing: false,
            text: "look: https://peerchat.example/docs".into(),
            at_ms: 0,
            acked: false,
        }];
        let r = render_chat(&lines, "me", "bob", Clock::default());
        let at = r.text.find("https").unwrap_or(0);
        assert_eq!(
            target_at(&r, at + 5),
            Some(&Target::Url("https://peerchat.example/docs".into()))
        );
        assert_eq!(&r.styles[at..at + 5], "HHHHH");
    }

    #[test]
    fn search_finds_the_next_match_and_wraps() {
        let t = "Hello bob\nhello again\nbye";
        assert_eq!(find_next(t, "HELLO", 0), Some(0..5));
        assert_eq!(find_next(t, "hello", 5), Some(10..15));
        assert_eq!(find_next(t, "hello", 15), Some(0..5), "wraps around");
        assert_eq!(find_next(t, "nothing", 0), None);
        assert_eq!(find_next(t, "", 0), None);
    }

    #[test]
    fn fingerprints_come_in_groups_to_read_aloud() {
        let fp = "SHA256:abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ";
        assert_eq!(
            fingerprint_groups(fp),
            "SHA256: abcd efgh ijkl mnop qrst uvwx\n        yzAB CDEF GHIJ KLMN OPQ"
        );
        assert_eq!(fingerprint_groups(""), "");
        assert_eq!(duration_secs(45), "45 s");
        assert_eq!(duration_secs(61), "2 min");
        assert_eq!(duration_secs(7500), "2 h 05 min");
    }

    #[test]
    fn wrapped_lines_hang_under_the_message_text() {
        let clock = Clock {
            now_ms: 1_000_000_000,
            offset_s: 0,
        };
        let lines = vec![
            Line::Message {
                id: "1".into(),
                outgoing: false,
                text: "one two three four five six https://example.org/x seven".into(),
                at_ms: 1_000_000_000,
                acked: false,
            },
            Line::Message {
                id: "2".into(),
                outgoing: true,
                text: "first line\nsecond line".into(),
                at_ms: 1_000_000_000,
                acked: true,
            },
        ];
        let r = render_chat(&lines, "me", "bob", clock);
        // One pixel a character: the arithmetic is easy to follow.
        let measure = |t: &str, _: char| t.chars().count() as f64;
        let w = hang_indent(&r, 30.0, &measure);
        let text: Vec<&str> = w.text.lines().collect();
        // "13:46  bob: " is 12 characters: continuation lines start in column 12.
        assert!(text[1].starts_with("13:46  bob: one two three"), "{text:?}");
        let indent = " ".repeat(12);
        // The link is wider than a line after the indent: it is cut where the line ends.
        for cont in &text[2..4] {
            assert!(cont.starts_with(&indent), "{cont:?} in {text:?}");
            assert!(!cont[12..].starts_with(' '), "{cont:?}");
            assert!(cont.chars().count() <= 30, "{cont:?}");
        }
        // The message's own line break is indented the same way (under "me: ").
        let second = text
            .iter()
            .position(|l| l.contains("first line"))
            .unwrap_or(0);
        assert!(
            text[second + 1].starts_with("           second line"),
            "{text:?}"
        );
        assert_eq!(w.styles.len(), w.text.len());
        assert_eq!(w.line_of.len(), w.text.matches('\n').count());
        // Every wrapped text line still belongs to its message; the link still opens.
        assert_eq!(line_at(&w, w.text.find("seven").unwrap_or(0)), Some(0));
        assert_eq!(line_at(&w, w.text.find("second").unwrap_or(0)), Some(1));
        let at = w.text.find("https://").unwrap_or(0);
        assert_eq!(
            target_at(&w, at + 3),
            Some(&Target::Url("https://example.org/x".into()))
        );
        let pieces: String = w.links.iter().map(|(s, _)| &w.text[s.clone()]).collect();
        assert_eq!(pieces, "https://example.org/x");
        // Wide enough: only the message's own second line moves (under its text).
        let wide = hang_indent(&r, 1000.0, &measure);
        assert_eq!(
            wide.text,
            r.text
                .replace("\nsecond", &format!("\n{}second", " ".repeat(11)))
        );
        assert_eq!((wide.line_of, wide.links), (r.line_of, r.links));
    }

    #[test]
    fn a_word_longer_than_the_line_wraps_under_the_text_too() {
        let clock = Clock {
            now_ms: 1_000_000_000,
            offset_s: 0,
        };
        let long = "x".repeat(200);
        let url = format!("https://example.org/{}", "a".repeat(60));
        let lines = vec![
            Line::Message {
                id: "1".into(),
                outgoing: false,
                text: long.clone(),
                at_ms: 1_000_000_000,
                acked: false,
            },
            Line::Message {
                id: "2".into(),
                outgoing: false,
                text: format!("see {url} now"),
                at_ms: 1_000_000_000,
                acked: false,
            },
        ];
        let r = render_chat(&lines, "me", "bob", clock);
        let measure = |t: &str, _: char| t.chars().count() as f64;
        let w = hang_indent(&r, 40.0, &measure);
        let text: Vec<&str> = w.text.lines().collect();
        // "13:46  bob: " is 12 columns; each line holds 40.
        let indent = " ".repeat(12);
        let mine: Vec<&str> = text.iter().copied().filter(|l| l.contains("xxx")).collect();
        assert!(mine[0].starts_with("13:46  bob: x"), "{text:?}");
        for l in &mine {
            assert!(l.chars().count() <= 40, "{l:?} is longer than the line");
        }
        for l in &mine[1..] {
            assert!(l.starts_with(&indent), "{l:?} not under the text");
            assert!(!l[12..].starts_with(' '), "{l:?}");
        }
        // Nothing is lost: all 200 letters, each line as full as it can be.
        assert_eq!(
            mine.iter().map(|l| l.matches('x').count()).sum::<usize>(),
            200
        );
        assert_eq!(mine[0].matches('x').count(), 28);
        assert_eq!(mine.len(), 8, "{mine:?}");
        assert_eq!(w.line_of.len(), w.text.matches('\n').count());
        assert_eq!(w.styles.len(), w.text.len());
        let last_x = w.text.rfind("xxx").unwrap_or(0);
        assert_eq!(
            line_at(&w, last_x),
            Some(0),
            "the cut word is still message 0"
        );
        // The link is cut over lines: every piece opens it, the indent between does not.
        let pieces: Vec<_> = w
            .links
            .iter()
            .filter(|(_, t)| *t == Target::Url(url.clone()))
            .collect();
        assert!(pieces.len() >= 2, "{:?}", w.links);
        let joined: String = pieces.iter().map(|(s, _)| &w.text[s.clone()]).collect();
        assert_eq!(joined, url);
        let second = pieces[1].0.start;
        assert_eq!(target_at(&w, second), Some(&Target::Url(url.clone())));
        assert_eq!(target_at(&w, second - 1), None, "the indent is not a link");
        for (span, _) in &pieces {
            assert!(!w.text[span.clone()].contains('\n'));
        }
        // "now" after the link is still there, under the text.
        assert!(text.contains(&format!("{indent}now").as_str()), "{text:?}");
    }
}
