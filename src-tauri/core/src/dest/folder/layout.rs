//! Maildir++ folder names for a mailbox's folder tree.
//!
//! - Well-known folders map to the names mail servers use for their special folders:
//!   inbox -> INBOX (the Maildir root), sentitems -> Sent, drafts -> Drafts,
//!   deleteditems -> Trash, junkemail -> Junk, archive -> Archive. Their subfolders follow them.
//! - Other names are the display names as typed, with `/` (the hierarchy separator readers
//!   show) replaced by the configured substitute (`∕` by default), encoded in modified UTF-7
//!   with `.` as separator, as Dovecot and Courier store Maildir++ names. On disk, `%`, `.`
//!   and what a file system cannot hold are escaped as `%xx` (lower-case hex): the form of
//!   Dovecot's listescape plugin, so a Dovecot reading the tree with
//!   `listescape_char = "%%"` (and a `/` separator) shows every name as typed.
//! - A folder an earlier version created keeps its name (`%XX` in upper case, `/` as `%2F`;
//!   before that, only `.` and `/` escaped), so a rerun finds what it wrote.
//! - A folder whose name would land on a special folder's name (say a user folder called
//!   "Sent") gets a suffix from its id, ` ~1a2b3c`, so two source folders never merge; the
//!   suffix depends only on the folder, so every run picks the same name.
//! - A name longer than a file name may be (255 bytes: a long name, or a deep tree, whose
//!   Maildir++ name holds every ancestor) is cut to fit and given the same suffix (a repair:
//!   the folder keeps its mail under a shortened name; deeper levels are cut likewise).

use std::collections::HashSet;

use sha2::{Digest, Sha256};

#[cfg(test)]
use crate::convert::folder_name::unescape;
use crate::convert::folder_name::CaseFoldedNames;
use crate::convert::folder_name::{
    decode_mutf7, encode_mutf7, escape, escape_lower, substitute_separator,
    DEFAULT_SEPARATOR_SUBSTITUTE,
};
use crate::graph::mail::FolderNode;

fn special_name(well_known: &str) -> Option<&'static str> {
    Some(match well_known {
        "inbox" => "INBOX",
        "sentitems" => "Sent",
        "drafts" => "Drafts",
        "deleteditems" => "Trash",
        "junkemail" => "Junk",
        "archive" => "Archive",
        _ => return None,
    })
}

/// What the previous version escaped as `%XX` (see [`portable_component`]): the `.` separator,
/// `/`, and what Windows refuses in a file name (`\ : * ? " < > |`; the
/// Win32 naming rules, learn.microsoft.com/windows/win32/fileio/naming-a-file; macOS's Finder
/// shows `:` as `/`).
const NOT_PORTABLE: [char; 10] = ['.', '/', '\\', ':', '*', '?', '"', '<', '>', '|'];

/// What a folder name may not hold on disk, escaped as `%xx`: the `.` separator and what
/// Windows refuses in a file name (`/` never reaches it: it is replaced by the substitute).
const ON_DISK: [char; 9] = ['.', '\\', ':', '*', '?', '"', '<', '>', '|'];

/// One level's name: the display name with `/` replaced by `substitute`, escaped for every OS
/// in Dovecot's listescape form (trailing spaces too, which Windows drops; a trailing `.` is
/// escaped as the separator), then modified UTF-7.
fn component(name: &str, substitute: &str) -> String {
    let visible = substitute_separator(name, '/', substitute);
    encode_mutf7(&trailing_spaces_escaped(
        escape_lower(&visible, &ON_DISK),
        "%20",
    ))
}

fn trailing_spaces_escaped(mut escaped: String, space: &str) -> String {
    let kept = escaped.trim_end_matches(' ').len();
    let spaces = escaped.len() - kept;
    escaped.truncate(kept);
    escaped.push_str(&space.repeat(spaces));
    escaped
}

/// One level's name as the version before names were kept as typed wrote it (`%XX` in upper
/// case, `/` escaped too).
fn portable_component(name: &str) -> String {
    encode_mutf7(&trailing_spaces_escaped(escape(name, &NOT_PORTABLE), "%20"))
}

/// One level's name as written before names were made portable (only `.` and `/` escaped):
/// a folder that exists under it keeps it, so reruns find what earlier runs wrote.
fn legacy_component(name: &str) -> String {
    encode_mutf7(&escape(name, &['.', '/']))
}

