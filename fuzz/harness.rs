// What each fuzz target does with its input, shared by the cargo-fuzz targets
// (fuzz/fuzz_targets/*.rs) and by the stable test that replays fuzz/corpus/<target>/
// (src-tauri/core/tests/fuzz_corpus.rs), which both `include!` this file.
// Contract of every function: any input returns normally; a panic is a bug.

/// What a fuzz target does with one input.
pub type Target = fn(&[u8]);

/// The fuzz targets, by the name of their corpus directory.
pub const TARGETS: [(&str, Target); 8] = [
    ("event", event),
    ("contact", contact),
    ("task", task),
    ("folder_name", folder_name),
    ("imap_response", imap_response),
    ("config", config),
    ("imap_fetch_index", imap_fetch_index),
    ("icewarp_reply", icewarp_reply),
];

/// Arbitrary JSON as a Graph event (and as a series with itself as exception), converted.
pub fn event(data: &[u8]) {
    if let Ok(event) = serde_json::from_slice::<migrator_core::graph::types::Event>(data) {
        let _ = migrator_core::convert::event::single_to_ics(&event, &[]);
        let _ = migrator_core::convert::event::series_to_ics(
            &event,
            std::slice::from_ref(&event),
            &[],
        );
    }
}

/// Arbitrary JSON as a Graph contact, converted to vCard 3 and 4, with the input as photo.
pub fn contact(data: &[u8]) {
    use migrator_core::convert::contact::{to_vcard, VCardVersion};
    if let Ok(contact) = serde_json::from_slice::<migrator_core::graph::types::Contact>(data) {
        let _ = to_vcard(&contact, None, VCardVersion::V3_0);
        let _ = to_vcard(&contact, Some(("image/jpeg", data)), VCardVersion::V4_0);
    }
}

/// Arbitrary JSON as a To Do task, converted.
pub fn task(data: &[u8]) {
    if let Ok(task) = serde_json::from_slice::<migrator_core::graph::types::TodoTask>(data) {
        let _ = migrator_core::convert::task::to_vtodo(&task);
    }
}

/// Folder-name mapping: escape/unescape round trip, modified UTF-7 round trip.
pub fn folder_name(data: &[u8]) {
    use migrator_core::convert::folder_name::{decode_mutf7, encode_mutf7, escape, unescape};
    let text = String::from_utf8_lossy(data);
    for separators in [&['/'][..], &['.'][..], &['/', '.'][..]] {
        let escaped = escape(&text, separators);
        assert!(
            !escaped.contains(separators),
            "escape left a separator in {escaped:?}"
        );
        assert_eq!(unescape(&escaped), text, "escape does not round-trip");
    }
    let encoded = encode_mutf7(&text);
    assert_eq!(
        decode_mutf7(&encoded).as_deref(),
        Some(&*text),
        "modified UTF-7 does not round-trip"
    );
    let _ = decode_mutf7(&text);
}

/// Arbitrary bytes as one IMAP response.
pub fn imap_response(data: &[u8]) {
    let _ = migrator_core::dest::imap::types::parse_response(data);
}

/// Arbitrary text as a configuration file.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = migrator_core::config::FileConfig::parse(text, std::path::Path::new("fuzz.toml"));
    }
}

/// Arbitrary bytes as the untagged FETCH responses of a folder's fingerprint index (one per
/// line, literals inline), added to an index and looked up.
pub fn imap_fetch_index(data: &[u8]) {
    use migrator_core::dest::imap::index::FolderIndex;
    use migrator_core::dest::imap::types::{parse_response, Response, Untagged};
    use migrator_core::dest::imap::MessageFingerprint;
    let mut index = FolderIndex::new("INBOX", Some(1));
    for response in data.split(|&b| b == 0) {
        if let Ok(Response::Untagged(Untagged::Fetch(f))) = parse_response(response) {
            index.add(&f);
            if let Some(header) = f.header_fields.as_deref() {
                let fp = MessageFingerprint::of_message(header, time::OffsetDateTime::UNIX_EPOCH);
                for uid in index.unhashed(&fp) {
                    index.set_hash(uid, Some(fp.header_sha256));
                }
                let _ = index.matched(&fp);
            }
        }
    }
}

/// Arbitrary text as an IceWarp admin API reply (XML), and the readers of its parts.
pub fn icewarp_reply(data: &[u8]) {
    use migrator_core::dest::provision::types::{property_values, Reply};
    let text = String::from_utf8_lossy(data);
    if let Ok(Reply::Result { root, .. }) = Reply::parse(&text) {
        let _ = property_values(&root);
    }
}
