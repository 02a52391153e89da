//! Where each source folder goes on an IMAP server. Pure: the server's folder list in, a plan
//! out; [`super::ImapMailbox::ensure_folders`] carries it out.
//!
//! **Rules** (every run computes the same names from the same source tree and server):
//! - `inbox` is `INBOX`. The other well-known folders (`sentitems`, `drafts`, `deleteditems`,
//!   `junkemail`, `archive`) go to, in order of preference: the name configured in
//!   [`super::ImapSettings::special_folders`]; the server's folder with the matching
//!   SPECIAL-USE attribute (RFC 6154: `\Sent`, `\Drafts`, `\Trash`, `\Junk`, `\Archive`); an
//!   existing folder with the name the server's admin API gives it
//!   ([`super::ImapSettings::server_folders`]), then with a usual name (`Sent Items`,
//!   `Deleted Items`, `Spam`, ...); and
//!   otherwise a new folder with the default name (`Sent`, `Drafts`, `Trash`, `Junk`,
//!   `Archive`). They are never duplicated beside the server's own.
//! - Other folders keep their place in the tree, under the personal namespace prefix
//!   (RFC 2342) at the top. Each name component is the source display name as typed, with
//!   only the server's hierarchy separator replaced by the configured substitute
//!   ([`ServerFolders::substitute`], `∕` by default; see [`crate::convert::folder_name`]),
//!   encoded in modified UTF-7 (RFC 3501 §5.1.3) or sent as UTF-8 under UTF8=ACCEPT (RFC 6855).
//!   Control characters, which servers refuse, become their visible symbols (tab -> `␉`).
//!   If the server refuses that name (Dovecot's Maildir++ storage refuses `.` inside a
//!   `/`-separated name, and a leading `~`, unless its listescape plugin is on), it is tried
//!   once more with look-alikes for those: `.` -> `․` (U+2024), `/` -> the substitute, a
//!   leading `~` -> `～` (U+FF5E).
//! - A folder the journal records under the name an earlier version gave it (`%XX` escapes
//!   for `%`, the separator and control characters, see [`crate::convert::folder_name::escape`])
//!   keeps that name while it exists on the server and the source folder was not renamed or
//!   moved, so a rerun finds what earlier runs wrote and duplicates nothing; new folders get
//!   names as typed.
//! - Two source folders never merge: siblings whose destination names are equal ignoring case
//!   (every server is taken to compare names without case, as RFC 3501 §5.1 allows; `a/b` and
//!   `a∕b` under a `/` separator; also the modified UTF-7 wire names, whose base64 is
//!   case-significant: `&AMQ-` Ä and `&AmQ-` ɤ, see [`CaseFoldedNames`]), and top-level folders whose name equals `INBOX` or one of the
//!   server's special or mapped folders, get a suffix ` ~` + 6 hex digits of the SHA-256 of the
//!   folder id; so do top-level folders named like a folder the server keeps for itself
//!   ([`super::ImapSettings::reserved_folders`], e.g. IceWarp's GroupWare folders). The
//!   folder the journal holds under the plain name keeps it, else the lowest folder id of a
//!   group (so the choice depends neither on listing order nor on a sibling that appears
//!   later); a folder the journal holds under its suffixed name keeps that; a top-level folder
//!   that collides with a special one always takes the suffix.
//! - A name the server refuses as too long (Dovecot: `NO Mailbox name too long`, a limit of
//!   255 bytes per level) is tried once more with its last component cut to
//!   [`SHORT_COMPONENT_BYTES`] and suffixed ` ~` + 6 hex digits of the folder id's hash, the
//!   local folder's repair ([`crate::dest::folder`]). A repair, not a failure: the folder keeps
//!   its mail. A later run finds the shortened folder by its name. A deep tree the server
//!   refuses for its depth (Dovecot's Maildir++ storage from level 29: "Not found") is not
//!   cut: each refused level stays a reported folder failure.

use std::collections::{BTreeMap, HashMap, HashSet};

use sha2::{Digest, Sha256};

