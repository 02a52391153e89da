//! The fingerprint index of one folder: what the duplicate check compares a message with,
//! built from one `UID FETCH` of every message's size, INTERNALDATE and Message-ID (paged),
//! so the check does not depend on the server's SEARCH (imapsync's notes doubt IceWarp's).
//!
//! Messages are grouped by size and Message-ID, so a lookup touches only the messages that
//! could be the one; their header hashes are fetched once each and kept, so a thousand
//! messages sharing one Message-ID and size cost a thousand header fetches in all, not a
//! thousand per lookup.

use std::collections::HashMap;

use super::connection::parse_internal_date;
use super::types::FetchData;
use super::{header_field, MessageFingerprint};

/// What the index compares: the size and the Message-ID (see [`message_id_key`]).
type Key = (u64, Option<String>);

#[derive(Debug, Clone)]
struct Entry {
    uid: u32,
    /// INTERNALDATE, seconds since the epoch.
    date: Option<i64>,
    /// SHA-256 of the header section, once fetched.
    header_sha256: Option<[u8; 32]>,
}

/// The fingerprints of the messages of one folder (wire name), up to [`FolderIndex::last_uid`].
#[derive(Debug, Clone)]
pub struct FolderIndex {
    pub wire: String,
    pub uid_validity: Option<u32>,
    /// The highest UID indexed: a refresh fetches `last_uid + 1:*` (UIDs only grow, RFC 3501
    /// §2.3.1.1).
    pub last_uid: u32,
    /// Something may have arrived since the last refresh (an APPEND or MOVE into the folder, a
    /// new session after a lost connection).
    pub dirty: bool,
    entries: HashMap<Key, Vec<Entry>>,
}

/// The form in which Message-IDs are compared: the field's value unfolded with every white
/// space removed (RFC 5322 §3.6.4: a msg-id has none inside, so folding is the only place it
/// can differ), its bytes as they are (8-bit bytes decoded the same lossy way on both sides,
/// the header hash over the raw bytes then decides). Never sent to the server.
pub fn message_id_key(id: &str) -> String {
    id.chars().filter(|c| !c.is_whitespace()).collect()
}

impl FolderIndex {
    pub fn new(wire: &str, uid_validity: Option<u32>) -> Self {
        FolderIndex {
            wire: wire.to_string(),
            uid_validity,
            last_uid: 0,
            dirty: false,
            entries: HashMap::new(),
        }
    }

