//! Calendars, task lists and address books: listing, merging by display name, creating, and
//! the names (path segments) of new collections and resources.
//!
//! **Names.** A new collection's segment is an ASCII slug of its display name plus 8 hex
//! digits of a SHA-256 over kind and name (`calendar-1a2b3c4d`): deterministic, safe on any
//! server's file system (no `/`, `%`, dots, case or Unicode pitfalls), and distinct for
//! distinct names ("Work" and "work", a calendar and a task list both called "Tasks").
//! If the segment is taken anyway by something else, `-2`, `-3` follow. A resource is named
//! after its UID when the UID is a short run of `A-Z a-z 0-9 - _ . @`, and otherwise
//! `x-` + SHA-256(UID) in hex; [`DavAccount::put`] falls back to the hashed name when a
//! different resource occupies the first one (e.g. UIDs differing only in case on a
//! case-insensitive server).

use sha2::{Digest, Sha256};
use url::Url;

use super::connection::{method, Headers};
use super::{protocol, refusal, types, Collection, CollectionKind, DavAccount, DavError};

/// Longest slug kept from a display name.
const SLUG_MAX: usize = 40;
/// Longest UID used as a resource name as it is.
const UID_NAME_MAX: usize = 100;
/// Segments tried for a new collection: the derived one, then `-2` ... `-4`.
const SEGMENT_TRIES: usize = 4;

