//! Collection paging: follow `@odata.nextLink` as given, never build skip tokens
//! (Graph docs, api/user-list-messages.md). Items are decoded one by one, so one malformed item
//! is reported by itself instead of failing its page.
//!
//! [`DeltaRound`] is the one implementation of a delta round for every workload (mail
//! folders, contact folders, To Do lists, calendars): follow `@odata.nextLink` until the
//! page carrying `@odata.deltaLink`, and when a link's sync state expired (`410 Gone`, or a 4xx
//! naming `syncStateNotFound`, `resyncRequired` or `SyncStateInvalid`) start over with a full
//! round (concepts/delta-query-overview.md, "Synchronization reset", "Token duration").

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::client::{GraphClient, GraphError};
use super::pacer::Pacer;

#[derive(Deserialize)]
struct RawPage {
    #[serde(default)]
    value: Vec<serde_json::Value>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    delta_link: Option<String>,
}

/// One page of a collection.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Items that could not be decoded: (their `id` if readable, the reason).
    pub bad: Vec<(String, String)>,
    /// Set on the last page of a delta round.
    pub delta_link: Option<String>,
}

/// Walks a collection page by page; memory holds one page at a time.
pub struct Pages<'a, T> {
    client: &'a GraphClient,
    pacer: &'a Pacer,
    next: Option<String>,
    _item: std::marker::PhantomData<T>,
}

impl<'a, T: DeserializeOwned> Pages<'a, T> {
    pub fn new(client: &'a GraphClient, pacer: &'a Pacer, first_url: String) -> Self {
        Pages {
            client,
            pacer,
            next: Some(first_url),
            _item: std::marker::PhantomData,
        }
    }

    /// The next page, or `None` after the last one.
    pub async fn next_page(
        &mut self,
        on_throttle: impl FnMut(Duration),
    ) -> Option<Result<Page<T>, GraphError>> {
        let url = self.next.take()?;
        let raw: RawPage = match self.client.get_json(self.pacer, &url, on_throttle).await {
            Ok(raw) => raw,
            Err(e) => return Some(Err(e)),
        };
        self.next = raw.next_link;
        let mut page = Page {
            items: Vec::with_capacity(raw.value.len()),
            bad: Vec::new(),
            delta_link: raw.delta_link,
        };
        for value in raw.value {
            let id = value
                .get("id")
                .and_then(|v| v.as_str())
                .unwrap_or("(no id)")
                .to_string();
            match serde_json::from_value(value) {
                Ok(item) => page.items.push(item),
                Err(e) => page.bad.push((id, e.to_string())),
            }
        }
        Some(Ok(page))
    }

    /// Every remaining item (for small collections such as users or folders).
    pub async fn collect(
        mut self,
        mut on_throttle: impl FnMut(Duration),
    ) -> Result<Page<T>, GraphError> {
        let mut all = Page {
            items: Vec::new(),
            bad: Vec::new(),
            delta_link: None,
        };
        while let Some(page) = self.next_page(&mut on_throttle).await {
            let page = page?;
            all.items.extend(page.items);
            all.bad.extend(page.bad);
            all.delta_link = page.delta_link.or(all.delta_link);
        }
        Ok(all)
    }
}

/// One entry of a delta round over a collection of items (concepts/delta-query-overview.md):
/// an item added or changed (replays possible: upsert by id), or `@removed` (deleted, or moved
/// out of the collection; with immutable ids a moved item keeps its id elsewhere).
#[derive(Debug, Clone, PartialEq)]
pub enum Delta<T> {
    Upsert(T),
    Removed { id: String },
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Delta<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let value = serde_json::Value::deserialize(d)?;
        if let Some(id) = removed_id(&value) {
            return Ok(Delta::Removed {
                id: id.map_err(D::Error::custom)?,
            });
        }
        T::deserialize(value)
            .map(Delta::Upsert)
            .map_err(D::Error::custom)
    }
}

/// The id of a delta entry marked `@removed` (`None`: not removed; `Err`: removed without an
/// id).
pub fn removed_id(entry: &serde_json::Value) -> Option<Result<String, &'static str>> {
    entry.get("@removed")?;
    Some(
        entry
            .get("id")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or("@removed entry without an id"),
    )
}

/// True when a stored delta link points at the Graph endpoint this client uses (v1.0 or
/// beta). A link from another endpoint (the cloud or the Graph URL override changed since it
/// was stored) cannot be followed; the collection is read in full again.
pub fn is_own_link(client: &GraphClient, link: &str) -> bool {
    link.starts_with(&client.url("/")) || link.starts_with(&client.beta_url("/"))
}

