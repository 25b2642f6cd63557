//! Recovery codes (SPEC.md §5.1, §5.5): the second factor, with the e-mail address, that
//! lets a user who forgot their password set a new one.
//!
//! A code is 20 characters of the RFC 4648 base32 alphabet (100 random bits), shown as
//! `XXXXX-XXXXX-XXXXX-XXXXX`. Users retype codes, so comparison ignores dashes, spaces and
//! letter case: [`normalize`] produces the form that is hashed and verified.

use rand::Rng as _;

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// Characters in a code, without separators.
pub const CODE_CHARS: usize = 20;
const GROUP: usize = 5;

/// A fresh recovery code in display form (`XXXXX-XXXXX-XXXXX-XXXXX`).
pub fn generate() -> String {
    let mut rng = rand::rngs::OsRng;
    let mut out = String::with_capacity(CODE_CHARS + CODE_CHARS / GROUP);
    for i in 0..CODE_CHARS {
        if i > 0 && i % GROUP == 0 {
            out.push('-');
        }
        out.push(char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]));
    }
    out
}

/// The canonical form of a typed code (separators removed, upper case), or `None` if what is
/// left is not 20 base32 characters. Only the canonical form is hashed.
pub fn normalize(typed: &str) -> Option<String> {
    let s: String = typed
        .chars()
        .filter(|c| *c != '-' && *c != ' ')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (s.len() == CODE_CHARS && s.bytes().all(|b| ALPHABET.contains(&b))).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_have_the_display_form() {
        let c = generate();
        assert_eq!(c.len(), 23);
        let groups: Vec<&str> = c.split('-').collect();
        assert_eq!(groups.len(), 4);
        assert!(groups
            .iter()
            .all(|g| g.len() == 5 && g.bytes().all(|b| ALPHABET.contains(&b))));
        assert_ne!(generate(), generate());
    }

    #[test]
    fn normalize_ignores_separators_and_case() {
        let c = generate();
        let canon = normalize(&c).unwrap();
        assert_eq!(canon.len(), 20);
        assert_eq!(normalize(&c.to_lowercase()), Some(canon.clone()));
        assert_eq!(normalize(&c.replace('-', " ")), Some(canon.clone()));
        assert_eq!(normalize(&canon), Some(canon));
    }

    #[test]
    fn normalize_rejects_wrong_shapes() {
        for bad in [
            "",
            "AAAAA-BBBBB-CCCCC",
            "AAAAA-BBBBB-CCCCC-DDDD1",
            "AAAAA-BBBBB-CCCCC-DDDDDD",
            "AAAAA_BBBBB_CCCCC_DDDDD",
        ] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }
}
