//! Collection paging: follow `@odata.nextLink` as given, never build skip tokens
//! (Graph docs, api/user-list-messages.md). Items are decoded one by one, so one malformed item
//! is reported by itself instead of failing its page.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

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
