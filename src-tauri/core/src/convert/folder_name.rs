//! Folder names: modified UTF-7 (RFC 3501 §5.1.3), the visible substitute for a destination's
//! hierarchy separator, and the reversible escaping rule of on-disk names and of earlier runs.
//!
//! **Names as typed.** A destination folder's name is the source folder's display name with
//! only the destination's hierarchy separator replaced by [`DEFAULT_SEPARATOR_SUBSTITUTE`]
//! (`∕`, U+2215 DIVISION SLASH; `[run] folder_separator_substitute` changes it): see
//! [`substitute_separator`]. `Reports 2024/25` under a `/` separator is `Reports 2024∕25`.
//!
//! **Escaping rule** (local folder names on disk, and IMAP names written before names were
//! kept as typed). Before encoding, `%` becomes `%25`, a separator becomes `%XX` (its
//! hexadecimal code, e.g. `.` -> `%2E`, `/` -> `%2F`), and control characters become `%XX`.
//! Decoding reverses it. So `v1.2` is stored as `v1%2E2` in a `.`-separated tree and reads back
//! as `v1.2`, and two different source names never map to the same destination name.

use base64::Engine as _;

/// What replaces a destination's hierarchy separator inside a folder name unless configured:
/// `∕` (U+2215 DIVISION SLASH), which looks like `/` but is an ordinary character.
pub const DEFAULT_SEPARATOR_SUBSTITUTE: &str = "\u{2215}";

/// `name` with every `separator` replaced by `substitute`; nothing else changes.
pub fn substitute_separator(name: &str, separator: char, substitute: &str) -> String {
    name.replace(separator, substitute)
}

/// `name` with each control character replaced by its visible symbol, which IMAP servers
/// refuse in a name (Dovecot: "Control characters not allowed in new mailbox names"): C0 and
/// DEL by the Unicode Control Pictures (U+2400 block: tab -> `␉`, DEL -> `␡`), C1 by `�`.
pub fn control_pictures(name: &str) -> String {
    name.chars()
        .map(|c| match c as u32 {
            n @ 0..=0x1f => char::from_u32(0x2400 + n).unwrap_or('\u{fffd}'),
            0x7f => '\u{2421}',
            _ if c.is_control() => '\u{fffd}',
            _ => c,
        })
        .collect()
}

/// Why a separator substitute cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubstituteError {
    #[error("is empty")]
    Empty,
    #[error("is longer than 8 characters")]
    TooLong,
    #[error("holds '{0}', a hierarchy separator or a character a folder name cannot hold")]
    Forbidden(char),
}

/// Checks a configured substitute: 1 to 8 characters, none of them a usual hierarchy separator
/// (`/`, `.`, `\`), a control character, or `%`/`*` (IMAP LIST wildcards, RFC 3501 §6.3.8),
/// so a name it makes never splits or matches other folders.
pub fn check_substitute(substitute: &str) -> Result<(), SubstituteError> {
    if substitute.is_empty() {
        return Err(SubstituteError::Empty);
    }
    if substitute.chars().count() > 8 {
        return Err(SubstituteError::TooLong);
    }
    match substitute
        .chars()
        .find(|c| matches!(c, '/' | '.' | '\\' | '%' | '*') || c.is_control())
    {
        Some(c) => Err(SubstituteError::Forbidden(c)),
        None => Ok(()),
    }
}

/// Escapes `%`, the `separators` and control characters as `%XX` (see the module doc).
pub fn escape(name: &str, separators: &[char]) -> String {
    escape_hex(name, separators, true)
}

/// [`escape`] with lower-case hexadecimal digits, `%xx`: the form Dovecot's listescape plugin
/// writes and looks up (file names compare case-sensitively), so a Dovecot with
/// `listescape_char = "%%"` reads the local folder's names as typed.
pub fn escape_lower(name: &str, separators: &[char]) -> String {
    escape_hex(name, separators, false)
}