/// The Maildir++ directory name of each node (same order): `""` for the inbox itself,
/// otherwise `.A.B`. `nodes` must list parents before children, as
/// [`crate::graph::mail::folder_tree`] does. For a new tree; see [`maildir_folder_names_in`].
pub fn maildir_folder_names(nodes: &[FolderNode]) -> Vec<String> {
    folder_names(nodes, DEFAULT_SEPARATOR_SUBSTITUTE, &HashSet::new())
}

/// [`maildir_folder_names`] for the user's Maildir at `root`, with `/` in names replaced by
/// `substitute`: a folder an earlier run created (under its name from an earlier version, or
/// differing from a sibling only by case) keeps its name, so a rerun finds what it wrote.
/// Names are compared as listed, case and all, so on a case-insensitive file system a sibling
/// is never taken for another.
pub fn maildir_folder_names_in(
    root: &std::path::Path,
    nodes: &[FolderNode],
    substitute: &str,
) -> Vec<String> {
    let listed: HashSet<String> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    folder_names(nodes, substitute, &listed)
}

/// The names, each portable and distinct from every other even where case does not count
/// (NTFS, APFS, and modified UTF-7's base64, whose case is significant: `&AMQ-` is Ä, `&AmQ-`
/// is ɤ): a name that differs from an earlier one only by case gets the folder id's suffix.
///
/// `listed`: the names in the user's Maildir. Each holds its name before any is given out, so
/// a sibling that appears later (first in the tree's order, or differing only by case) never
/// takes the name of a folder that is there, which a case-insensitive file system would merge.
fn folder_names(nodes: &[FolderNode], substitute: &str, listed: &HashSet<String>) -> Vec<String> {
    let exists = |name: &str| listed.contains(name);
    let reserved: HashSet<String> = ["INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"]
        .iter()
        .map(|s| format!(".{}", s.to_lowercase()))
        .collect();
    let mut by_id: std::collections::HashMap<&str, String> = std::collections::HashMap::new();
    let mut taken = CaseFoldedNames::default();
    for name in listed {
        taken.hold(&[name]);
    }
    // Exact names given out: a second folder never shares one, even where it exists on disk
    // (`a/b` and `a∕b` both become `a∕b`; the first folder's directory is not the second's).
    let mut given: HashSet<String> = HashSet::new();
    let mut names = Vec::with_capacity(nodes.len());
    for node in nodes {
        let parent = node
            .folder
            .parent_folder_id
            .as_deref()
            .and_then(|p| by_id.get(p))
            .cloned();
        let name = name_of(node, parent.clone(), &reserved, &|n| {
            component(n, substitute)
        });
        let earlier = [
            name_of(node, parent.clone(), &reserved, &portable_component),
            name_of(node, parent, &reserved, &legacy_component),
        ];
        let mut name = earlier
            .into_iter()
            .find(|e| *e != name && exists(e))
            .unwrap_or(name);
        if given.contains(&name) || (!taken.claim(&[&name]) && !exists(&name)) {
            name = fit(
                format!("{name} ~{}", id_suffix(&node.folder.id)),
                &node.folder.id,
            );
            taken.hold(&[&name]);
        }
        given.insert(name.clone());
        by_id.insert(node.folder.id.as_str(), name.clone());
        names.push(name);
    }
    names
}

fn id_suffix(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))[..6].to_string()
}

/// The name of `node` below `parent` (its final name), its own level made by `component`.
fn name_of(
    node: &FolderNode,
    parent: Option<String>,
    reserved: &HashSet<String>,
    component: &dyn Fn(&str) -> String,
) -> String {
    let name = match (node.well_known.and_then(special_name), parent) {
        (Some("INBOX"), None) => String::new(),
        (Some(special), None) => format!(".{special}"),
        (_, Some(parent)) => {
            // Children of the inbox live under `.INBOX.` in Maildir++.
            let parent = if parent.is_empty() {
                ".INBOX".to_string()
            } else {
                parent
            };
            format!("{parent}.{}", component(&node.folder.display_name))
        }
        (None, None) => {
            let plain = format!(".{}", component(&node.folder.display_name));
            if reserved.contains(&plain.to_lowercase()) {
                format!("{plain} ~{}", id_suffix(&node.folder.id))
            } else {
                plain
            }
        }
    };
    fit(name, &node.folder.id)
}

/// The longest file name Linux, macOS and Windows file systems accept, in bytes.
const MAX_NAME_BYTES: usize = 255;

/// `name` unchanged if it fits in [`MAX_NAME_BYTES`], else shortened ([`shorten_name`]).
fn fit(name: String, id: &str) -> String {
    if name.len() <= MAX_NAME_BYTES {
        return name;
    }
    shorten_name(&name, id, MAX_NAME_BYTES)
}

