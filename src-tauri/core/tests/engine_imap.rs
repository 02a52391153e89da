//! The whole engine into a real Dovecot: simulator -> IMAP, with a master login.

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use migrator_core::config::{Cloud, SourceConfig};
use migrator_core::dest::imap::{ImapMailbox, MasterStyle};
use migrator_core::engine::{run, Destination, ImapLogins, RunControl, RunOptions};
use migrator_core::progress::{NullReporter, RunSummary};
use migrator_core::secrets::Secret;
use migrator_sim::SimServer;
use support::dovecot::{Dovecot, MASTER_PASSWORD, MASTER_USER};

struct Setup {
    sim: SimServer,
    dovecot: Dovecot,
    state: tempfile::TempDir,
}

async fn setup(users: usize, messages: usize) -> Setup {
    let (sim, dovecot) = support::tenant_with_dovecot(users, messages).await;
    Setup {
        sim,
        dovecot,
        state: tempfile::tempdir().unwrap(),
    }
}

impl Setup {
    async fn run(&self) -> RunSummary {
        let source = SourceConfig {
            tenant_id: self.sim.tenant_id().into(),
            client_id: self.sim.client_id().into(),
            cloud: Cloud::Global,
            login_url: Some(self.sim.url()),
            graph_url: Some(self.sim.url()),
        };
        let destination = Destination::Imap {
            settings: self.dovecot.tls_settings(),
            logins: ImapLogins::Master {
                master_user: MASTER_USER.into(),
                password: Secret::new(MASTER_PASSWORD),
                style: MasterStyle::SaslAuthzid,
            },
        };
        let options = RunOptions {
            state_dir: Some(self.state.path().join("state")),
            ..RunOptions::default()
        };
        run(
            &source,
            &Secret::new(self.sim.client_secret()),
            &destination,
            Arc::new(NullReporter),
            RunControl::new(),
            options,
        )
        .await
        .unwrap_or_else(|e| panic!("run failed: {e:?}\n{}", self.dovecot.log()))
    }

    /// Every message on the server for `address`: body -> (flags, internal date), counted.
    async fn server_messages(&self, address: &str) -> HashMap<Vec<u8>, Vec<(Vec<String>, i64)>> {
        let login = Dovecot::master(address, MasterStyle::SaslAuthzid);
        let mut mailbox = ImapMailbox::connect(&self.dovecot.tls_settings(), &login)
            .await
            .unwrap();
        let mut out: HashMap<Vec<u8>, Vec<(Vec<String>, i64)>> = HashMap::new();
        for folder in mailbox.list_folders().await.unwrap() {
            if folder
                .attributes
                .iter()
                .any(|a| a.eq_ignore_ascii_case("\\Noselect"))
            {
                continue;
            }
            for uid in mailbox.uids(&folder.wire).await.unwrap() {
                let m = mailbox.fetch(&folder.wire, uid).await.unwrap().unwrap();
                let date = m.internal_date.map(|d| d.unix_timestamp()).unwrap_or(0);
                out.entry(m.body).or_default().push((m.flags, date));
            }
        }
        out
    }

    fn total(&self) -> u64 {
        self.sim
            .tenant()
            .users
            .iter()
            .flat_map(|u| &u.folders)
            .map(|f| f.messages.len() as u64)
            .sum()
    }
}

#[tokio::test]
async fn every_message_arrives_once_byte_identical_with_flags_and_date_even_without_the_journal() {
    let s = setup(2, 40).await;
    let first = s.run().await;
    assert_eq!(first.totals.failed, 0);
    assert_eq!(first.totals.messages, s.total());

    for user in &s.sim.tenant().users {
        let on_server = s.server_messages(&user.mail).await;
        let source: Vec<_> = user.folders.iter().flat_map(|f| &f.messages).collect();
        assert_eq!(
            on_server.values().map(Vec::len).sum::<usize>(),
            source.len(),
            "message count for {}",
            user.mail
        );
        for m in source {
            let copies = on_server
                .get(m.mime.as_ref())
                .unwrap_or_else(|| panic!("message {} missing or altered", m.id));
            assert_eq!(copies.len(), 1, "message {} exactly once", m.id);
            let (flags, date) = &copies[0];
            let has = |f: &str| flags.iter().any(|x| x.eq_ignore_ascii_case(f));
            assert_eq!(has("\\Seen"), m.is_read, "\\Seen of {}", m.id);
            assert_eq!(
                has("\\Flagged"),
                m.flag_status == "flagged",
                "\\Flagged of {}",
                m.id
            );
            assert_eq!(has("\\Draft"), m.is_draft, "\\Draft of {}", m.id);
            assert_eq!(
                *date,
                m.received.unix_timestamp(),
                "INTERNALDATE of {}",
                m.id
            );
        }
    }

    let rerun = s.run().await;
    assert_eq!(rerun.totals.messages, 0, "a rerun appends nothing");
    assert_eq!(
        rerun.totals.skipped, 0,
        "a rerun reads only changes (delta), and nothing changed"
    );

    // Losing the journal must not duplicate: the server is asked before every append.
    std::fs::remove_dir_all(s.state.path().join("state")).unwrap();
    let without_journal = s.run().await;
    assert_eq!(without_journal.totals.messages, 0);
    assert_eq!(without_journal.totals.skipped, s.total());
    let user = &s.sim.tenant().users[0];
    let count: usize = s
        .server_messages(&user.mail)
        .await
        .values()
        .map(Vec::len)
        .sum();
    let source: usize = user.folders.iter().map(|f| f.messages.len()).sum();
    assert_eq!(count, source, "still exactly one copy of each message");
}
