//! Users and their mailboxes.

use std::time::Duration;

use super::client::{GraphClient, GraphError};
use super::pacer::Pacer;
use super::paging::{Page, Pages};
use super::types::{User, USER_SELECT};

/// Every user of the tenant (`GET /users`, Graph docs api/user-list.md), 999 per page.
pub async fn list_users(
    client: &GraphClient,
    pacer: &Pacer,
    on_throttle: impl FnMut(Duration),
) -> Result<Page<User>, GraphError> {
    let url = client.url(&format!("/users?$select={USER_SELECT}&$top=999"));
    Pages::new(client, pacer, url).collect(on_throttle).await
}