/// The path segment (without `/`) of a new collection of `kind` named `display_name`.
pub fn segment(kind: CollectionKind, display_name: &str) -> String {
    let mut slug = String::new();
    for c in display_name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.len() >= SLUG_MAX {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    let slug = if slug.is_empty() { "collection" } else { slug };
    let mut hash = Sha256::new();
    hash.update(format!("{kind:?}").as_bytes());
    hash.update([0]);
    hash.update(display_name.as_bytes());
    let digest = hex::encode(hash.finalize());
    format!("{slug}-{}", &digest[..8])
}

/// The two names a resource with `uid` may take: readable, then hashed (see the module doc).
pub fn item_names(uid: &str, extension: &str) -> [String; 2] {
    let hashed = format!(
        "x-{}{extension}",
        hex::encode(Sha256::digest(uid.as_bytes()))
    );
    let readable = !uid.is_empty()
        && uid.len() <= UID_NAME_MAX
        && !uid.starts_with('.')
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if readable {
        [format!("{uid}{extension}"), hashed]
    } else {
        [hashed.clone(), hashed]
    }
}

/// Whether two URLs name the same resource, ignoring percent-encoding differences
/// (`%40` vs `@`) and a trailing `/`.
pub fn same_path(a: &Url, b: &Url) -> bool {
    let norm = |u: &Url| {
        let path = percent_encoding::percent_decode_str(u.path()).collect::<Vec<u8>>();
        let mut path = String::from_utf8_lossy(&path).into_owned();
        while path.ends_with('/') {
            path.pop();
        }
        (
            u.host_str().map(str::to_ascii_lowercase),
            u.port_or_known_default(),
            path,
        )
    };
    norm(a) == norm(b)
}

/// The path of `url` with every segment decoded and encoded again the one way
/// [`super::discovery::encode_segment`] does.
pub fn canonical_path(url: &Url) -> String {
    url.path()
        .split('/')
        .map(|seg| {
            let raw = percent_encoding::percent_decode_str(seg).collect::<Vec<u8>>();
            match std::str::from_utf8(&raw) {
                Ok(text) => super::discovery::encode_segment(text),
                // Not UTF-8 once decoded: keep the server's spelling.
                Err(_) => seg.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The last segment of a collection URL, decoded.
fn last_segment(url: &Url) -> String {
    let seg = url
        .path_segments()
        .and_then(|mut s| s.rfind(|s| !s.is_empty()))
        .unwrap_or("");
    percent_encoding::percent_decode_str(seg)
        .decode_utf8_lossy()
        .into_owned()
}

impl CollectionKind {
    /// Whether a listed resource is a collection of this kind.
    fn holds(self, props: &types::Props) -> bool {
        let Some(rt) = &props.resource_type else {
            return false;
        };
        match self.component() {
            None => rt.addressbook,
            Some(component) => {
                rt.calendar
                    && props
                        .components
                        .as_ref()
                        .is_none_or(|c| c.iter().any(|c| c == component))
            }
        }
    }
}

impl DavAccount {
    /// The existing collections of `kind` in the home, by href.
    pub async fn collections(&self, kind: CollectionKind) -> Result<Vec<Collection>, DavError> {
        let home = self.home(kind)?;
        let mut found = self.propfind_collections(kind, &home, "1").await?;
        found.retain(|c| !same_path(&c.url, &home));
        found.sort_by(|a, b| a.url.as_str().cmp(b.url.as_str()));
        Ok(found)
    }

    /// The template collection of `kind` (e.g. IceWarp's `Calendar`), if templates are
    /// configured and it exists.
    pub async fn default_collection(
        &self,
        kind: CollectionKind,
    ) -> Result<Option<Collection>, DavError> {
        let Some((_, url)) = self.defaults.iter().find(|(k, _)| *k == kind) else {
            return Ok(None);
        };
        Ok(self
            .propfind_collections(kind, url, "0")
            .await?
            .into_iter()
            .next())
    }

    /// The collection of `kind` called `display_name`: an existing one (merge), else a new
    /// one with that name and `color` (e.g. `#FF0000FF`). See the module doc for its path.
    pub async fn ensure_collection(
        &self,
        kind: CollectionKind,
        display_name: &str,
        color: Option<&str>,
    ) -> Result<Collection, DavError> {
        let name = display_name.trim();
        if name.is_empty() {
            return Err(DavError::Collection {
                action: "create",
                name: format!("a {} without a name", kind.noun()),
                reason: "empty display name".into(),
            });
        }
        let existing = self.collections(kind).await?;
        let derived = segment(kind, name);
        if let Some(found) = existing.iter().find(|c| {
            c.display_name.as_deref() == Some(name)
                // Ours from an earlier run on a server that dropped the display name.
                || (c.display_name.is_none() && last_segment(&c.url) == derived)
        }) {
            return Ok(found.clone());
        }
        let home = self.home(kind)?;
        for attempt in 1..=SEGMENT_TRIES {
            let seg = if attempt == 1 {
                derived.clone()
            } else {
                format!("{derived}-{attempt}")
            };
            let url = home
                .join(&format!("{seg}/"))
                .map_err(|e| DavError::Config(format!("collection name {seg:?}: {e}")))?;
            if existing.iter().any(|c| same_path(&c.url, &url)) {
                continue;
            }
            let (verb, body) = match kind.component() {
                Some(component) => ("MKCALENDAR", types::mkcalendar(name, color, component)),
                None => ("MKCOL", types::mkcol_addressbook(name)),
            };
            let reply = self
                .http
                .send(
                    method(verb),
                    &url,
                    Headers::xml("0"),
                    Some(body.into_bytes()),
                )
                .await?;
            if reply.status.is_success() {
                return Ok(Collection {
                    kind,
                    url,
                    display_name: Some(name.to_string()),
                    color: color.map(str::to_string),
                    components: kind.component().map(|c| vec![c.to_string()]),
                    ctag: None,
                    sync_token: None,
                    created: true,
                });
            }
            // 405 (MKCOL) or 409 (MKCALENDAR, resource-must-be-null): something is there.
            if matches!(reply.status.as_u16(), 405 | 409) {
                let there = self.propfind_collections(kind, &url, "0").await?;
                if let Some(c) = there
                    .into_iter()
                    .find(|c| c.display_name.as_deref() == Some(name) || c.display_name.is_none())
                {
                    return Ok(c);
                }
                if self.exists(&url).await? {
                    continue;
                }
            }
            return Err(refusal(&reply, |reason| DavError::Collection {
                action: "create",
                name: format!("{} {name:?}", kind.noun()),
                reason,
            }));
        }
        Err(DavError::Collection {
            action: "create",
            name: format!("{} {name:?}", kind.noun()),
            reason: format!("the names {derived}, {derived}-2 ... are all taken"),
        })
    }

    pub(super) fn home(&self, kind: CollectionKind) -> Result<Url, DavError> {
        self.homes
            .of(kind)
            .cloned()
            .ok_or_else(|| DavError::Discovery {
                user: self.email.clone(),
                reason: format!(
                    "the server names no {} home (configure the collection URL templates)",
                    kind.noun()
                ),
            })
    }

    /// The collections of `kind` among `url` (depth 0) or its members (depth 1).
    async fn propfind_collections(
        &self,
        kind: CollectionKind,
        url: &Url,
        depth: &str,
    ) -> Result<Vec<Collection>, DavError> {
        let reply = self
            .http
            .send(
                method("PROPFIND"),
                url,
                Headers::xml(depth),
                Some(types::propfind_collections().into_bytes()),
            )
            .await?;
        match reply.status.as_u16() {
            207 => {}
            404 if depth == "0" => return Ok(Vec::new()),
            _ => {
                return Err(refusal(&reply, |reason| DavError::Collection {
                    action: "list the collections in",
                    name: url.path().to_string(),
                    reason,
                }))
            }
        }
        let responses = types::parse_multistatus(&reply.body).map_err(|e| protocol(&reply, e))?;
        Ok(responses
            .into_iter()
            .filter(|r| kind.holds(&r.props))
            .filter_map(|r| {
                let mut url = reply.url.join(&r.href).ok()?;
                if !url.path().ends_with('/') {
                    let path = format!("{}/", url.path());
                    url.set_path(&path);
                }
                Some(Collection {
                    kind,
                    url,
                    display_name: r.props.display_name,
                    color: r.props.color,
                    components: r.props.components,
                    ctag: r.props.ctag,
                    sync_token: r.props.sync_token,
                    created: false,
                })
            })
            .collect())
    }

    /// Whether anything answers at `url`.
    async fn exists(&self, url: &Url) -> Result<bool, DavError> {
        let reply = self
            .http
            .send(
                method("PROPFIND"),
                url,
                Headers::xml("0"),
                Some(types::propfind_etags().into_bytes()),
            )
            .await?;
        Ok(reply.status.as_u16() != 404)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_safe_deterministic_and_distinct() {
        let s = segment(CollectionKind::Events, "Calendar");
        assert!(
            s.starts_with("calendar-") && s.len() == "calendar-".len() + 8,
            "{s}"
        );
        assert_eq!(s, segment(CollectionKind::Events, "Calendar"));
        assert_ne!(s, segment(CollectionKind::Events, "calendar"));
        assert_ne!(
            segment(CollectionKind::Events, "Tasks"),
            segment(CollectionKind::Tasks, "Tasks")
        );
        for name in ["../..", "Ünïcödé / €", "a%2Fb", ".hidden", "   "] {
            let seg = segment(CollectionKind::Contacts, name);
            assert!(
                seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !seg.starts_with('-'),
                "{name:?} -> {seg}"
            );
        }
        assert!(segment(CollectionKind::Contacts, "Ünïcödé / €").starts_with("n-c-d-"));
        assert!(segment(CollectionKind::Contacts, "../..").starts_with("collection-"));
        let long = segment(CollectionKind::Events, &"x".repeat(500));
        assert!(long.len() <= SLUG_MAX + 9, "{long}");
    }

    #[test]
    fn item_names_keep_plain_uids_and_hash_the_rest() {
        let [a, b] = item_names("040000008200E00074C5B7101A82E008", ".ics");
        assert_eq!(a, "040000008200E00074C5B7101A82E008.ics");
        assert!(b.starts_with("x-") && b.ends_with(".ics") && b.len() == 2 + 64 + 4);
        let [a, b] = item_names("abc@google.com", ".vcf");
        assert_eq!(a, "abc@google.com.vcf");
        assert_ne!(a, b);
        for uid in ["a/b", "../x", ".x", "a b", "ü", &"y".repeat(101)] {
            let [a, b] = item_names(uid, ".ics");
            assert_eq!(a, b);
            assert!(a.starts_with("x-"), "{uid:?} -> {a}");
        }
        assert_ne!(item_names("a/b", ".ics")[0], item_names("a/c", ".ics")[0]);
    }

    #[test]
    fn paths_compare_decoded() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert!(same_path(
            &u("https://x/alice%40example.com/"),
            &u("https://x/alice@example.com")
        ));
        assert!(!same_path(&u("https://x/a/"), &u("https://x/b/")));
        assert!(!same_path(&u("https://x/a/"), &u("https://y/a/")));
        assert_eq!(last_segment(&u("https://x/h/cal%20x/")), "cal x");
        assert_eq!(
            canonical_path(&u("https://x/alice%40example.com/a%2fb/c@d%20e.ics")),
            canonical_path(&u("https://x/alice@example.com/a%2Fb/c%40d e.ics"))
        );
        assert_eq!(
            canonical_path(&u("https://x/alice%40example.com/cal/")),
            "/alice@example.com/cal/"
        );
    }
}