use super::types::ListEntry;
use crate::convert::folder_name::{
    control_pictures, decode_mutf7, encode_mutf7, escape, substitute_separator, CaseFoldedNames,
    DEFAULT_SEPARATOR_SUBSTITUTE,
};
use crate::graph::mail::FolderNode;

/// The SPECIAL-USE attribute and the usual names of a well-known source folder.
fn role(well_known: &str) -> Option<(&'static str, &'static [&'static str])> {
    Some(match well_known {
        "sentitems" => (
            "\\Sent",
            &["Sent", "Sent Items", "Sent Messages", "Sent Mail"],
        ),
        "drafts" => ("\\Drafts", &["Drafts"]),
        "deleteditems" => ("\\Trash", &["Trash", "Deleted Items", "Deleted Messages"]),
        "junkemail" => ("\\Junk", &["Junk", "Spam", "Junk E-mail", "Junk Email"]),
        "archive" => ("\\Archive", &["Archive", "Archives"]),
        _ => return None,
    })
}

/// RFC 6154 §2 attributes: a folder carrying one is the server's own, never a target for a
/// user folder of the same name.
const SPECIAL_USE: [&str; 7] = [
    "\\All",
    "\\Archive",
    "\\Drafts",
    "\\Flagged",
    "\\Junk",
    "\\Sent",
    "\\Trash",
];

/// The server's folders and how it names them.
#[derive(Debug, Clone)]
pub struct ServerFolders {
    /// The hierarchy separator (`/` when the server reports none).
    pub separator: char,
    /// The personal namespace prefix, e.g. `INBOX.` on Courier; usually empty.
    pub prefix: String,
    pub entries: Vec<ListEntry>,
    /// UTF8=ACCEPT is enabled (RFC 6855 §3): names are UTF-8 on the wire, not modified UTF-7.
    pub utf8: bool,
    /// [`super::ImapSettings::server_folders`]: used after SPECIAL-USE, before usual names.
    pub hints: BTreeMap<String, String>,
    /// [`super::ImapSettings::reserved_folders`]: top-level names no source folder takes.
    pub reserved: Vec<String>,
    /// What replaces the separator inside a name ([`super::ImapSettings::separator_substitute`]).
    pub substitute: String,
}

impl ServerFolders {
    pub fn new(entries: Vec<ListEntry>, namespace: Option<(String, Option<char>)>) -> Self {
        let separator = namespace
            .as_ref()
            .and_then(|(_, s)| *s)
            .or_else(|| entries.iter().find_map(|e| e.separator))
            .unwrap_or('/');
        let prefix = namespace.map(|(p, _)| p).unwrap_or_default();
        ServerFolders {
            separator,
            prefix,
            entries,
            utf8: false,
            hints: BTreeMap::new(),
            reserved: Vec::new(),
            substitute: DEFAULT_SEPARATOR_SUBSTITUTE.to_string(),
        }
    }

    /// The wire form of a folder name (already made from the display name): itself in UTF-8
    /// mode, else modified UTF-7.
    pub fn encode(&self, name: &str) -> String {
        if self.utf8 {
            name.to_string()
        } else {
            encode_mutf7(name)
        }
    }

    /// The destination name of a display name at one level, before encoding and suffix: the
    /// separator replaced by the substitute, control characters by their visible symbols
    /// ([`control_pictures`]). Collisions are settled on it.
    pub fn visible(&self, name: &str) -> String {
        control_pictures(&substitute_separator(
            name,
            self.separator,
            &self.substitute,
        ))
    }

    /// The wire name of an ordinary folder's component: the name as typed but for the
    /// separator; `strict` (the second try) also replaces what Maildir++ servers refuse.
    pub fn component(&self, name: &str, suffix: &str, strict: bool) -> String {
        let visible = if strict {
            self.strict(name)
        } else {
            self.visible(name)
        };
        self.encode(&format!("{visible}{suffix}"))
    }

    /// [`ServerFolders::visible`] with look-alikes for `.`, `/` and a leading `~`.
    fn strict(&self, name: &str) -> String {
        let visible = self
            .visible(name)
            .replace('.', "\u{2024}")
            .replace('/', &self.substitute);
        match visible.strip_prefix('~') {
            Some(rest) => format!("\u{ff5e}{rest}"),
            None => visible,
        }
    }

    /// What collisions are settled on: the strict form, lower-cased, so two folders share
    /// neither name whichever form the server takes (`v1.2` and `v1․2`; servers may be
    /// case-insensitive).
    pub fn collision_key(&self, name: &str) -> String {
        self.strict(name).to_lowercase()
    }

    /// The wire names earlier versions gave this component (`%XX` escapes; the plain and the
    /// strict form): a folder the journal records under one of them keeps it.
    pub fn legacy_components(&self, name: &str, suffix: &str) -> [String; 2] {
        let sep = self.separator;
        [
            self.encode(&format!("{}{suffix}", escape(name, &[sep]))),
            self.encode(&format!("{}{suffix}", escape(name, &[sep, '.', '/', '~']))),
        ]
    }

    /// One wire name component as a user reads it.
    pub fn decode_part(&self, part: &str) -> String {
        if self.utf8 {
            part.to_string()
        } else {
            decode_component(part)
        }
    }

    /// True when a folder with exactly this wire name exists (`INBOX` in any case, §5.1).
    pub fn contains(&self, wire: &str) -> bool {
        self.entries.iter().any(|e| {
            e.name == wire
                || (e.name.eq_ignore_ascii_case("INBOX") && wire.eq_ignore_ascii_case("INBOX"))
        })
    }

    /// The path of a wire name: split at the separator, each part decoded (as the server shows it).
    pub fn decode(&self, wire: &str) -> Vec<String> {
        let wire = wire.strip_prefix(self.prefix.as_str()).unwrap_or(wire);
        wire.split(self.separator)
            .map(|part| self.decode_part(part))
            .collect()
    }

    fn top_level_name(&self, entry: &ListEntry) -> Option<String> {
        let rest = entry.name.strip_prefix(self.prefix.as_str())?;
        (!rest.contains(self.separator)).then(|| self.decode_part(rest))
    }
}

/// One name component as a user reads it: modified UTF-7 decoded (as is when invalid).
pub fn decode_component(part: &str) -> String {
    decode_mutf7(part).unwrap_or_else(|| part.to_string())
}

/// Where one source folder goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// INBOX or one of the server's special folders; `exists` is false when it must be created.
    Special { wire: String, exists: bool },
    /// An ordinary folder: under the folder of node `parent` (by index), or at the top.
    Nested {
        parent: Option<usize>,
        /// The source display name.
        name: String,
        /// ` ~1a2b3c` when the name would collide, else empty.
        suffix: String,
    },
}

