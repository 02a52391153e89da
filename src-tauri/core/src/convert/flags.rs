//! Message state from Graph to IMAP flags and Maildir info, as DavMail maps it
//! (see shared reference graph.md, "Flags -> IMAP"): isRead -> \Seen, isDraft -> \Draft,
//! flagStatus=flagged -> \Flagged, categories -> keywords.

use crate::graph::types::MessageMeta;

/// The flags of one message, destination-neutral.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailFlags {
    pub seen: bool,
    pub flagged: bool,
    pub draft: bool,
    pub answered: bool,
    pub forwarded: bool,
    /// Categories as IMAP keywords (atoms; see [`keyword`]).
    pub keywords: Vec<String>,
}

impl MailFlags {
    pub fn from_graph(meta: &MessageMeta) -> Self {
        let mut keywords: Vec<String> = meta.categories.iter().filter_map(|c| keyword(c)).collect();
        keywords.sort();
        keywords.dedup();
        MailFlags {
            seen: meta.is_read,
            flagged: meta.is_flagged(),
            draft: meta.is_draft,
            answered: false,
            forwarded: false,
            keywords,
        }
    }

    /// The Maildir info suffix, flags in ASCII order as the Maildir spec requires:
    /// D (draft), F (flagged), P (passed = forwarded), R (replied), S (seen).
    pub fn maildir_info(&self) -> String {
        let mut info = String::from("2,");
        for (on, letter) in [
            (self.draft, 'D'),
            (self.flagged, 'F'),
            (self.forwarded, 'P'),
            (self.answered, 'R'),
            (self.seen, 'S'),
        ] {
            if on {
                info.push(letter);
            }
        }
        info
    }
}

/// Flags the source does not report after the first copy: Graph's delta does not return
/// PidTagLastVerbExecuted (shared reference graph.md, "Message delta"), so once set at the
/// destination they are never removed by an incremental pass.
const KEPT_FLAGS: [&str; 2] = ["\\Answered", "$Forwarded"];

/// The IMAP STORE needed to go from the flag list `old` to `new` (both space-separated, as
/// [`crate::dest::imap::append_flags`] makes them): `(to add, to remove)`, compared without
/// regard to case (RFC 3501 §2.3.2). `\Answered` and `$Forwarded` are never removed. With
/// `old` unknown (a copy made before flags were recorded) only flags are added, and the
/// system flags the source can report (\Seen, \Flagged, \Draft) are removed when unset.
pub fn flag_changes(old: Option<&str>, new: &str) -> (Vec<String>, Vec<String>) {
    let split = |s: &str| -> Vec<String> { s.split_whitespace().map(str::to_string).collect() };
    let has = |list: &[String], f: &str| list.iter().any(|x| x.eq_ignore_ascii_case(f));
    let new = split(new);
    let old = match old {
        Some(old) => split(old),
        None => {
            let remove = ["\\Seen", "\\Flagged", "\\Draft"]
                .iter()
                .filter(|f| !has(&new, f))
                .map(|f| f.to_string())
                .collect();
            return (new, remove);
        }
    };
    let add = new.iter().filter(|f| !has(&old, f)).cloned().collect();
    let remove = old
        .iter()
        .filter(|f| !has(&new, f) && !KEPT_FLAGS.iter().any(|k| k.eq_ignore_ascii_case(f)))
        .cloned()
        .collect();
    (add, remove)
}

/// The flag list now at the destination after applying [`flag_changes`] from `old` to `new`:
/// `new` plus the kept flags `old` had.
pub fn applied_flags(old: Option<&str>, new: &str) -> String {
    let mut out: Vec<&str> = new.split_whitespace().collect();
    for kept in old.unwrap_or("").split_whitespace() {
        let is_kept = KEPT_FLAGS.iter().any(|k| k.eq_ignore_ascii_case(kept));
        if is_kept && !out.iter().any(|f| f.eq_ignore_ascii_case(kept)) {
            out.push(kept);
        }
    }
    out.join(" ")
}

/// A Maildir info (`2,DFS`) for `flags` over an existing one: the letters the source reports
/// (D, F, S) follow `flags`; every other letter already there (R, P, or a mail client's T) is
/// kept, as are those `flags` sets. Letters in ASCII order, as the Maildir spec requires.
pub fn merge_maildir_info(existing: &str, flags: &MailFlags) -> String {
    let wanted = flags.maildir_info();
    let mut letters: Vec<char> = existing
        .strip_prefix("2,")
        .unwrap_or("")
        .chars()
        .filter(|c| !matches!(c, 'D' | 'F' | 'S'))
        .chain(wanted.strip_prefix("2,").unwrap_or("").chars())
        .collect();
    letters.sort_unstable();
    letters.dedup();
    let mut info = String::from("2,");
    info.extend(letters);
    info
}

/// A category as an IMAP keyword: an atom (RFC 3501 §9: no `(){ %*"\]`, controls or spaces),
/// with forbidden characters replaced by `_`. `None` for a category with nothing usable.
pub fn keyword(category: &str) -> Option<String> {
    // A leading `\` would make a system flag out of a category.
    let atom: String = category
        .trim()
        .trim_start_matches('\\')
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !"(){%*\"\\]".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    (!atom.is_empty() && atom.chars().any(|c| c != '_')).then_some(atom)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(json: &str) -> MessageMeta {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn graph_state_becomes_maildir_info() {
        let m = meta(
            r#"{"id":"1","isRead":true,"isDraft":true,"flag":{"flagStatus":"flagged"},"categories":["Red category","Red category","Projekt Ä"]}"#,
        );
        let f = MailFlags::from_graph(&m);
        assert_eq!(f.maildir_info(), "2,DFS");
        assert_eq!(f.keywords, vec!["Projekt__", "Red_category"]);
        let unread = MailFlags::from_graph(&meta(r#"{"id":"2","flag":{"flagStatus":"complete"}}"#));
        assert_eq!(unread.maildir_info(), "2,");
    }

    #[test]
    fn flag_changes_touch_only_what_changed_and_keep_answered() {
        let (add, remove) = flag_changes(
            Some("\\Seen \\Answered $Forwarded Red_category"),
            "\\Flagged Blue",
        );
        assert_eq!(add, ["\\Flagged", "Blue"]);
        assert_eq!(remove, ["\\Seen", "Red_category"]);
        assert_eq!(flag_changes(Some("\\seen"), "\\Seen"), (vec![], vec![]));
        let (add, remove) = flag_changes(None, "\\Seen");
        assert_eq!(add, ["\\Seen"]);
        assert_eq!(remove, ["\\Flagged", "\\Draft"]);
        assert_eq!(
            applied_flags(Some("\\Seen \\Answered kw"), "$Forwarded"),
            "$Forwarded \\Answered"
        );
    }

    #[test]
    fn maildir_info_keeps_letters_the_source_does_not_report() {
        let flags = MailFlags {
            flagged: true,
            ..Default::default()
        };
        assert_eq!(merge_maildir_info("2,RST", &flags), "2,FRT");
        assert_eq!(merge_maildir_info("", &flags), "2,F");
    }

    #[test]
    fn keywords_are_atoms() {
        assert_eq!(keyword("\\Seen").as_deref(), Some("Seen"));
        assert_eq!(keyword("a(b)c").as_deref(), Some("a_b_c"));
        assert_eq!(keyword("   "), None);
        assert_eq!(keyword("日本"), None);
    }
}
