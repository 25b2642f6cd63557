//! Account field rules (SPEC.md §5.1): userid, e-mail address and password strength.
//!
//! Pure functions with typed errors, so every rule is unit-tested here and the command
//! handlers only map a [`ValidationError`] to its wire error code.

use peerchat_proto::limits::{
    EMAIL_MAX, PASSWORD_MAX_BYTES, PASSWORD_MIN_CHARS, USERID_MAX_LEN, USERID_MIN_LEN,
};
use peerchat_proto::wire::ErrorCode;

/// Why a userid, e-mail address or password was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The userid breaks §5.1 (length, alphabet or first character).
    #[error("userid must be {USERID_MIN_LEN} to {USERID_MAX_LEN} characters from A-Z a-z 0-9 _ . - and start with a letter or digit")]
    InvalidUserid,
    /// The e-mail address breaks §5.1.
    #[error("e-mail address is not valid: {0}")]
    InvalidEmail(&'static str),
    /// The password breaks §5.1.
    #[error("password is too weak: {0}")]
    WeakPassword(&'static str),
}

impl ValidationError {
    /// The error code this rule violation is answered with.
    pub fn code(&self) -> ErrorCode {
        match self {
            ValidationError::InvalidUserid => ErrorCode::InvalidUserid,
            ValidationError::InvalidEmail(_) => ErrorCode::InvalidEmail,
            ValidationError::WeakPassword(_) => ErrorCode::WeakPassword,
        }
    }
}

/// ASCII-lowercase form used for every case-insensitive comparison and lookup (SPEC.md §2).
pub fn fold(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// Checks a userid: 3..=32 characters from `[A-Za-z0-9_.-]`, the first a letter or digit.
///
/// # Errors
/// [`ValidationError::InvalidUserid`].
pub fn userid(u: &str) -> Result<(), ValidationError> {
    // The alphabet is ASCII, so bytes == characters once every byte is checked.
    let ok_len = (USERID_MIN_LEN..=USERID_MAX_LEN).contains(&u.len());
    let ok_chars = u
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    let ok_first = u.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok_len && ok_chars && ok_first {
        Ok(())
    } else {
        Err(ValidationError::InvalidUserid)
    }
}

/// Checks an e-mail address: at most 254 bytes, exactly one `@`, a local part of 1..=64 bytes,
/// a domain with at least one `.` and no empty label, and no whitespace or control characters.
///
/// Deliberately syntactic only: the server never sends mail, it only uses the address as a
/// second factor for ForgotPassword.
///
/// # Errors
/// [`ValidationError::InvalidEmail`].
pub fn email(e: &str) -> Result<(), ValidationError> {
    let bad = ValidationError::InvalidEmail;
    if e.len() > EMAIL_MAX {
        return Err(bad("longer than 254 bytes"));
    }
    if e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains whitespace or control characters"));
    }
    let mut parts = e.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("must contain exactly one '@'"));
    };
    if local.is_empty() || local.len() > 64 {
        return Err(bad("the part before '@' must be 1 to 64 bytes"));
    }
    if !domain.contains('.') || domain.split('.').any(str::is_empty) {
        return Err(bad("the domain needs at least one '.' and no empty labels"));
    }
    Ok(())
}

/// Checks password strength: at least 10 characters, at most 1024 bytes, not the userid
/// (case-insensitively).
///
/// # Errors
/// [`ValidationError::WeakPassword`].
pub fn password(password: &str, userid: &str) -> Result<(), ValidationError> {
    if password.chars().count() < PASSWORD_MIN_CHARS {
        return Err(ValidationError::WeakPassword("shorter than 10 characters"));
    }
    if password.len() > PASSWORD_MAX_BYTES {
        return Err(ValidationError::WeakPassword("longer than 1024 bytes"));
    }
    if fold(password) == fold(userid) {
        return Err(ValidationError::WeakPassword("equal to the userid"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userid_rules() {
        for ok in ["abc", "Alice", "a.b-c_d", "0day", &"x".repeat(32)] {
            assert_eq!(userid(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "ab",
            &"x".repeat(33),
            "_abc",
            ".abc",
            "-abc",
            "al ice",
            "alïce",
            "a@b",
            "abc\n",
        ] {
            assert_eq!(userid(bad), Err(ValidationError::InvalidUserid), "{bad:?}");
        }
    }

    #[test]
    fn email_rules() {
        for ok in [
            "a@b.c",
            "First.Last+tag@example.org",
            &format!("{}@example.org", "l".repeat(64)),
        ] {
            assert_eq!(email(ok), Ok(()), "{ok}");
        }
        let long = format!("a@{}.org", "d".repeat(250));
        for bad in [
            "",
            "plain",
            "a@b",
            "a@@b.c",
            "a@b@c.d",
            "@b.c",
            "a@.c",
            "a@b.",
            "a@b..c",
            "a b@c.d",
            "a@b.c\u{7}",
            &format!("{}@example.org", "l".repeat(65)),
            &long,
        ] {
            assert!(
                matches!(email(bad), Err(ValidationError::InvalidEmail(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn password_rules() {
        assert_eq!(password("correct horse", "alice"), Ok(()));
        // Ten characters, counted as Unicode scalar values, not bytes.
        assert_eq!(password("ééééééééé1", "alice"), Ok(()));
        assert!(password("ééééééééé", "alice").is_err());
        assert!(password("short", "alice").is_err());
        assert!(password(&"x".repeat(1025), "alice").is_err());
        assert_eq!(password(&"x".repeat(1024), "alice"), Ok(()));
        assert!(password("LongUserName", "longusername").is_err());
        assert_eq!(
            ValidationError::WeakPassword("x").code(),
            ErrorCode::WeakPassword
        );
    }
}