/// The longest last component a shortened folder name has, in wire bytes. Under the 255 bytes
/// Dovecot allows a level whatever the script: 160 bytes of modified UTF-7 hold 60 CJK
/// characters, 180 bytes of UTF-8.
pub const SHORT_COMPONENT_BYTES: usize = 160;

/// True when a CREATE refusal says the name is too long. Matched on the text, conservatively:
/// no RFC 5530 code means exactly this (`[LIMIT]` is any limit, such as a folder count).
pub fn refused_as_too_long(text: &str) -> bool {
    text.to_ascii_lowercase().contains("name too long")
}

/// `component` (a wire name component) shortened for a server that refused it as too long.
pub fn shortened(component: &str, id: &str) -> String {
    crate::dest::folder::shorten_name(component, id, SHORT_COMPONENT_BYTES)
}

fn id_suffix(id: &str) -> String {
    let digest = Sha256::digest(id.as_bytes());
    format!(" ~{}", &hex::encode(digest)[..6])
}

/// Plans the destination of every node (same order). `nodes` lists parents before children,
/// as [`crate::graph::mail::folder_tree`] does; `overrides` maps a well-known name
/// (`sentitems`, ...) to a folder name below the personal namespace.
pub fn plan(
    nodes: &[FolderNode],
    server: &ServerFolders,
    overrides: &BTreeMap<String, String>,
) -> Vec<Placement> {
    plan_recorded(nodes, server, overrides, &HashMap::new())
}

