//! To Do task lists and tasks of one mailbox (resources/todotasklist.md, todotask.md).

use std::time::Duration;

use super::client::{GraphClient, GraphError};
use super::mail::segment;
use super::pacer::Pacer;
use super::paging::{Delta, DeltaRound, Page, Pages};
use super::types::{TodoTask, TodoTaskList};

/// The `wellknownListName` of the list that mirrors flagged mail; it is not migrated as tasks
/// because the mail's `\Flagged` already carries it.
pub const FLAGGED_EMAILS: &str = "flaggedEmails";

/// Every task list of the user, the flagged-mail list included (callers skip it).
pub async fn task_lists(
    client: &GraphClient,
    pacer: &Pacer,
    user_id: &str,
    on_throttle: impl FnMut(Duration),
) -> Result<Page<TodoTaskList>, GraphError> {
    let url = client.url(&format!("/users/{}/todo/lists?$top=100", segment(user_id)));
    Pages::new(client, pacer, url).collect(on_throttle).await
}

/// One delta round over a list's tasks, checklist items and linked resources expanded (both
/// are relationships, absent unless expanded: resources/todotask.md; the links a task was
/// created from, such as the mail it came from, resources/linkedresource.md): from `stored`,
/// the deltaLink of the previous round, else a full round. Query parameters given on the
/// first request are kept by the links Graph hands out (api/todotask-delta.md, which lists
/// `$expand` as supported).
pub fn tasks_delta<'a>(
    client: &'a GraphClient,
    pacer: &'a Pacer,
    user_id: &str,
    list_id: &str,
    stored: Option<String>,
) -> DeltaRound<'a, Delta<TodoTask>> {
    let url = client.url(&format!(
        "/users/{}/todo/lists/{}/tasks/delta?$expand=checklistItems,linkedResources",
        segment(user_id),
        segment(list_id)
    ));
    DeltaRound::new(client, pacer, stored, url)
}