fn escape_hex(name: &str, separators: &[char], upper: bool) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c == '%' || separators.contains(&c) || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                if upper {
                    out.push_str(&format!("%{b:02X}"));
                } else {
                    out.push_str(&format!("%{b:02x}"));
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Reverses [`escape`]. Invalid `%` sequences are kept as they are.
pub fn unescape(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = hex_byte(bytes[i + 1], bytes[i + 2]) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_byte(hi: u8, lo: u8) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    Some((digit(hi)? * 16 + digit(lo)?) as u8)
}

const MUTF7: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &match base64::alphabet::Alphabet::new(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,",
    ) {
        Ok(a) => a,
        Err(_) => panic!("the modified base64 alphabet is valid"),
    },
    base64::engine::general_purpose::NO_PAD,
);

/// Encodes a mailbox name in modified UTF-7 (RFC 3501 §5.1.3): printable ASCII stays, `&`
/// becomes `&-`, everything else is UTF-16 in modified base64 between `&` and `-`.
pub fn encode_mutf7(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if !pending.is_empty() {
            let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
            out.push('&');
            out.push_str(&MUTF7.encode(bytes));
            out.push('-');
            pending.clear();
        }
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// Decodes modified UTF-7; `None` when the input is not valid modified UTF-7.
pub fn decode_mutf7(encoded: &str) -> Option<String> {
    let mut out = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after.find('-')?;
        if end == 0 {
            out.push('&');
        } else {
            let bytes = MUTF7.decode(&after[..end]).ok()?;
            if bytes.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            out.push_str(&String::from_utf16(&units).ok()?);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// Sibling names as a destination that does not count case compares them (NTFS, APFS, and
/// IMAP servers that store folders on such file systems or fold names; RFC 3501 §5.1 leaves
/// name comparison to the server). A name is claimed under each of its forms, lower-cased:
/// the display form (so `Projects` and `projects` fold) and, where the destination stores it
/// so, the modified UTF-7 form (its base64 is case-significant: `&AMQ-` is Ä, `&AmQ-` is ɤ,
/// and they fold together on such a server). The local folder and the IMAP plan both settle
/// collisions here: a name whose forms are all free is the sibling's own, any other gets the
/// folder id's suffix.
#[derive(Debug, Default)]
pub struct CaseFoldedNames {
    taken: std::collections::HashSet<String>,
}

impl CaseFoldedNames {
    /// Claims a name by its `forms`: true when none was taken, false (nothing claimed) when
    /// another name folds together with it.
    pub fn claim(&mut self, forms: &[&str]) -> bool {
        let folded: Vec<String> = forms.iter().map(|f| f.to_lowercase()).collect();
        if folded.iter().any(|f| self.taken.contains(f)) {
            return false;
        }
        self.taken.extend(folded);
        true
    }

    /// Marks `forms` taken whatever was there (a name the destination already holds, or a
    /// suffixed one), so later names fold against it.
    pub fn hold(&mut self, forms: &[&str]) {
        self.taken.extend(forms.iter().map(|f| f.to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutf7_matches_rfc3501_examples() {
        // RFC 3501 §5.1.3: "~peter/mail/台北/日本語"
        assert_eq!(
            encode_mutf7("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(encode_mutf7("R&D"), "R&-D");
        assert_eq!(encode_mutf7("Rechnungen äöü"), "Rechnungen &AOQA9gD8-");
    }

    #[test]
    fn mutf7_round_trips_including_astral_characters() {
        for name in [
            "Inbox",
            "R&D",
            "日本語",
            "Ideas 💡 2024",
            "&&",
            "Ünïcødé-&-x",
        ] {
            assert_eq!(decode_mutf7(&encode_mutf7(name)).as_deref(), Some(name));
        }
        assert_eq!(decode_mutf7("&U,BTFw"), None);
    }

    #[test]
    fn escaping_is_reversible_and_never_merges_names() {
        let names = ["v1.2", "v1%2E2", "a/b", "100%", "tab\there", "plain"];
        let escaped: Vec<String> = names.iter().map(|n| escape(n, &['.'])).collect();
        assert_eq!(escaped[0], "v1%2E2");
        assert_eq!(escaped[1], "v1%252E2");
        assert_eq!(escaped[4], "tab%09here");
        for (n, e) in names.iter().zip(&escaped) {
            assert!(!e.contains('.'));
            assert_eq!(&unescape(e), n);
        }
        let unique: std::collections::HashSet<_> = escaped.iter().collect();
        assert_eq!(unique.len(), names.len());
    }
}
