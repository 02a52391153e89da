//! To Do task lists and tasks of one mailbox (resources/todotasklist.md, todotask.md).

use std::time::Duration;

use super::client::{GraphClient, GraphError};
use super::mail::segment;
use super::pacer::Pacer;
use super::paging::{Page, Pages};
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
    let url = client.url(&format!("/users/{}/todo/lists", segment(user_id)));
    Pages::new(client, pacer, url).collect(on_throttle).await
}

/// Pages through a list's tasks, checklist items expanded.
pub fn tasks<'a>(
    client: &'a GraphClient,
    pacer: &'a Pacer,
    user_id: &str,
    list_id: &str,
) -> Pages<'a, TodoTask> {
    let url = client.url(&format!(
        "/users/{}/todo/lists/{}/tasks?$expand=checklistItems&$top=100",
        segment(user_id),
        segment(list_id)
    ));
    Pages::new(client, pacer, url)
}