/// [`plan`] for a mailbox an earlier run wrote: `recorded` maps a folder id to the wire name
/// the journal holds for it. Among siblings that fold together (case, or modified UTF-7's
/// base64 case), the one the journal shows under the plain name keeps it, and one recorded
/// under its suffixed name keeps that, whatever sibling appears later with a lower id: a rerun
/// never gives an existing folder's name to a newcomer (which a case-insensitive server would
/// merge into it).
pub fn plan_recorded(
    nodes: &[FolderNode],
    server: &ServerFolders,
    overrides: &BTreeMap<String, String>,
    recorded: &HashMap<String, String>,
) -> Vec<Placement> {
    let index_of: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.folder.id.as_str(), i))
        .collect();
    let parent_of = |i: usize| -> Option<usize> {
        let p = nodes[i].folder.parent_folder_id.as_deref()?;
        index_of.get(p).copied().filter(|&p| p < i)
    };

    // With a namespace prefix of `INBOX.` the top level *is* INBOX's children.
    let inbox_is_top = server
        .prefix
        .strip_suffix(server.separator)
        .is_some_and(|p| p.eq_ignore_ascii_case("INBOX"));

    let mut placements: Vec<Option<Placement>> = vec![None; nodes.len()];
    // Lower-cased top-level names that belong to the server or to mapped special folders.
    let mut reserved: HashSet<String> = HashSet::from(["inbox".to_string()]);
    reserved.extend(server.reserved.iter().map(|name| name.to_lowercase()));
    for entry in &server.entries {
        if SPECIAL_USE.iter().any(|a| entry.has_attribute(a)) {
            if let Some(name) = server.top_level_name(entry) {
                reserved.insert(name.to_lowercase());
            }
        }
    }
    for (i, node) in nodes.iter().enumerate() {
        let Some(wk) = node.well_known else { continue };
        if parent_of(i).is_some() {
            continue;
        }
        let placement = special(wk, server, overrides);
        if let Some(Placement::Special { wire, .. }) = &placement {
            reserved.insert(server.decode(wire).join("/").to_lowercase());
        }
        placements[i] = placement;
    }

    // Group the ordinary folders by parent (the top level is one group), so collisions are
    // settled among siblings only.
    #[derive(PartialEq, Eq, Hash, Clone, Copy)]
    enum Group {
        Top,
        Under(usize),
    }
    let mut groups: Vec<(Group, Vec<usize>)> = Vec::new();
    let mut group_index: HashMap<Group, usize> = HashMap::new();
    for (i, placed) in placements.iter().enumerate() {
        if placed.is_some() {
            continue;
        }
        let group = match parent_of(i) {
            Some(p) if inbox_is_top && nodes[p].well_known == Some("inbox") => Group::Top,
            Some(p) => Group::Under(p),
            None => Group::Top,
        };
        let g = *group_index.entry(group).or_insert_with(|| {
            groups.push((group, Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push(i);
    }
    // What the journal says a folder's last name component was (`None`: nothing recorded).
    let recorded_component = |i: usize| {
        let wire = recorded.get(&nodes[i].folder.id)?;
        let wire = wire.strip_prefix(server.prefix.as_str()).unwrap_or(wire);
        wire.rsplit(server.separator).next()
    };
    let is_form_of = |i: usize, suffix: &str| {
        let name = &nodes[i].folder.display_name;
        recorded_component(i).is_some_and(|r| {
            r == server.component(name, suffix, false) || r == server.component(name, suffix, true)
        })
    };
    for (group, members) in &groups {
        let mut members = members.clone();
        // Plain holders first (by the journal), then by folder id, so the choice depends on
        // neither listing order nor a sibling that appears later.
        members.sort_by_key(|&i| (!is_form_of(i, ""), nodes[i].folder.id.clone()));
        let mut names = CaseFoldedNames::default();
        for i in members {
            let name = &nodes[i].folder.display_name;
            let key = server.collision_key(name);
            let visible = server.visible(name).to_lowercase();
            // The wire form as a case-insensitive server compares it (modified UTF-7's
            // base64 is case-significant; UTF-8 names fold with their display form).
            let wire = server.encode(&server.strict(name));
            let reserved_here =
                *group == Group::Top && (reserved.contains(&key) || reserved.contains(&visible));
            let suffix_recorded = is_form_of(i, &id_suffix(&nodes[i].folder.id));
            let plain = !reserved_here && !suffix_recorded && names.claim(&[&key, &wire]);
            let suffix = if plain {
                String::new()
            } else {
                id_suffix(&nodes[i].folder.id)
            };
            if !plain {
                names.hold(&[&format!("{key}{suffix}")]);
            }
            placements[i] = Some(Placement::Nested {
                parent: match group {
                    Group::Top => None,
                    Group::Under(p) => Some(*p),
                },
                name: name.clone(),
                suffix,
            });
        }
    }
    placements
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            p.unwrap_or_else(|| Placement::Nested {
                parent: None,
                name: nodes[i].folder.display_name.clone(),
                suffix: id_suffix(&nodes[i].folder.id),
            })
        })
        .collect()
}

/// Where a top-level well-known folder goes (see the module doc for the order).
fn special(
    well_known: &str,
    server: &ServerFolders,
    overrides: &BTreeMap<String, String>,
) -> Option<Placement> {
    if well_known == "inbox" {
        return Some(Placement::Special {
            wire: "INBOX".into(),
            exists: true,
        });
    }
    let (attribute, usual) = role(well_known)?;
    let named = |name: &str| -> Placement {
        let wire = format!("{}{}", server.prefix, server.encode(name));
        // An existing folder whose name matches ignoring case is the one meant.
        let existing = server
            .entries
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(&wire) && !e.has_attribute("\\Noselect"));
        match existing {
            Some(e) => Placement::Special {
                wire: e.name.clone(),
                exists: true,
            },
            None => Placement::Special {
                wire,
                exists: false,
            },
        }
    };
    if let Some(name) = overrides.get(well_known).filter(|n| !n.trim().is_empty()) {
        return Some(named(name));
    }
    let usable =
        |e: &&ListEntry| !e.has_attribute("\\Noselect") && !e.has_attribute("\\NonExistent");
    let mut by_attribute: Vec<&ListEntry> = server
        .entries
        .iter()
        .filter(|e| e.has_attribute(attribute))
        .filter(usable)
        .collect();
    // Prefer the personal namespace, then the shortest (least nested) name.
    by_attribute.sort_by_key(|e| (!e.name.starts_with(server.prefix.as_str()), e.name.len()));
    if let Some(e) = by_attribute.first() {
        return Some(Placement::Special {
            wire: e.name.clone(),
            exists: true,
        });
    }
    let hinted = server.hints.get(well_known).map(String::as_str);
    for name in hinted.into_iter().chain(usual.iter().copied()) {
        if let Placement::Special { wire, exists: true } = named(name) {
            return Some(Placement::Special { wire, exists: true });
        }
    }
    Some(named(usual[0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::graph::mail::test_node as node;

    fn entry(name: &str, attrs: &[&str]) -> ListEntry {
        ListEntry {
            attributes: attrs.iter().map(|a| a.to_string()).collect(),
            separator: Some('/'),
            name: name.into(),
        }
    }

    fn dovecot() -> ServerFolders {
        ServerFolders::new(
            vec![
                entry("INBOX", &[]),
                entry("Sent Messages", &["\\Sent"]),
                entry("Trash", &["\\Trash"]),
                entry("Spam", &[]),
                entry("Virtual/Flagged", &["\\Flagged"]),
                entry("Flagged", &["\\Flagged"]),
            ],
            None,
        )
    }

    fn wire_of(placements: &[Placement], server: &ServerFolders, i: usize) -> String {
        match &placements[i] {
            Placement::Special { wire, .. } => wire.clone(),
            Placement::Nested {
                parent,
                name,
                suffix,
            } => {
                let base = match parent {
                    Some(p) => format!("{}{}", wire_of(placements, server, *p), server.separator),
                    None => server.prefix.clone(),
                };
                format!("{base}{}", server.component(name, suffix, false))
            }
        }
    }

    #[test]
    fn a_server_named_folder_serves_where_no_special_use_answers() {
        let mut server = ServerFolders::new(
            vec![
                entry("INBOX", &[]),
                entry(&encode_mutf7("Odeslané"), &[]),
                entry("Sent", &[]),
            ],
            None,
        );
        server.hints.insert("sentitems".into(), "Odeslané".into());
        server.hints.insert("drafts".into(), "Koncepty".into());
        let nodes = vec![
            node("s", None, "Sent Items", Some("sentitems")),
            node("d", None, "Drafts", Some("drafts")),
        ];
        let p = plan(&nodes, &server, &BTreeMap::new());
        assert_eq!(wire_of(&p, &server, 0), encode_mutf7("Odeslané"));
        // A hinted folder that does not exist is not created: the usual names follow.
        assert_eq!(wire_of(&p, &server, 1), "Drafts");
    }

    #[test]
    fn well_known_folders_use_special_use_names_and_defaults() {
        let server = dovecot();
        let nodes = vec![
            node("i", None, "Posteingang", Some("inbox")),
            node("s", None, "Gesendete Elemente", Some("sentitems")),
            node("d", None, "Entwürfe", Some("drafts")),
            node("t", None, "Gelöschte Elemente", Some("deleteditems")),
            node("j", None, "Junk-E-Mail", Some("junkemail")),
            node("a", None, "Archiv", Some("archive")),
        ];
        let p = plan(&nodes, &server, &BTreeMap::new());
        let wires: Vec<_> = (0..nodes.len()).map(|i| wire_of(&p, &server, i)).collect();
        assert_eq!(
            wires,
            [
                "INBOX",
                "Sent Messages",
                "Drafts",
                "Trash",
                "Spam",
                "Archive"
            ]
        );
        assert!(matches!(&p[2], Placement::Special { exists: false, .. }));
        assert!(matches!(&p[4], Placement::Special { exists: true, .. }));

        let overrides = BTreeMap::from([("sentitems".to_string(), "Gesendet".to_string())]);
        let p = plan(&nodes, &server, &overrides);
        assert_eq!(
            p[1],
            Placement::Special {
                wire: "Gesendet".into(),
                exists: false
            }
        );
    }

    #[test]
    fn collisions_get_stable_suffixes_whatever_the_order() {
        let server = dovecot();
        let nodes = vec![
            node("i", None, "Inbox", Some("inbox")),
            node("s", None, "Sent Items", Some("sentitems")),
            node("x2", None, "Projects", None),
            node("x1", None, "projects", None),
            node("u", None, "Sent Messages", None),
            node("f", None, "Flagged", None),
            node("n", None, "INBOX", None),
            node("c1", Some("x2"), "Same", None),
            node("c2", Some("x1"), "Same", None),
            node("ic", Some("i"), "Projects", None),
        ];
        let p = plan(&nodes, &server, &BTreeMap::new());
        let wires: Vec<_> = (0..nodes.len()).map(|i| wire_of(&p, &server, i)).collect();
        assert_eq!(wires[1], "Sent Messages");
        assert_eq!(wires[2], format!("Projects{}", id_suffix("x2")));
        assert_eq!(wires[3], "projects");
        assert_eq!(wires[4], format!("Sent Messages{}", id_suffix("u")));
        assert_eq!(wires[5], format!("Flagged{}", id_suffix("f")));
        assert_eq!(wires[6], format!("INBOX{}", id_suffix("n")));
        assert_eq!(wires[7], format!("Projects{}/Same", id_suffix("x2")));
        assert_eq!(wires[8], "projects/Same");
        assert_eq!(wires[9], "INBOX/Projects");
        let unique: HashSet<_> = wires.iter().map(|w| w.to_lowercase()).collect();
        assert_eq!(unique.len(), wires.len());

        let mut reversed = nodes.clone();
        reversed.swap(2, 3);
        let q = plan(&reversed, &server, &BTreeMap::new());
        assert_eq!(wire_of(&q, &server, 2), "projects");
        assert_eq!(wire_of(&q, &server, 3), wires[2]);
    }

    /// Ä and ɤ are `&AMQ-` and `&AmQ-` in modified UTF-7: distinct names that a server
    /// comparing names without case folds together, merging the two folders.
    #[test]
    fn regression_siblings_whose_modified_utf7_names_differ_only_by_case_stay_apart() {
        let server = dovecot();
        for nodes in [
            vec![node("a", None, "Ä", None), node("b", None, "ɤ", None)],
            vec![node("b", None, "ɤ", None), node("a", None, "Ä", None)],
        ] {
            let p = plan(&nodes, &server, &BTreeMap::new());
            let wires: Vec<_> = (0..2).map(|i| wire_of(&p, &server, i)).collect();
            assert_ne!(
                wires[0].to_ascii_lowercase(),
                wires[1].to_ascii_lowercase(),
                "{wires:?}"
            );
            let a = nodes.iter().position(|n| n.folder.id == "a").unwrap_or(0);
            assert_eq!(
                wires[a],
                encode_mutf7("Ä"),
                "the lower id keeps the plain name"
            );
        }
    }

    /// A sibling differing only by case that appears after an earlier run (with a lower id)
    /// took the plain name from the folder the journal holds under it: on a case-insensitive
    /// server the newcomer was merged into the existing folder.
    #[test]
    fn regression_a_later_sibling_differing_by_case_never_takes_an_existing_folders_name() {
        let mut server = dovecot();
        server.entries.push(entry("projects", &[]));
        let nodes = vec![
            node("x9", None, "projects", None),
            node("x1", None, "Projects", None),
        ];
        let recorded: HashMap<String, String> = [("x9".to_string(), "projects".to_string())].into();
        let p = plan_recorded(&nodes, &server, &BTreeMap::new(), &recorded);
        assert_eq!(wire_of(&p, &server, 0), "projects");
        assert_eq!(
            wire_of(&p, &server, 1),
            format!("Projects{}", id_suffix("x1"))
        );
        // A folder the journal holds under its suffixed name keeps it when its sibling goes.
        let recorded: HashMap<String, String> =
            [("x1".to_string(), format!("Projects{}", id_suffix("x1")))].into();
        let p = plan_recorded(&nodes[1..], &server, &BTreeMap::new(), &recorded);
        assert_eq!(
            wire_of(&p, &server, 0),
            format!("Projects{}", id_suffix("x1"))
        );
    }

    #[test]
    fn inbox_prefix_namespace_shares_one_level() {
        let server = ServerFolders::new(
            vec![entry("INBOX", &[]), entry("INBOX.Sent", &["\\Sent"])],
            Some(("INBOX.".into(), Some('.'))),
        );
        let nodes = vec![
            node("i", None, "Inbox", Some("inbox")),
            node("a", Some("i"), "Reports", None),
            node("b", None, "Reports", None),
            node("c", None, "v1.2", None),
        ];
        let p = plan(&nodes, &server, &BTreeMap::new());
        let wires: Vec<_> = (0..nodes.len()).map(|i| wire_of(&p, &server, i)).collect();
        assert_eq!(wires[1], "INBOX.Reports");
        assert_eq!(wires[2], format!("INBOX.Reports{}", id_suffix("b")));
        assert_eq!(wires[3], encode_mutf7("INBOX.v1\u{2215}2"));
        assert_eq!(server.decode(&wires[3]), ["v1\u{2215}2"]);
    }

    #[test]
    fn a_name_refused_as_too_long_is_cut_with_the_ids_suffix() {
        assert!(refused_as_too_long("[CANNOT] Mailbox name too long"));
        assert!(!refused_as_too_long("[LIMIT] Too many mailboxes"));
        assert!(!refused_as_too_long("[CANNOT] Invalid mailbox name"));
        let server = ServerFolders::new(Vec::new(), None);
        let long = server.component(&("Ä".repeat(150) + &"n".repeat(150)), "", true);
        let short = shortened(&long, "folder-1");
        assert!(short.len() <= SHORT_COMPONENT_BYTES, "{short}");
        assert_eq!(short, shortened(&long, "folder-1"), "stable");
        assert_ne!(
            short,
            shortened(&long, "folder-2"),
            "the id's hash tells folders apart"
        );
        assert!(short.ends_with(&id_suffix("folder-1")), "{short}");
        let decoded = decode_component(&short);
        assert!(decoded.starts_with("ÄÄÄ"), "{decoded}");
    }

    /// Regression (issue 15.1): `100% done` arrived as `100%25 done` and `Reports 2024/25` as
    /// `Reports 2024%2F25`; only the separator may change, to its visible substitute.
    #[test]
    fn folder_names_arrive_as_typed_but_for_the_separator() {
        let slash = ServerFolders::new(Vec::new(), Some((String::new(), Some('/'))));
        let dot = ServerFolders::new(Vec::new(), Some((String::new(), Some('.'))));
        for (server, name, visible) in [
            (&slash, "100% done", "100% done"),
            (&slash, "Reports 2024/25", "Reports 2024\u{2215}25"),
            (&slash, "v1.2 & *stars*", "v1.2 & *stars*"),
            (&dot, "v1.2/x", "v1\u{2215}2/x"),
            (&slash, "~home", "~home"),
            (&slash, "tab\there\u{7}", "tab\u{2409}here\u{2407}"),
        ] {
            let wire = server.component(name, "", false);
            assert_eq!(wire, encode_mutf7(visible));
            assert_eq!(server.decode(&wire), [visible], "{name}");
        }
        // The second try, for servers that refuse `.`, `/` and a leading `~`: look-alikes.
        let strict = slash.component("~v1.2", "", true);
        assert_eq!(slash.decode(&strict), ["\u{ff5e}v1\u{2024}2"]);
        let mut underscore = slash.clone();
        underscore.substitute = "_".into();
        assert_eq!(underscore.component("a/b", "", false), "a_b");
    }

    #[test]
    fn names_equal_after_the_substitute_stay_apart() {
        let server = dovecot();
        let nodes = vec![
            node("b", None, "a/b", None),
            node("a", None, "a\u{2215}b", None),
            node("c", None, "100%", None),
            node("d", None, "100%25", None),
            node("e", None, "v1.2", None),
            node("f", None, "v1\u{2024}2", None),
        ];
        let p = plan(&nodes, &server, &BTreeMap::new());
        let wires: Vec<_> = (0..nodes.len()).map(|i| wire_of(&p, &server, i)).collect();
        assert_eq!(wires[1], encode_mutf7("a\u{2215}b"));
        assert_eq!(
            wires[0],
            encode_mutf7(&format!("a\u{2215}b{}", id_suffix("b")))
        );
        assert_eq!(wires[2], "100%");
        assert_eq!(wires[3], "100%25");
        // Apart in the strict form too, for a server that refuses `.`.
        assert_eq!(wires[4], "v1.2");
        assert_eq!(
            wires[5],
            encode_mutf7(&format!("v1\u{2024}2{}", id_suffix("f")))
        );
    }

    #[test]
    fn with_utf8_accept_names_are_utf8_and_decode_back() {
        let mut server = ServerFolders::new(Vec::new(), Some((String::new(), Some('/'))));
        let name = "Grüße & Ärger/2024 日本";
        let mutf7 = server.component(name, "", false);
        assert!(mutf7.is_ascii() && mutf7.contains("&-"), "{mutf7}");
        assert_eq!(server.decode(&mutf7), ["Grüße & Ärger\u{2215}2024 日本"]);
        server.utf8 = true;
        let utf8 = server.component(name, "", false);
        assert_eq!(utf8, "Grüße & Ärger\u{2215}2024 日本");
        assert_eq!(server.decode(&utf8), [utf8.as_str()]);
        // `&` is an ordinary character in UTF-8 mode, not the start of a base64 run.
        assert_eq!(server.decode("a&AOQ-b"), ["a&AOQ-b"]);
    }
}