/// Error codes Graph answers a delta or page link with when the sync state behind it expired
/// or is not valid: `syncStateNotFound` ("a 40X-series error with error codes such as
/// syncStateNotFound", learn.microsoft.com/graph/delta-query-overview "Token duration";
/// microsoft-graph-docs#2350 shows it with 410), `resyncRequired` (learn.microsoft.com/graph/
/// errors, code table: "the delta token is no longer valid, and the app must reset the sync
/// state") and `SyncStateInvalid` (a link issued under another id type; alcionai/corso#3176).
/// Codes compare without case: the docs spell them both ways.
pub const SYNC_RESET_CODES: [&str; 3] = ["syncStateNotFound", "resyncRequired", "SyncStateInvalid"];

/// True when Graph refused a delta link because its sync state expired or is not valid: any
/// `410 Gone` (concepts/delta-query-overview.md, "Synchronization reset"), or any other 4xx
/// carrying one of [`SYNC_RESET_CODES`] (400 `syncStateNotFound` and friends). The collection
/// must be read again in full.
pub fn is_sync_reset(e: &GraphError) -> bool {
    match e {
        GraphError::Status { status: 410, .. } => true,
        GraphError::Status { status, code, .. } if (400..500).contains(status) => SYNC_RESET_CODES
            .iter()
            .any(|c| c.eq_ignore_ascii_case(code)),
        _ => false,
    }
}

/// One delta round over a collection: from a stored deltaLink (only what changed since), or
/// from the collection's first delta URL (a full round: every item). Pages follow
/// `@odata.nextLink`; the last one carries the next round's link ([`DeltaRound::delta_link`]),
/// which the caller stores once the whole round was applied. A link Graph no longer knows
/// ([`is_sync_reset`]: the stored deltaLink, or a nextLink whose state expired while paging,
/// microsoft-graph-docs#2162) restarts the round from `full_url`, once.
pub struct DeltaRound<'a, T> {
    client: &'a GraphClient,
    pacer: &'a Pacer,
    pages: Pages<'a, T>,
    full_url: String,
    full: bool,
    restarted: bool,
    delta_link: Option<String>,
}

impl<'a, T: DeserializeOwned> DeltaRound<'a, T> {
    /// A round from `stored` (ignored unless [`is_own_link`]), else from `full_url`.
    pub fn new(
        client: &'a GraphClient,
        pacer: &'a Pacer,
        stored: Option<String>,
        full_url: String,
    ) -> Self {
        let stored = stored.filter(|l| is_own_link(client, l));
        let full = stored.is_none();
        let first = stored.unwrap_or_else(|| full_url.clone());
        DeltaRound {
            client,
            pacer,
            pages: Pages::new(client, pacer, first),
            full_url,
            full,
            restarted: false,
            delta_link: None,
        }
    }

    /// True when this round lists every item of the collection (no usable stored link, or it
    /// expired): items the caller knows that it does not list were deleted.
    pub fn is_full(&self) -> bool {
        self.full
    }

    /// True once a link was refused ([`is_sync_reset`]) and the round started over in full:
    /// the caller drops the stored link (so a round that fails later does not follow it again)
    /// and forgets what the abandoned pages listed.
    pub fn restarted(&self) -> bool {
        self.restarted
    }

    /// The next page, or `None` after the last one.
    pub async fn next_page(
        &mut self,
        mut on_throttle: impl FnMut(Duration),
    ) -> Option<Result<Page<T>, GraphError>> {
        loop {
            match self.pages.next_page(&mut on_throttle).await? {
                Err(e) if is_sync_reset(&e) && !self.restarted => {
                    tracing::info!(reason = %e, "delta sync state expired; full resync");
                    self.full = true;
                    self.restarted = true;
                    self.pages = Pages::new(self.client, self.pacer, self.full_url.clone());
                }
                Ok(page) => {
                    if let Some(link) = &page.delta_link {
                        self.delta_link = Some(link.clone());
                    }
                    return Some(Ok(page));
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// The link for the next round, once the last page was read.
    pub fn delta_link(&self) -> Option<&str> {
        self.delta_link.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_entries_upsert_or_remove() {
        #[derive(Deserialize, Debug, PartialEq)]
        struct Item {
            id: String,
        }
        let removed: Delta<Item> =
            serde_json::from_str(r#"{"id":"AAMk=","@removed":{"reason":"deleted"}}"#).unwrap();
        assert_eq!(removed, Delta::Removed { id: "AAMk=".into() });
        let added: Delta<Item> = serde_json::from_str(r#"{"id":"x","more":1}"#).unwrap();
        assert_eq!(added, Delta::Upsert(Item { id: "x".into() }));
        assert!(serde_json::from_str::<Delta<Item>>(r#"{"@removed":{}}"#).is_err());
    }
}
