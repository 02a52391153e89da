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
    fn keywords_are_atoms() {
        assert_eq!(keyword("\\Seen").as_deref(), Some("Seen"));
        assert_eq!(keyword("a(b)c").as_deref(), Some("a_b_c"));
        assert_eq!(keyword("   "), None);
        assert_eq!(keyword("日本"), None);
    }
}
