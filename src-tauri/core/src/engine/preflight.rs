//! The check before a run: everything that would stop it, found without moving data.

use serde::Deserialize;

use super::{Destination, EngineError, RunOptions};
use crate::config::SourceConfig;
use crate::dest::folder::FolderStore;
use crate::dest::imap::ImapMailbox;
use crate::graph::client::{http_client, GraphClient};
use crate::graph::permissions::{self, PermissionStatus};
use crate::graph::Pacer;
use crate::journal::Journal;
use crate::secrets::Secret;

/// A user to probe with: the first one that has a mailbox.
#[derive(Debug, Clone, Deserialize)]
pub struct ProbeUser {
    pub id: String,
    #[serde(default)]
    pub mail: Option<String>,
}

/// Signs in and checks every permission (token roles and one probe call per workload against
/// the first user with a mailbox). A sign-in failure is the `Err`, with Entra's advice.
pub async fn test_source(
    source: &SourceConfig,
    secret: &Secret,
    options: &RunOptions,
) -> Result<(Vec<PermissionStatus>, Option<ProbeUser>), EngineError> {
    let client = GraphClient::new(source, secret, http_client().map_err(EngineError::Http)?)?;
    let token = client.sign_in().await?;
    #[derive(Deserialize)]
    struct Users {
        #[serde(default)]
        value: Vec<ProbeUser>,
    }
    let pacer = Pacer::new(options.pacer.clone());
    let first = client
        .get_json::<Users>(
            &pacer,
            &client.url("/users?$select=id,mail&$top=20"),
            |_| {},
        )
        .await
        .ok()
        .and_then(|u| u.value.into_iter().find(|p| p.mail.is_some()));
    let permissions =
        permissions::check(&client, &token, first.as_ref().map(|p| p.id.as_str())).await;
    Ok((permissions, first))
}

/// What the check found.
#[derive(Debug, Clone)]
pub struct Preflight {
    pub permissions: Vec<PermissionStatus>,
    /// Each thing that would stop a run, as advice. Empty when ready.
    pub problems: Vec<String>,
}

/// Signs in (a failure is the `Err`), checks permissions with probe calls against the first
/// user that has a mailbox, and checks that the destination is usable (a folder is writable;
/// an IMAP server accepts that user's login) and the state folder too. Creates folders if
/// missing, but writes no mail.
pub async fn preflight(
    source: &SourceConfig,
    secret: &Secret,
    destination: &Destination,
    options: &RunOptions,
) -> Result<Preflight, EngineError> {
    let (mut permissions, first) = test_source(source, secret, options).await?;
    // Group.Read.All is needed only when an IceWarp destination creates groups.
    if let Destination::IceWarp(d) = destination {
        if d.rules.groups != crate::config::GroupRule::Skip {
            for p in permissions
                .iter_mut()
                .filter(|p| p.name == "Group.Read.All")
            {
                p.required = true;
            }
        }
    }
    let mut problems = Vec::new();
    for p in permissions.iter().filter(|p| p.required && !p.granted()) {
        problems.push(format!(
            "the application permission {} is missing: add it under API permissions > Microsoft Graph > Application permissions and grant admin consent",
            p.name
        ));
    }
    match destination {
        Destination::Folder(path) => {
            if let Err(e) = FolderStore::open(path) {
                problems.push(format!(
                    "the destination folder {} is not writable: {e}",
                    path.display()
                ));
            }
        }
        Destination::Imap {
            settings, logins, ..
        } => {
            // One real login, for the first mailbox, proves the server, TLS and credentials.
            match first.as_ref().and_then(|p| p.mail.as_deref()) {
                None => problems.push("no user with a mailbox to test the IMAP login with".into()),
                Some(address) => match logins.login_for(address) {
                    None => problems.push(format!("no destination password for {address}")),
                    Some(login) => match ImapMailbox::connect(settings, &login).await {
                        Ok(mailbox) => mailbox.logout().await,
                        Err(e) => problems.push(format!(
                            "cannot log in to the IMAP server {}:{} as {address}: {e}",
                            settings.host, settings.port
                        )),
                    },
                },
            }
        }
        Destination::IceWarp(d) => {
            // Signs in to the admin API and reads the settings that slow or stop a run; the
            // accounts are only created by the run itself.
            match super::icewarp::connect(d).await {
                Ok(provisioner) => provisioner.client().logout().await,
                Err(e) => problems.push(format!("{e}: {}", error_chain(&e))),
            }
        }
    }
    if let Some(dir) = &options.state_dir {
        if let Err(e) = Journal::open(dir) {
            problems.push(e.to_string());
        }
    }
    Ok(Preflight {
        permissions,
        problems,
    })
}

/// The causes of an error, innermost last, for one line of output.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut causes = Vec::new();
    let mut source = e.source();
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    causes.join(": ")
}