    /// Messages indexed.
    pub fn len(&self) -> usize {
        self.entries.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds one message of an index fetch (UID, RFC822.SIZE, INTERNALDATE and
    /// `BODY[HEADER.FIELDS (MESSAGE-ID)]`); a response without UID or size is ignored, a UID
    /// already indexed is not added twice.
    pub fn add(&mut self, f: &FetchData) {
        let (Some(uid), Some(size)) = (f.uid, f.size) else {
            return;
        };
        if uid <= self.last_uid && self.contains(uid) {
            return;
        }
        self.last_uid = self.last_uid.max(uid);
        let id = f
            .header_fields
            .as_deref()
            .and_then(|h| header_field(h, "message-id"))
            .map(|id| message_id_key(&id));
        self.entries.entry((size, id)).or_default().push(Entry {
            uid,
            date: f
                .internal_date
                .as_deref()
                .and_then(parse_internal_date)
                .map(|d| d.unix_timestamp()),
            header_sha256: None,
        });
    }

    fn contains(&self, uid: u32) -> bool {
        self.entries.values().flatten().any(|e| e.uid == uid)
    }

    fn key(fp: &MessageFingerprint) -> Key {
        (fp.size, fp.message_id.as_deref().map(message_id_key))
    }

    /// The candidates for `fp`: same size and Message-ID, and, without a Message-ID, the same
    /// INTERNALDATE to the second; those whose header hash is known to differ are left out.
    fn candidates<'a>(&'a self, fp: &'a MessageFingerprint) -> impl Iterator<Item = &'a Entry> {
        let received = fp.received.unix_timestamp();
        self.entries
            .get(&Self::key(fp))
            .into_iter()
            .flatten()
            .filter(move |e| fp.message_id.is_some() || e.date == Some(received))
            .filter(move |e| e.header_sha256.is_none_or(|h| h == fp.header_sha256))
    }

    /// The UIDs of candidates whose header hash is not known yet, lowest first.
    pub fn unhashed(&self, fp: &MessageFingerprint) -> Vec<u32> {
        let mut uids: Vec<u32> = self
            .candidates(fp)
            .filter(|e| e.header_sha256.is_none())
            .map(|e| e.uid)
            .collect();
        uids.sort_unstable();
        uids
    }

    /// Records the header hash fetched for `uid`; `None`: the message is gone (moved or
    /// expunged since it was indexed) and is dropped from the index.
    pub fn set_hash(&mut self, uid: u32, hash: Option<[u8; 32]>) {
        for list in self.entries.values_mut() {
            if let Some(i) = list.iter().position(|e| e.uid == uid) {
                match hash {
                    Some(h) => list[i].header_sha256 = Some(h),
                    None => {
                        list.remove(i);
                    }
                }
                return;
            }
        }
    }

    /// The lowest UID whose size, Message-ID (or date) and header hash all match `fp`.
    pub fn matched(&self, fp: &MessageFingerprint) -> Option<u32> {
        self.candidates(fp)
            .filter(|e| e.header_sha256 == Some(fp.header_sha256))
            .map(|e| e.uid)
            .min()
    }

    /// Forgets `uid` (moved away or deleted by the migrator).
    pub fn remove(&mut self, uid: u32) {
        self.set_hash(uid, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn fetched(uid: u32, size: u64, id: &[u8]) -> FetchData {
        let mut header = b"Message-ID:".to_vec();
        header.extend_from_slice(id);
        header.extend_from_slice(b"\r\n\r\n");
        FetchData {
            uid: Some(uid),
            size: Some(size),
            internal_date: Some("01-Jan-2024 00:00:00 +0000".into()),
            header_fields: Some(header),
            ..FetchData::default()
        }
    }

    #[test]
    fn folded_and_8bit_message_ids_match_their_own_bytes_only() {
        let message = b"Message-ID:\r\n <caf\xe9@example.com>\r\nSubject: x\r\n\r\nbody";
        let fp = MessageFingerprint::of_message(message, datetime!(2024-01-01 0:00 UTC));
        let mut index = FolderIndex::new("INBOX", Some(1));
        index.add(&fetched(3, fp.size, b"\r\n <caf\xe9@example.com>"));
        index.add(&fetched(4, fp.size, b" <cafe@example.com>"));
        index.add(&fetched(5, fp.size + 1, b" <caf\xe9@example.com>"));
        assert_eq!(index.unhashed(&fp), vec![3]);
        index.set_hash(3, Some(fp.header_sha256));
        assert_eq!(index.matched(&fp), Some(3));
    }

    /// Regression for issue 19.5: every lookup among messages sharing a Message-ID and size
    /// fetched every one of their headers again; now each header is fetched once.
    #[test]
    fn a_thousand_messages_sharing_one_message_id_are_hashed_once_each() {
        let fp = MessageFingerprint::of_message(
            b"Message-ID: <same@x>\r\n\r\nbody",
            datetime!(2024-01-01 0:00 UTC),
        );
        let mut index = FolderIndex::new("INBOX", Some(1));
        for uid in 1..=1000 {
            index.add(&fetched(uid, fp.size, b" <same@x>"));
        }
        let mut fetches = 0;
        for _ in 0..1000 {
            for uid in index.unhashed(&fp) {
                fetches += 1;
                index.set_hash(uid, Some([uid as u8; 32]));
            }
            assert_eq!(index.matched(&fp), None);
        }
        assert_eq!(fetches, 1000);
        assert_eq!(index.len(), 1000);
    }
}
