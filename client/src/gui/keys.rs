//! What keys do, as pure functions of the key and its modifiers (issue #15 item 9): in
//! the message box Enter sends and Shift+Enter starts a new line; anywhere in the main
//! window Ctrl+Up/Down (or Ctrl+PageUp/PageDown) go to the chat above/below, Ctrl+1..9 to
//! the n-th chat of the list, Ctrl+F searches the conversation. The widgets translate FLTK
//! events into [`KeyPress`] and act on the answer; the tests pin the table.

/// A key as the rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyName {
    /// Enter or keypad Enter.
    Enter,
    /// Arrow up / Page up.
    Up,
    /// Arrow down / Page down.
    Down,
    /// A digit key.
    Digit(u8),
    /// The letter F.
    F,
    /// Anything else.
    Other,
}

/// A key with its modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPress {
    /// The key.
    pub key: KeyName,
    /// Shift held.
    pub shift: bool,
    /// Ctrl held.
    pub ctrl: bool,
}

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    /// Send the message box.
    Send,
    /// Let the message box insert a new line.
    NewLine,
    /// Show the chat `n` places further down the list (negative: up).
    MoveChat(i32),
    /// Show the n-th chat of the list (0-based).
    OpenChat(usize),
    /// Search in the conversation.
    Search,
}

/// A window-wide shortcut (works wherever the focus is).
pub fn shortcut(k: KeyPress) -> Option<KeyAction> {
    if !k.ctrl {
        return None;
    }
    match k.key {
        KeyName::Up => Some(KeyAction::MoveChat(-1)),
        KeyName::Down => Some(KeyAction::MoveChat(1)),
        KeyName::Digit(d @ 1..=9) => Some(KeyAction::OpenChat(usize::from(d - 1))),
        KeyName::F => Some(KeyAction::Search),
        _ => None,
    }
}

/// A key in the message box: shortcuts first, then Enter sends and Shift+Enter (or
/// Ctrl+Enter) makes a new line.
pub fn in_compose(k: KeyPress) -> Option<KeyAction> {
    if let Some(a) = shortcut(k) {
        return Some(a);
    }
    match k.key {
        KeyName::Enter if k.shift || k.ctrl => Some(KeyAction::NewLine),
        KeyName::Enter => Some(KeyAction::Send),
        _ => None,
    }
}

/// Height of the message box for `text`: one to five lines, then it scrolls.
pub fn compose_height(text: &str, line_h: i32) -> i32 {
    let lines = text.split('\n').count().clamp(1, 5) as i32;
    lines * line_h + 12
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(key: KeyName, shift: bool, ctrl: bool) -> KeyPress {
        KeyPress { key, shift, ctrl }
    }

    #[test]
    fn enter_sends_and_shift_enter_breaks_the_line() {
        assert_eq!(
            in_compose(k(KeyName::Enter, false, false)),
            Some(KeyAction::Send)
        );
        assert_eq!(
            in_compose(k(KeyName::Enter, true, false)),
            Some(KeyAction::NewLine)
        );
        assert_eq!(
            in_compose(k(KeyName::Enter, false, true)),
            Some(KeyAction::NewLine)
        );
        assert_eq!(in_compose(k(KeyName::Other, true, false)), None);
    }

    #[test]
    fn ctrl_keys_switch_chats_and_search() {
        assert_eq!(
            shortcut(k(KeyName::Up, false, true)),
            Some(KeyAction::MoveChat(-1))
        );
        assert_eq!(
            shortcut(k(KeyName::Down, false, true)),
            Some(KeyAction::MoveChat(1))
        );
        assert_eq!(
            shortcut(k(KeyName::Digit(3), false, true)),
            Some(KeyAction::OpenChat(2))
        );
        assert_eq!(shortcut(k(KeyName::Digit(0), false, true)), None);
        assert_eq!(
            shortcut(k(KeyName::F, false, true)),
            Some(KeyAction::Search)
        );
        assert_eq!(
            shortcut(k(KeyName::Up, false, false)),
            None,
            "plain arrows move the cursor"
        );
        assert_eq!(
            in_compose(k(KeyName::Down, false, true)),
            Some(KeyAction::MoveChat(1))
        );
    }

    #[test]
    fn the_message_box_grows_to_five_lines() {
        assert_eq!(compose_height("", 18), 30);
        assert_eq!(compose_height("a\nb", 18), 48);
        assert_eq!(compose_height("1\n2\n3\n4\n5\n6\n7", 18), 102);
    }
}
