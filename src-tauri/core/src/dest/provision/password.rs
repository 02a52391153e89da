//! Passwords for new accounts: random, strong, and within the destination's password policy.

use rand::seq::SliceRandom;
use rand::Rng;

use crate::secrets::Secret;

/// A destination's password policy. For IceWarp these are the server properties
/// `C_Accounts_Policies_Pass_*` (icewarp-apiconst.txt): `Enable`, `MinLength`, `Digits`,
/// `NonAlphaNum`, `Alpha`, `UpperAlpha`, `UserAlias`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub enabled: bool,
    pub min_length: usize,
    pub digits: usize,
    pub non_alphanumeric: usize,
    pub alpha: usize,
    pub upper_alpha: usize,
    /// The password must not contain the user's name or an alias.
    pub no_user_names: bool,
}

/// Length of generated passwords unless the policy asks for more.
pub const GENERATED_LENGTH: usize = 20;

const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const DIGITS: &[u8] = b"23456789";
/// Symbols that need no quoting in CSV, XML attributes, shells or URLs' userinfo.
const SYMBOLS: &[u8] = b"!#%*+-=?@^_~";

impl PasswordPolicy {
    /// Why `password` breaks this policy for a user with these names, if it does. Mirrors the
    /// checks IceWarp documents for the properties above.
    pub fn violation(&self, password: &str, names: &[&str]) -> Option<String> {
        if !self.enabled {
            return None;
        }
        let count = |f: fn(&char) -> bool| password.chars().filter(f).count();
        let checks = [
            (password.chars().count(), self.min_length, "characters"),
            (count(char::is_ascii_digit), self.digits, "digits"),
            (
                count(|c| !c.is_alphanumeric()),
                self.non_alphanumeric,
                "symbols",
            ),
            (count(|c| c.is_alphabetic()), self.alpha, "letters"),
            (
                count(|c| c.is_uppercase()),
                self.upper_alpha,
                "upper-case letters",
            ),
        ];
        if let Some((have, need, what)) = checks.into_iter().find(|(have, need, _)| have < need) {
            return Some(format!("{have} {what}, the policy needs {need}"));
        }
        let lower = password.to_lowercase();
        if self.no_user_names
            && names
                .iter()
                .any(|n| !n.is_empty() && lower.contains(&n.to_lowercase()))
        {
            return Some("contains the user's name or an alias".into());
        }
        None
    }

    /// A random password that satisfies this policy (and a strong default when the policy
    /// is off): at least [`GENERATED_LENGTH`] characters with upper- and lower-case letters,
    /// digits and symbols, none of them ambiguous (`0 O 1 l I`) or in need of quoting.
    pub fn generate(&self, names: &[&str]) -> Secret {
        let mut rng = rand::rng();
        loop {
            let need_upper = self.upper_alpha.max(2);
            let need_digits = self.digits.max(2);
            let need_symbols = self.non_alphanumeric.max(2);
            let need_lower = self.alpha.saturating_sub(need_upper).max(2);
            let fixed = need_upper + need_digits + need_symbols + need_lower;
            let length = self.min_length.max(GENERATED_LENGTH).max(fixed);
            let mut chars: Vec<u8> = Vec::with_capacity(length);
            for (set, n) in [
                (UPPER, need_upper),
                (DIGITS, need_digits),
                (SYMBOLS, need_symbols),
                (LOWER, need_lower),
            ] {
                chars.extend((0..n).map(|_| set[rng.random_range(0..set.len())]));
            }
            let all: Vec<u8> = [LOWER, UPPER, DIGITS].concat();
            while chars.len() < length {
                chars.push(all[rng.random_range(0..all.len())]);
            }
            chars.shuffle(&mut rng);
            let password = String::from_utf8_lossy(&chars).into_owned();
            if self.violation(&password, names).is_none() {
                return Secret::new(password);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_meet_demanding_policies_and_differ() {
        let policy = PasswordPolicy {
            enabled: true,
            min_length: 32,
            digits: 5,
            non_alphanumeric: 4,
            alpha: 12,
            upper_alpha: 6,
            no_user_names: true,
        };
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let p = policy.generate(&["adele", "av"]);
            assert_eq!(policy.violation(p.expose(), &["adele", "av"]), None);
            assert!(p.expose().len() >= 32);
            assert!(!p.expose().contains(',') && !p.expose().contains('"'));
            assert!(seen.insert(p.expose().to_string()));
        }
        let off = PasswordPolicy::default().generate(&[]);
        assert_eq!(off.expose().len(), GENERATED_LENGTH);
    }

    #[test]
    fn violations_name_what_is_missing() {
        let policy = PasswordPolicy {
            enabled: true,
            min_length: 8,
            digits: 1,
            no_user_names: true,
            ..PasswordPolicy::default()
        };
        assert!(policy
            .violation("abcdefgh", &[])
            .unwrap()
            .contains("digits"));
        assert!(policy
            .violation("xAdele123", &["adele"])
            .unwrap()
            .contains("name"));
        assert_eq!(policy.violation("abcdefg1", &["adele"]), None);
    }
}