/// `name` cut to at most `max` bytes (never inside a modified UTF-7 run) and suffixed with
/// ` ~` and 6 hex digits of the folder id's hash, so the same folder always gets the same
/// name and two folders never share one. Also used for IMAP folders a server refuses as too
/// long (`dest::imap`).
pub(crate) fn shorten_name(name: &str, id: &str, max: usize) -> String {
    let suffix = format!(" ~{}", &hex::encode(Sha256::digest(id.as_bytes()))[..6]);
    let mut cut = max.saturating_sub(suffix.len()).min(name.len());
    // Modified UTF-7 is ASCII, but an escaped name may not be: stay on a char boundary.
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let head = &name[..cut];
    // An encoded run `&...-` cut before its `-` would not decode: close it after as much of
    // it as still decodes, or else cut before its `&`.
    let head = match head.rfind('&') {
        Some(at) if !head[at..].contains('-') => (at + 2..cut)
            .rev()
            .map(|end| format!("{}-", &head[..end]))
            .find(|closed| decode_mutf7(closed).is_some())
            .unwrap_or_else(|| head[..at].to_string()),
        _ => head.to_string(),
    };
    format!("{}{suffix}", head.trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::graph::mail::test_node as node;

    #[test]
    fn specials_children_unicode_separators_and_collisions() {
        let nodes = vec![
            node("i", Some("root"), "Posteingang", Some("inbox")),
            node("s", Some("root"), "Gesendete Elemente", Some("sentitems")),
            node("u", Some("root"), "Sent", None),
            node("r", Some("root"), "Rechnungen äöü", None),
            node("c", Some("i"), "v1.2", None),
            node("d", Some("c"), "a/b", None),
            node("t", Some("s"), "2024", None),
        ];
        let names = maildir_folder_names(&nodes);
        assert_eq!(names[0], "");
        assert_eq!(names[1], ".Sent");
        assert!(names[2].starts_with(".Sent ~") && names[2].len() == ".Sent ~".len() + 6);
        assert_eq!(names[3], ".Rechnungen &AOQA9gD8-");
        assert_eq!(names[4], ".INBOX.v1%2e2");
        assert_eq!(names[5], ".INBOX.v1%2e2.a&IhU-b");
        assert_eq!(names[6], ".Sent.2024");
        let unique: HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
    }

    /// Regression (issue 19.4): names were escaped for Linux only (`.` and `/`), so a folder
    /// called `a:b`, `x?` or `trail ` could not be created on Windows (and `:` shows as `/` on
    /// macOS), and siblings differing only by case (`Case`/`case`, or Ä/ɤ, whose modified
    /// UTF-7 differs only by case: `&AMQ-`/`&AmQ-`) landed in one directory on a
    /// case-insensitive file system.
    #[test]
    fn names_are_portable_and_distinct_where_case_does_not_count() {
        let hostile = [
            "a:b", "x?", "trail ", "dot.", "q\"w", "<p>", "s*|\\", "Case", "case", "\u{c4}",
            "\u{264}",
        ];
        let mut nodes = vec![node("i", Some("root"), "Inbox", Some("inbox"))];
        for (n, name) in hostile.iter().enumerate() {
            nodes.push(node(&format!("f{n}"), Some("root"), name, None));
            nodes.push(node(&format!("c{n}"), Some("i"), name, None));
        }
        let names = maildir_folder_names(&nodes);
        // A case-insensitive directory: one entry per lower-cased name.
        let case_insensitive: HashSet<String> = names.iter().map(|n| n.to_lowercase()).collect();
        assert_eq!(case_insensitive.len(), names.len(), "{names:?}");
        for name in &names[1..] {
            assert!(
                !name.contains(['\\', ':', '*', '?', '"', '<', '>', '|', '/']),
                "{name}"
            );
            assert!(!name.ends_with([' ', '.']), "{name:?}");
        }
        assert_eq!(names[1], ".a%3ab");
        assert_eq!(names[5], ".trail%20");
        assert_eq!(
            decode_mutf7(&names[5]).map(|n| unescape(&n)),
            Some(".trail ".into())
        );
        assert_eq!(names[15], ".Case");
        assert!(names[17].starts_with(".case ~"), "{}", names[17]);
    }

    #[test]
    fn a_folder_an_earlier_run_created_keeps_its_name() {
        let nodes = vec![
            node("a", Some("root"), "a:b", None),
            node("l", Some("root"), "Case", None),
            node("u", Some("root"), "case", None),
        ];
        let root = tempfile::tempdir().unwrap();
        for old in [".a:b", ".Case", ".case"] {
            std::fs::create_dir(root.path().join(old)).unwrap();
        }
        let sub = DEFAULT_SEPARATOR_SUBSTITUTE;
        assert_eq!(
            maildir_folder_names_in(root.path(), &nodes, sub),
            vec![".a:b", ".Case", ".case"]
        );
        let fresh = tempfile::tempdir().unwrap();
        let names = maildir_folder_names_in(fresh.path(), &nodes, sub);
        assert_eq!(names[0], ".a%3ab");
        assert!(names[2].starts_with(".case ~"));
    }

    /// Regression (issue 19.4): a sibling differing only by case that appears after an
    /// earlier run (first in the tree's order) took the plain name beside the existing folder:
    /// on a case-insensitive file system the two are one directory.
    #[test]
    fn regression_a_later_sibling_differing_by_case_never_takes_an_existing_folders_name() {
        let nodes = vec![
            node("n", Some("root"), "Projects", None),
            node("o", Some("root"), "projects", None),
        ];
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(".projects")).unwrap();
        let names = maildir_folder_names_in(root.path(), &nodes, DEFAULT_SEPARATOR_SUBSTITUTE);
        assert_eq!(names[1], ".projects");
        assert!(names[0].starts_with(".Projects ~"), "{names:?}");
    }

    /// Regression (issue 15.1): `/` was stored as `%2F` and escapes in upper case, which
    /// Dovecot's listescape (lower case, `/` its separator) cannot open: Maildir readers showed
    /// `Reports 2024/25` as a folder `25` under `Reports 2024`.
    #[test]
    fn names_are_as_typed_for_a_listescape_reader_and_earlier_names_are_kept() {
        let nodes = vec![
            node("r", Some("root"), "Reports 2024/25", None),
            node("p", Some("root"), "100% v1.2", None),
            node("o", Some("root"), "old/one", None),
        ];
        let fresh = tempfile::tempdir().unwrap();
        let names = maildir_folder_names_in(fresh.path(), &nodes, "_");
        assert_eq!(names[0], ".Reports 2024_25");
        assert_eq!(names[1], ".100%25 v1%2e2");
        let names = maildir_folder_names(&nodes);
        assert_eq!(names[0], ".Reports 2024&IhU-25");
        // A folder the previous version wrote keeps its name.
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(".old%2Fone")).unwrap();
        std::fs::create_dir(root.path().join(".100%25 v1%2E2")).unwrap();
        let kept = maildir_folder_names_in(root.path(), &nodes, DEFAULT_SEPARATOR_SUBSTITUTE);
        assert_eq!(kept[1], ".100%25 v1%2E2");
        assert_eq!(kept[2], ".old%2Fone");
    }

    #[test]
    fn names_equal_after_the_substitute_stay_apart_on_a_rerun() {
        let nodes = vec![
            node("a", Some("root"), "x/y", None),
            node("b", Some("root"), "x\u{2215}y", None),
        ];
        let root = tempfile::tempdir().unwrap();
        let sub = DEFAULT_SEPARATOR_SUBSTITUTE;
        let first = maildir_folder_names_in(root.path(), &nodes, sub);
        assert_eq!(first[0], ".x&IhU-y");
        assert!(first[1].starts_with(".x&IhU-y ~"), "{}", first[1]);
        for name in &first {
            std::fs::create_dir(root.path().join(name)).unwrap();
        }
        assert_eq!(maildir_folder_names_in(root.path(), &nodes, sub), first);
    }

    #[test]
    fn names_too_long_for_a_file_system_are_cut_with_a_suffix_from_the_id() {
        let long = "Ä".repeat(150);
        let mut nodes = vec![node("l", Some("root"), &long, None)];
        for level in 0..100 {
            let parent = if level == 0 {
                "root".to_string()
            } else {
                format!("d{}", level - 1)
            };
            nodes.push(node(
                &format!("d{level}"),
                Some(&parent),
                &format!("level {level}"),
                None,
            ));
        }
        let names = maildir_folder_names(&nodes);
        for name in &names {
            assert!(name.len() <= MAX_NAME_BYTES, "{} bytes: {name}", name.len());
            assert!(decode_mutf7(name).is_some(), "{name}");
        }
        assert!(names[0].starts_with(".&AMQAxA") && names[0].contains(" ~"));
        assert_eq!(names[1], ".level 0", "short names are unchanged");
        let unique: HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "every folder keeps its own name");
    }
}
