//! The app's commands through Tauri's mock runtime, as the web view calls them.

use std::sync::{Arc, Mutex};

// The core's real-server helpers (a throwaway Dovecot with TLS from a private CA).
#[path = "../src-tauri/core/tests/support/mod.rs"]
mod support;

use m365_migrator_app::{
    builder, demo, migrate, AppState, ChannelReporter, Notifier, Opener, PathPicker,
};
use migrator_core::engine::RunControl;
use migrator_core::progress::ProgressEvent;
use migrator_core::secrets::{KeyringStore, SecretStore};
use migrator_core::spec::{MigrationSpec, PathPurpose};
use serde_json::{json, Value};
use tauri::ipc::{CallbackFn, Channel, InvokeBody};
use tauri::test::{
    get_ipc_response, mock_builder, mock_context, noop_assets, MockRuntime, INVOKE_KEY,
};
use tauri::webview::InvokeRequest;
use tauri::{App, WebviewWindow, WebviewWindowBuilder};

/// The app on the mock runtime with one window, its secrets in keyring-core's mock store.
struct TestApp {
    _app: App<MockRuntime>,
    webview: WebviewWindow<MockRuntime>,
    keychain: Arc<dyn SecretStore>,
    /// The app's data folder (journals of server destinations).
    data: tempfile::TempDir,
    /// What the native dialogs answer next, per purpose (the page never sends a path).
    answers: Arc<Mutex<Vec<(PathPurpose, std::path::PathBuf)>>>,
    /// Desktop notifications shown (title, body).
    notes: Arc<Mutex<Vec<(String, String)>>>,
}

impl TestApp {
    fn new() -> Self {
        let keychain: Arc<dyn SecretStore> = Arc::new(KeyringStore::new(
            keyring_core::mock::Store::new().expect("a mock store"),
        ));
        Self::with_state(AppState::new(Ok(keychain.clone())), keychain)
    }

    /// An app on a desktop without a keychain.
    fn without_keychain() -> Self {
        let unused: Arc<dyn SecretStore> = Arc::new(migrator_core::secrets::MemoryStore::default());
        Self::with_state(
            AppState::new(Err("no Secret Service on the session bus".into())),
            unused,
        )
    }

    fn with_state(state: AppState, keychain: Arc<dyn SecretStore>) -> Self {
        let data = tempfile::tempdir().expect("a data folder");
        let answers = Arc::new(Mutex::new(Vec::<(PathPurpose, std::path::PathBuf)>::new()));
        let dialog = answers.clone();
        let picker: PathPicker = Arc::new(move |purpose| {
            let mut answers = dialog.lock().unwrap();
            let at = answers.iter().position(|(p, _)| *p == purpose)?;
            Some(answers.remove(at).1)
        });
        let notes = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
        let shown = notes.clone();
        let notifier: Notifier = Arc::new(move |title: &str, body: &str| {
            shown.lock().unwrap().push((title.into(), body.into()));
        });
        let state = state
            .with_data_dir(data.path().to_path_buf())
            .with_picker(picker)
            .with_notifier(notifier);
        let app = builder(mock_builder(), state)
            .build(mock_context(noop_assets()))
            .expect("the app builds on the mock runtime");
        let webview = WebviewWindowBuilder::new(&app, "main", Default::default())
            .build()
            .expect("a mock window");
        TestApp {
            _app: app,
            webview,
            keychain,
            data,
            answers,
            notes,
        }
    }

    /// Starts a pass of the open project and waits for it to end; returns its record.
    async fn pass(&self, kind: &str) -> Value {
        let started = self.invoke_blocking("start_pass", json!({"kind": kind}));
        assert_eq!(started, Ok(Value::Null), "the pass starts");
        self.idle().await;
        let project = self.reopen();
        project["passes"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone()
    }

    /// Starts the demo and waits for it to end; returns the last run's summary.
    async fn demo(&self) -> Value {
        let started = self.invoke_blocking("run_demo", json!({}));
        assert_eq!(started, Ok(Value::Null), "the demo starts");
        self.idle().await;
        let status = self.invoke_blocking("run_status", json!({})).unwrap();
        status["last"]["summary"].clone()
    }

    /// Waits until no run goes on.
    async fn idle(&self) {
        tauri::Manager::state::<AppState>(&self.webview)
            .wait_idle()
            .await;
    }

    /// The desktop notifications shown once there are `count` of them (a pass's notification
    /// follows the moment it goes idle); what there is after 10 s otherwise.
    async fn notifications(&self, count: usize) -> Vec<(String, String)> {
        for _ in 0..500 {
            if self.notes.lock().unwrap().len() >= count {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.notes.lock().unwrap().clone()
    }

    /// The open project as the backend has it now.
    fn reopen(&self) -> Value {
        self.invoke_blocking("open_project", json!({"id": self.open_id()}))
            .expect("the open project")
    }

    fn open_id(&self) -> String {
        tauri::Manager::state::<AppState>(&self.webview)
            .project()
            .expect("an open project")
    }

    /// Answers the next native dialog for `purpose` with `path` (as if the user chose it).
    fn answer(&self, purpose: PathPurpose, path: impl Into<std::path::PathBuf>) {
        self.answers.lock().unwrap().push((purpose, path.into()));
    }

    /// Creates and opens a project with `source` and `destination`, its path fields chosen
    /// through `pick_path` (the way the page gets them); returns the saved project.
    fn project(&self, source: Value, destination: Value) -> Value {
        let mut project = self
            .invoke_blocking("create_project", json!({"name": "Test"}))
            .expect("a project");
        project["source"] = source;
        project["destination"] = destination.clone();
        self.invoke_blocking("save_project", json!({"project": project}))
            .unwrap_or_else(|e| panic!("saved: {e}"));
        for (field, purpose) in [
            ("path", PathPurpose::DestinationFolder),
            ("caFile", PathPurpose::CaFile),
            ("credentialsReport", PathPurpose::CredentialsReport),
            ("accountsCsv", PathPurpose::AccountsCsv),
        ] {
            if let Some(path) = destination[field].as_str() {
                self.answer(purpose, path);
                let picked = self
                    .invoke_blocking("pick_path", json!({"purpose": purpose}))
                    .unwrap_or_else(|e| panic!("picked {field}: {e}"));
                assert_eq!(picked, json!(path));
            }
        }
        self.invoke_blocking("open_project", json!({"id": project["id"]}))
            .expect("reopened")
    }

    fn invoke(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        invoke_on(&self.webview, cmd, args)
    }

    /// Hands a secret to the app as the UI does (`store_secret`), expecting it stored.
    fn store(&self, kind: &str, account: impl serde::Serialize, value: impl serde::Serialize) {
        let stored = self
            .invoke_blocking(
                "store_secret",
                json!({"kind": kind, "account": account, "value": value}),
            )
            .expect("the secret is stored");
        assert_eq!(stored, "stored");
    }

    /// `invoke` from inside a multi-threaded tokio test (async commands need the runtime).
    fn invoke_blocking(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        tokio::task::block_in_place(|| self.invoke(cmd, args))
    }
}

/// Calls `cmd` as the page in `webview` does (the window can be shared with other threads,
/// the app cannot).
fn invoke_on(webview: &WebviewWindow<MockRuntime>, cmd: &str, args: Value) -> Result<Value, Value> {
    get_ipc_response(
        webview,
        InvokeRequest {
            cmd: cmd.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            // On Linux the app's own origin; http://tauri.localhost would be refused as remote.
            url: "tauri://localhost".parse().expect("a valid URL"),
            body: InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        },
    )
    .map(|body| body.deserialize::<Value>().expect("JSON"))
}

fn invoke(cmd: &str, args: Value) -> Result<Value, Value> {
    TestApp::new().invoke(cmd, args)
}

/// A Channel as the UI would hold it, keeping every event it receives.
fn recording_channel<T: serde::de::DeserializeOwned + Send + 'static>(
) -> (Channel<ProgressEvent>, Arc<Mutex<Vec<T>>>) {
    let events = Arc::new(Mutex::new(Vec::<T>::new()));
    let sink = events.clone();
    let channel = Channel::new(move |body| {
        let event: T = body.deserialize().expect("an event");
        sink.lock().unwrap().push(event);
        Ok(())
    });
    (channel, events)
}

#[test]
fn app_info_reports_the_version() {
    let info = invoke("app_info", json!({})).unwrap();
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    #[cfg(target_os = "linux")]
    assert_eq!(info["os"], "linux");
}

#[test]
fn validate_source_names_each_bad_field() {
    let errors = invoke(
        "validate_source",
        json!({"source": {"tenantId": "contoso", "clientId": "my-app", "cloud": "global"}}),
    )
    .unwrap();
    let fields: Vec<&str> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["tenantId", "clientId"]);
    assert!(errors[0]["message"]
        .as_str()
        .unwrap()
        .contains("contoso.onmicrosoft.com"));

    let ok = invoke(
        "validate_source",
        json!({"source": {"tenantId": "contoso.onmicrosoft.com",
                          "clientId": "00000000-0000-0000-0000-000000000001", "cloud": "china"}}),
    )
    .unwrap();
    assert_eq!(ok, json!([]));

    // The core's parsed-URL check: a host that only starts like loopback is not loopback.
    let hostile = invoke(
        "validate_source",
        json!({"source": {"tenantId": "contoso.onmicrosoft.com",
                          "clientId": "00000000-0000-0000-0000-000000000001", "cloud": "global",
                          "loginUrl": "http://localhost.evil.example", "allowPlaintextLoopback": true}}),
    )
    .unwrap();
    assert_eq!(hostile[0]["field"], "loginUrl", "{hostile}");
}

#[test]
fn unknown_fields_and_idle_controls_are_refused_with_a_code() {
    // A secret must never be accepted (and so never echoed) by the source check.
    let err = invoke(
        "validate_source",
        json!({"source": {"tenantId": "contoso.com", "clientId": "x", "clientSecret": "s3cr3t"}}),
    )
    .unwrap_err();
    assert!(!err.to_string().contains("s3cr3t"), "{err}");

    let err = invoke("control_run", json!({"action": "pause"})).unwrap_err();
    assert_eq!(err["code"], "idle");
    // A reloaded page asks to watch the run: there is none.
    let watching = invoke("watch_run", json!({"onEvent": "__CHANNEL__:9"})).unwrap();
    assert_eq!(watching, false);
}

#[test]
fn a_reloaded_page_takes_over_the_progress_stream() {
    let (first, to_first) = recording_channel::<ProgressEvent>();
    let (second, to_second) = recording_channel::<ProgressEvent>();
    let reporter = ChannelReporter::new(first);
    let started = ProgressEvent::RunStarted { users: 2 };
    migrator_core::progress::Reporter::report(&reporter, started.clone());
    reporter.retarget(second);
    let listed = ProgressEvent::ItemsListed {
        user: "adele@contoso.com".into(),
        items: 3,
    };
    migrator_core::progress::Reporter::report(&reporter, listed.clone());
    assert_eq!(*to_first.lock().unwrap(), [started]);
    assert_eq!(*to_second.lock().unwrap(), [listed]);
}

#[test]
fn a_command_that_does_not_exist_is_refused() {
    let err = invoke("plugin:shell|execute", json!({"program": "sh"})).unwrap_err();
    assert!(err.to_string().contains("not allowed"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn test_connection_lists_permissions_or_gives_entra_advice() {
    let sim = migrator_sim::SimServer::start(migrator_sim::SimConfig::demo())
        .await
        .unwrap();
    let source = json!({"tenantId": sim.tenant_id(), "clientId": sim.client_id(), "cloud": "global",
                        "loginUrl": sim.url(), "graphUrl": sim.url(), "allowPlaintextLoopback": true});
    let app = TestApp::new();
    let account = sim_account(&sim);
    let missing = app
        .invoke_blocking("test_connection", json!({"source": source}))
        .unwrap_err();
    assert_eq!(missing["code"], "secret.missing", "{missing}");
    let stored = app
        .invoke_blocking(
            "store_secret",
            json!({"kind": "graphClientSecret", "account": account, "value": sim.client_secret()}),
        )
        .unwrap();
    assert_eq!(stored, "stored");
    let ok = app
        .invoke_blocking("test_connection", json!({"source": source}))
        .unwrap();
    let granted: Vec<&str> = ok
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["probeOk"] == json!(true))
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        granted.contains(&"Mail.Read") && granted.contains(&"User.Read.All"),
        "{ok}"
    );

    app.store("graphClientSecret", account, "wrong-value~1");
    let wrong = app
        .invoke_blocking("test_connection", json!({"source": source}))
        .unwrap_err();
    assert_eq!(wrong["code"], "auth.secret");
    assert!(
        wrong["message"].as_str().unwrap().contains("AADSTS7000215"),
        "{wrong}"
    );
    assert!(!wrong.to_string().contains("wrong-value~1"));
    sim.shutdown().await;
}

#[tokio::test]
async fn the_demo_streams_every_event_through_a_channel() {
    let (channel, events) = recording_channel::<ProgressEvent>();
    let out = tempfile::tempdir().unwrap();
    let summary = demo(
        out.path(),
        Arc::new(ChannelReporter::new(channel)),
        RunControl::new(),
    )
    .await
    .expect("the demo runs");
    let events = events.lock().unwrap().clone();
    assert!(matches!(
        events.first(),
        Some(ProgressEvent::RunStarted { users: 3 })
    ));
    assert!(matches!(
        events.last(),
        Some(ProgressEvent::RunFinished { .. })
    ));
    let done = events
        .iter()
        .filter(|e| matches!(e, ProgressEvent::ItemDone { skipped: false, .. }))
        .count() as u64;
    // Every message, event, contact and task reports one ItemDone.
    let t = &summary.totals;
    assert_eq!(done, t.messages + t.events + t.contacts + t.tasks);
    assert!(summary.totals.messages >= 200);
    assert_eq!(summary.totals.failed, 0);
    let finished = events
        .iter()
        .filter(|e| matches!(e, ProgressEvent::UserFinished { .. }))
        .count();
    assert_eq!(finished, 3);
    // The totals the UI's bar, rate and ETA divide by: messages counted ahead plus every
    // listed event, contact and task. The bar reaches exactly 100% with groupware counted.
    let announced: u64 = events
        .iter()
        .map(|e| match e {
            ProgressEvent::UserStarted { messages, .. } => *messages,
            ProgressEvent::ItemsListed { items, .. } => *items,
            _ => 0,
        })
        .sum();
    let groupware_listed: u64 = events
        .iter()
        .map(|e| match e {
            ProgressEvent::ItemsListed { items, .. } => *items,
            _ => 0,
        })
        .sum();
    assert!(t.events > 0 && t.contacts > 0 && t.tasks > 0, "{t:?}");
    assert_eq!(groupware_listed, t.events + t.contacts + t.tasks);
    assert_eq!(announced, done);
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_go_to_the_keychain_and_never_come_back() {
    let app = TestApp::new();
    let args = json!({"kind": "graphClientSecret", "account": "Contoso.com/ABC"});
    assert_eq!(
        app.invoke_blocking("secret_status", args.clone()).unwrap(),
        "missing"
    );
    let mut with_value = args.clone();
    with_value["value"] = json!("Qx8Q~s3cr3t.value");
    let stored = app.invoke_blocking("store_secret", with_value).unwrap();
    assert_eq!(stored, "stored");
    assert!(!stored.to_string().contains("s3cr3t"));
    // Under the documented entry name, normalised.
    let kept = app
        .keychain
        .get("graph-client-secret:contoso.com/abc")
        .unwrap()
        .expect("in the keychain");
    assert_eq!(kept.expose(), "Qx8Q~s3cr3t.value");
    let status = app.invoke_blocking("secret_status", args.clone()).unwrap();
    assert_eq!(status, "stored");
    // The admin password of a destination is a different entry.
    let admin = json!({"kind": "destAdminPassword", "account": "mail.example.com/admin"});
    assert_eq!(
        app.invoke_blocking("secret_status", admin).unwrap(),
        "missing"
    );

    assert_eq!(
        app.invoke_blocking("forget_secret", args.clone()).unwrap(),
        "missing"
    );
    assert!(app
        .keychain
        .get("graph-client-secret:contoso.com/abc")
        .unwrap()
        .is_none());

    let bad = app
        .invoke_blocking(
            "store_secret",
            json!({"kind": "graphClientSecret", "account": "no-slash", "value": "Qx8Q~s3cr3t"}),
        )
        .unwrap_err();
    assert_eq!(bad["code"], "invalid");
    assert!(!bad.to_string().contains("s3cr3t"));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_keychain_a_secret_can_be_kept_for_the_session() {
    let app = TestApp::without_keychain();
    let args = json!({"kind": "destAdminPassword", "account": "mail.example.com/admin"});
    assert_eq!(
        app.invoke_blocking("secret_status", args.clone()).unwrap(),
        "unavailable"
    );
    let mut with_value = args.clone();
    with_value["value"] = json!("pa55-w0rd");
    let refused = app
        .invoke_blocking("store_secret", with_value.clone())
        .unwrap_err();
    assert_eq!(refused["code"], "keychain.unavailable");
    assert!(refused["message"]
        .as_str()
        .unwrap()
        .contains("this session only"));
    assert!(!refused.to_string().contains("pa55-w0rd"));
    with_value["sessionOnly"] = json!(true);
    assert_eq!(
        app.invoke_blocking("store_secret", with_value).unwrap(),
        "session"
    );
    assert_eq!(
        app.invoke_blocking("secret_status", args.clone()).unwrap(),
        "session"
    );
    assert_eq!(
        app.invoke_blocking("forget_secret", args.clone()).unwrap(),
        "unavailable"
    );
}

fn fields(errors: &Value) -> Vec<&str> {
    errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect()
}

#[test]
fn an_api_url_or_dav_url_that_only_looks_like_loopback_is_refused() {
    let app = TestApp::new();
    let check = |destination: Value| {
        let errors = app
            .invoke(
                "validate_destination",
                json!({ "destination": destination }),
            )
            .unwrap();
        fields(&errors)
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let icewarp = |url: &str| {
        check(
            json!({"kind": "iceWarp", "host": "mail.example.com", "adminEmail": "admin@example.com",
                   "credentialsReport": "/root/new.csv", "apiUrl": url}),
        )
    };
    let imap = |url: &str| {
        check(
            json!({"kind": "imap", "host": "imap.example.com", "accountsCsv": "/srv/a.csv",
                   "davUrl": url}),
        )
    };
    for url in [
        "http://localhost.evil.example/icewarpapi/",
        "http://127.0.0.1@evil.example/icewarpapi/",
        "http://127.0.0.1.evil.example/icewarpapi/",
        "http://localhost/icewarpapi/",
    ] {
        assert_eq!(icewarp(url), ["apiUrl"], "{url}");
        assert_eq!(imap(url), ["davUrl"], "{url}");
    }
    assert!(icewarp("http://127.0.0.1:3200/icewarpapi/").is_empty());
    assert!(imap("https://dav.example.com/").is_empty());
}

/// The app insisted on an email address for IceWarp's administrator while the core (and
/// IceWarp's username login policy) accept a username: one rule, the core's.
#[test]
fn an_icewarp_admin_username_is_accepted_as_the_core_accepts_it() {
    let app = TestApp::new();
    let check = |admin: &str| {
        let errors = app
            .invoke(
                "validate_destination",
                json!({"destination": {"kind": "iceWarp", "host": "mail.example.com",
                       "adminEmail": admin, "credentialsReport": "/root/new.csv"}}),
            )
            .unwrap();
        fields(&errors)
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert!(check("admin").is_empty());
    assert!(check("admin@example.com").is_empty());
    assert_eq!(check("ad min"), ["adminEmail"]);
    assert_eq!(check(" "), ["adminEmail"]);
}

#[test]
fn validate_destination_names_each_bad_field_of_each_kind() {
    let app = TestApp::new();
    let check = |destination: Value| {
        app.invoke(
            "validate_destination",
            json!({ "destination": destination }),
        )
        .unwrap()
    };
    let icewarp = check(
        json!({"kind": "iceWarp", "host": "https://mail.example.com",
                               "adminEmail": "ad min", "credentialsReport": "new.csv",
                               "apiUrl": "http://mail.example.com/icewarpapi/"}),
    );
    assert_eq!(
        fields(&icewarp),
        ["iceWarpHost", "adminEmail", "credentialsReport", "apiUrl"]
    );
    assert_eq!(
        check(
            json!({"kind": "iceWarp", "host": "mail.example.com", "adminEmail": "admin@example.com",
                     "credentialsReport": "/root/new-accounts.csv"})
        ),
        json!([])
    );
    let imap = check(json!({"kind": "imap", "host": "imap://x", "port": 0, "security": "tls"}));
    assert_eq!(fields(&imap), ["host", "port", "login"]);
    let both = check(
        json!({"kind": "imap", "host": "imap.example.com", "masterUser": "admin",
                            "accountsCsv": "/srv/a.csv"}),
    );
    assert_eq!(fields(&both), ["login"]);
    let relative = check(
        json!({"kind": "imap", "host": "imap.example.com", "security": "starttls",
                                "accountsCsv": "a.csv"}),
    );
    assert_eq!(fields(&relative), ["accountsCsv"]);
    let dav = |login: Value, url: &str| {
        let mut d = json!({"kind": "imap", "host": "imap.example.com", "davUrl": url});
        d.as_object_mut()
            .unwrap()
            .extend(login.as_object().unwrap().clone());
        fields(&check(d))
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let csv = json!({"accountsCsv": "/srv/a.csv"});
    assert_eq!(dav(csv.clone(), "dav.example.com"), ["davUrl"]);
    assert_eq!(
        dav(json!({"masterUser": "admin"}), "https://dav.example.com/"),
        ["davUrl"]
    );
    assert!(dav(csv, "https://dav.example.com/").is_empty());
    assert_eq!(
        check(
            json!({"kind": "imap", "host": "imap.example.com", "port": 993, "masterUser": "admin",
                     "masterStyle": "dovecot"})
        ),
        json!([])
    );
    assert_eq!(
        fields(&check(json!({"kind": "folder", "path": "out"}))),
        ["path"]
    );
    assert_eq!(
        check(json!({"kind": "folder", "path": "/srv/out"})),
        json!([])
    );
    // A password is never a destination field.
    let err = app
        .invoke(
            "validate_destination",
            json!({"destination": {"kind": "folder", "path": "/srv", "password": "pa55"}}),
        )
        .unwrap_err();
    assert!(!err.to_string().contains("pa55"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn test_destination_checks_a_folder_and_is_honest_about_icewarp() {
    let app = TestApp::new();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("export");
    app.project(
        json!({"tenantId": "", "clientId": ""}),
        json!({"kind": "folder", "path": out}),
    );
    let ok = app
        .invoke_blocking(
            "test_destination",
            json!({"destination": {"kind": "folder", "path": "/etc/ignored"}}),
        )
        .unwrap();
    assert_eq!(ok["ok"], true, "{ok}");
    assert!(out.is_dir(), "the folder is created");

    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    app.project(
        json!({"tenantId": "", "clientId": ""}),
        json!({"kind": "folder", "path": file.join("below")}),
    );
    let bad = app
        .invoke_blocking(
            "test_destination",
            json!({"destination": {"kind": "folder", "path": file.join("below")}}),
        )
        .unwrap();
    assert_eq!(bad["ok"], false);
    assert_eq!(bad["checks"][0]["verdict"], "blocking", "{bad}");
    assert!(
        bad["checks"][0]["advice"]
            .as_str()
            .unwrap()
            .contains("not writable"),
        "{bad}"
    );

    let imap = json!({"kind": "imap", "host": "127.0.0.1", "port": 1, "masterUser": "admin"});
    let err = app
        .invoke_blocking("test_destination", json!({"destination": imap}))
        .unwrap_err();
    assert_eq!(err["code"], "secret.missing", "{err}");
    assert!(!err.to_string().contains("adm1n-pa55"));
}

/// Every file in a `cur/` folder below `dir`: the messages a Maildir holds.
fn maildir_messages(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if d.file_name().is_some_and(|n| n == "cur") {
                found.push(path);
            }
        }
    }
    found
}

/// A started simulator, its source settings as the UI sends them, and an app holding its
/// client secret in the (mock) keychain.
async fn tenant_app() -> (migrator_sim::SimServer, Value, TestApp) {
    let sim = migrator_sim::SimServer::start(migrator_sim::SimConfig::demo())
        .await
        .unwrap();
    let (source, app) = app_for(&sim);
    (sim, source, app)
}

/// The account of the simulator's client secret: bound to its login host.
fn sim_account(sim: &migrator_sim::SimServer) -> String {
    let host = sim.url().trim_start_matches("http://").to_string();
    format!("{}/{}@{host}", sim.tenant_id(), sim.client_id())
}

/// The simulator's source settings as the UI sends them, and an app holding its client
/// secret in the (mock) keychain.
fn app_for(sim: &migrator_sim::SimServer) -> (Value, TestApp) {
    let source = json!({"tenantId": sim.tenant_id(), "clientId": sim.client_id(), "cloud": "global",
                        "loginUrl": sim.url(), "graphUrl": sim.url(), "allowPlaintextLoopback": true});
    let app = TestApp::new();
    app.store("graphClientSecret", sim_account(sim), sim.client_secret());
    (source, app)
}

#[tokio::test(flavor = "multi_thread")]
async fn start_pass_moves_the_selected_mailboxes_into_a_folder() {
    let (sim, source, app) = tenant_app().await;
    let out = tempfile::tempdir().unwrap();
    let project = app.project(source, json!({"kind": "folder", "path": out.path()}));
    let plan = app
        .invoke_blocking("plan_migration", json!({"refresh": true}))
        .unwrap();
    let users = plan["users"].as_array().unwrap();
    let mails: Vec<&str> = users
        .iter()
        .map(|u| u["address"].as_str().unwrap())
        .collect();
    assert_eq!(mails.len(), 3, "{plan}");
    // Real counts from the tenant: each mailbox's folders and items, summed in the total.
    assert!(
        users.iter().all(|u| u["folders"].as_u64().unwrap() > 0),
        "{plan}"
    );
    let items: u64 = users.iter().map(|u| u["items"].as_u64().unwrap()).sum();
    assert_eq!(plan["items"].as_u64().unwrap(), items);
    assert!(items >= 300, "{plan}");
    assert_eq!(
        plan["domains"],
        json!(["contoso.com", "contoso.onmicrosoft.com"]),
        "{plan}"
    );

    // Folders copy every mailbox: no account rules apply.
    assert!(
        users.iter().all(|u| u["action"] == json!({"kind": "copy"})),
        "{plan}"
    );
    let mut chosen = project.clone();
    chosen["selection"] = json!({"users": [mails[1]]});
    chosen["workloads"] = json!(["mail"]);
    app.invoke_blocking("save_project", json!({"project": chosen}))
        .unwrap();
    // The Plan counted again for the chosen mailbox and workloads: its counts go to the run.
    let counted = app
        .invoke_blocking("plan_migration", json!({"refresh": false}))
        .unwrap();
    let record = app.pass("full").await;
    assert_eq!(record["state"], "finished", "{record}");
    let summary = record["summary"].clone();
    assert_eq!(summary["users"], 1, "{summary}");
    // The run's totals came from the Plan (the engine reads the counts in its state folder).
    let kept = app.data.path().join("projects").join(app.open_id());
    let counts = |dir: &std::path::Path| {
        std::fs::read(dir.join(migrator_core::engine::COUNTS_FILE)).unwrap_or_default()
    };
    assert!(!counts(&kept).is_empty());
    assert_eq!(counts(&out.path().join(".m365-migrator")), counts(&kept));
    let snapshot = app.invoke_blocking("run_snapshot", json!({})).unwrap();
    assert_eq!(
        snapshot["itemsTotal"], counted["items"],
        "{snapshot} {counted}"
    );
    assert_eq!(summary["totals"]["failed"], 0);
    // Mail only, as chosen.
    assert_eq!(summary["totals"]["events"], 0, "{summary}");
    assert_eq!(summary["totals"]["contacts"], 0, "{summary}");
    let messages = summary["totals"]["messages"].as_u64().unwrap();
    assert!(messages >= 50, "{summary}");
    let written = maildir_messages(out.path());
    assert_eq!(written.len() as u64, messages);
    assert!(
        written
            .iter()
            .all(|p| p.starts_with(out.path().join(mails[1]))),
        "only the selected mailbox is written"
    );
    assert!(out.path().join(".m365-migrator").is_dir(), "the journal");
    // The pass is in the project's history, with its summary.
    let reopened = app
        .invoke_blocking("open_project", json!({"id": project["id"]}))
        .unwrap();
    assert_eq!(reopened["passes"].as_array().map(Vec::len), Some(1));
    assert_eq!(reopened["passes"][0]["kind"], "full");
    assert_eq!(reopened["passes"][0]["state"], "finished");
    assert_eq!(reopened["passes"][0]["summary"], summary);
    // The desktop is told the pass ended, with what moved.
    let notes = app.notifications(1).await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].0, "Test: pass finished");
    assert!(
        notes[0].1.contains(&format!("{messages} messages")),
        "{notes:?}"
    );
    assert!(!notes[0].1.contains(sim.client_secret()));

    // Once the run is over, the controls say so.
    let idle = app
        .invoke_blocking("control_run", json!({"action": "stop"}))
        .unwrap_err();
    assert_eq!(idle["code"], "idle");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_plan_follows_the_chosen_scope_and_names_a_bad_choice() {
    let (sim, source, app) = tenant_app().await;
    let mut upns: Vec<String> = sim
        .tenant()
        .users
        .iter()
        .map(|u| u.user_principal_name.to_lowercase())
        .collect();
    upns.sort();
    // One hand-picked mailbox, mail and contacts only: the Plan reads the project's selection.
    let out = tempfile::tempdir().unwrap();
    let mut project = app.project(source, json!({"kind": "folder", "path": out.path()}));
    project["selection"] = json!({"users": [upns[2]]});
    project["workloads"] = json!(["mail", "contacts"]);
    project["mailSince"] = json!("2000-01-01");
    app.invoke_blocking("save_project", json!({"project": project}))
        .unwrap();
    let plan = app
        .invoke_blocking("plan_migration", json!({"refresh": false}))
        .unwrap();
    let users = plan["users"].as_array().unwrap();
    assert_eq!(users.len(), 1, "{plan}");
    assert_eq!(
        users[0]["userPrincipalName"]
            .as_str()
            .map(str::to_lowercase),
        Some(upns[2].clone())
    );
    assert_eq!(
        (plan["events"].as_u64(), plan["tasks"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(plan["contacts"].as_u64().unwrap() > 0, "{plan}");
    assert!(plan["items"].as_u64().unwrap() > 0, "{plan}");

    // A bad date is refused when saved, naming its field.
    project["mailSince"] = json!("2020-13-01");
    let e = app
        .invoke_blocking("save_project", json!({"project": project}))
        .unwrap_err();
    assert_eq!(e["code"], "invalid", "{e}");
    assert_eq!(e["fields"][0]["field"], "mailSince", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("'2020-13-01' is not a date"),
        "{e}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_run_streams_its_events_and_no_secret_reaches_them() {
    let (sim, source, app) = tenant_app().await;
    let places = {
        let state = tauri::Manager::state::<AppState>(&app.webview);
        state.secrets()
    };
    let (channel, events) = recording_channel::<Value>();
    let out = tempfile::tempdir().unwrap();
    let request: MigrationSpec = serde_json::from_value(
        json!({"source": source, "destination": {"kind": "folder", "path": out.path()}}),
    )
    .unwrap();
    let summary = migrate(
        places.clone(),
        out.path(),
        &request,
        Arc::new(ChannelReporter::new(channel)),
        RunControl::new(),
    )
    .await
    .expect("the run finishes");
    let events = events.lock().unwrap().clone();
    assert_eq!(events.first().unwrap()["kind"], "runStarted");
    assert_eq!(events.first().unwrap()["users"], 3);
    assert_eq!(events.last().unwrap()["kind"], "runFinished");
    let done = events.iter().filter(|e| e["kind"] == "itemDone").count() as u64;
    let t = &summary.totals;
    assert_eq!(done, t.messages + t.events + t.contacts + t.tasks);
    let messages = t.messages;
    assert_eq!(maildir_messages(out.path()).len() as u64, messages);
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains(sim.client_secret()), "a secret in an event");

    // A rerun writes nothing twice.
    let again = migrate(
        places.clone(),
        out.path(),
        &request,
        Arc::new(migrator_core::progress::NullReporter),
        RunControl::new(),
    )
    .await
    .unwrap();
    assert_eq!(maildir_messages(out.path()).len() as u64, messages);
    assert_eq!(again.totals.failed, 0);

    // A wrong stored secret: the error names the problem, never the value.
    app.store("graphClientSecret", sim_account(&sim), "Wr0ng~secret.value");
    let err = migrate(
        places,
        out.path(),
        &request,
        Arc::new(migrator_core::progress::NullReporter),
        RunControl::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, "auth.secret");
    assert!(!err.message.contains("Wr0ng~secret.value"), "{err:?}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn start_pass_needs_every_stored_secret_before_anything_moves() {
    let app = TestApp::new();
    let source = json!({"tenantId": "contoso.onmicrosoft.com",
                        "clientId": "00000000-0000-0000-0000-000000000001"});
    let out = tempfile::tempdir().unwrap();
    app.project(
        source.clone(),
        json!({"kind": "folder", "path": out.path()}),
    );
    let start = || {
        app.invoke_blocking("start_pass", json!({"kind": "full"}))
            .unwrap_err()
    };
    let err = start();
    assert_eq!(err["code"], "secret.missing", "{err}");
    app.store(
        "graphClientSecret",
        "contoso.onmicrosoft.com/00000000-0000-0000-0000-000000000001",
        "x~y",
    );
    // The IceWarp administrator's password is not stored: refused before any connection.
    app.project(
        source,
        json!({"kind": "iceWarp", "host": "mail.example.com", "adminEmail": "admin@example.com",
               "credentialsReport": out.path().join("new.csv")}),
    );
    let err = start();
    assert_eq!(err["code"], "secret.missing", "{err}");
    assert!(err.to_string().contains("administrator password"), "{err}");
    assert_eq!(maildir_messages(out.path()).len(), 0);
}

/// The Destination screen's IMAP settings for a test Dovecot: implicit TLS trusting its CA,
/// the master user in Dovecot's style.
fn dovecot_destination(dovecot: &support::dovecot::Dovecot) -> Value {
    json!({"kind": "imap", "host": "127.0.0.1", "port": dovecot.imaps_port, "security": "tls",
           "caFile": dovecot.ca_file, "masterUser": support::dovecot::MASTER_USER,
           "masterStyle": "dovecot"})
}

#[tokio::test(flavor = "multi_thread")]
async fn an_imap_destination_is_tested_and_migrated_into_with_keychain_passwords() {
    let (sim, dovecot) = support::tenant_with_dovecot(2, 12).await;
    let (source, app) = app_for(&sim);
    let destination = dovecot_destination(&dovecot);
    app.project(source.clone(), destination.clone());
    let master = json!({"kind": "destAdminPassword",
                        "account": format!("127.0.0.1/{}", support::dovecot::MASTER_USER)});

    let mut wrong = master.clone();
    wrong["value"] = json!("not-the-master-pw");
    app.invoke_blocking("store_secret", wrong).unwrap();
    let refused = app
        .invoke_blocking(
            "test_destination",
            json!({"source": source, "destination": destination}),
        )
        .unwrap();
    assert_eq!(refused["ok"], false, "{refused}");
    // One row: the IMAP server, reached, with the master user's login refused.
    assert_eq!(
        refused["checks"].as_array().map(Vec::len),
        Some(1),
        "{refused}"
    );
    assert_eq!(refused["checks"][0]["verdict"], "blocking", "{refused}");
    assert!(
        refused["checks"][0]["advice"]
            .as_str()
            .unwrap()
            .contains("refused the master user"),
        "{refused}"
    );
    assert!(!refused.to_string().contains("not-the-master-pw"));

    let mut right = master.clone();
    right["value"] = json!(support::dovecot::MASTER_PASSWORD);
    app.invoke_blocking("store_secret", right).unwrap();
    let ok = app
        .invoke_blocking(
            "test_destination",
            json!({"source": source, "destination": destination}),
        )
        .unwrap();
    assert_eq!(ok["ok"], true, "{ok}\n{}", dovecot.log());
    assert_eq!(ok["checks"][0]["verdict"], "ok", "{ok}");

    let first = app.pass("full").await["summary"].clone();
    assert_eq!(first["users"], 2, "{first}\n{}", dovecot.log());
    assert_eq!(first["totals"]["failed"], 0, "{first}");
    let moved = first["totals"]["messages"].as_u64().unwrap();
    assert!(moved >= 24, "{first}");
    // The second run finds everything there (journal under the app's data folder).
    assert!(app.data.path().join("journal").is_dir());
    let second = app.pass("incremental").await["summary"].clone();
    assert_eq!(second["totals"]["failed"], 0, "{second}");
    assert_eq!(
        second["totals"]["messages"].as_u64().unwrap(),
        0,
        "nothing written twice: {second}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn test_destination_logs_in_to_icewarp_and_reports_slow_settings() {
    use migrator_sim::icewarp::{IceWarpConfig, IceWarpSim};
    let sim = IceWarpSim::start(IceWarpConfig {
        properties: vec![(
            "C_System_Services_IMAP_MaxAppendsPerMinute".into(),
            "120".into(),
        )],
        ..IceWarpConfig::default()
    })
    .await
    .unwrap();
    let admin = IceWarpConfig::default();
    let app = TestApp::new();
    let dir = tempfile::tempdir().unwrap();
    let destination = json!({"kind": "iceWarp", "host": "127.0.0.1", "adminEmail": admin.admin_email,
                             "credentialsReport": dir.path().join("new-accounts.csv"),
                             "apiUrl": sim.api_url()});
    app.project(json!({"tenantId": "", "clientId": ""}), destination.clone());
    // With an API URL override the password is stored for that API host too.
    let api_host = url::Url::parse(&sim.api_url()).unwrap();
    let account = format!(
        "127.0.0.1@{}:{}/{}",
        api_host.host_str().unwrap(),
        api_host.port().unwrap(),
        admin.admin_email
    );
    let missing = app
        .invoke_blocking("test_destination", json!({"destination": destination}))
        .unwrap_err();
    assert_eq!(missing["code"], "secret.missing", "{missing}");

    app.store("destAdminPassword", &account, "Wr0ng-Pa55");
    let refused = app
        .invoke_blocking("test_destination", json!({"destination": destination}))
        .unwrap();
    let admin_api = |check: &Value| {
        check["checks"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["name"] == "IceWarp admin API"))
            .cloned()
            .unwrap_or_else(|| panic!("no admin API row: {check}"))
    };
    // The admin API, IMAP and WebDAV are each checked (this test runs only the API).
    assert_eq!(
        refused["checks"].as_array().map(Vec::len),
        Some(3),
        "{refused}"
    );
    assert_eq!(refused["ok"], false, "{refused}");
    let row = admin_api(&refused);
    assert_eq!(row["verdict"], "blocking", "{refused}");
    assert!(
        row["advice"]
            .as_str()
            .unwrap()
            .contains("refused the administrator login"),
        "{refused}"
    );
    assert!(!refused.to_string().contains("Wr0ng-Pa55"));

    app.store("destAdminPassword", &account, &admin.admin_password);
    let ok = app
        .invoke_blocking("test_destination", json!({"destination": destination}))
        .unwrap();
    let row = admin_api(&ok);
    assert_eq!(row["verdict"], "warning", "{ok}");
    assert!(
        row["advice"]
            .as_str()
            .unwrap()
            .contains("120 messages per minute"),
        "the slow APPEND limit is reported: {ok}"
    );
    assert!(!ok.to_string().contains(&admin.admin_password));
    // One login, one settings read, one logout: nothing created.
    assert!(sim.accounts().is_empty());
    sim.shutdown().await;
}

/// An app whose "open" requests are recorded instead of opening anything.
fn app_recording_opens() -> (TestApp, Arc<Mutex<Vec<std::path::PathBuf>>>) {
    let keychain: Arc<dyn SecretStore> = Arc::new(migrator_core::secrets::MemoryStore::default());
    let opened = Arc::new(Mutex::new(Vec::new()));
    let sink = opened.clone();
    let opener: Opener = Arc::new(move |path: &std::path::Path| {
        sink.lock().unwrap().push(path.to_path_buf());
        Ok(())
    });
    let state = AppState::new(Ok(keychain.clone())).with_opener(opener);
    (TestApp::with_state(state, keychain), opened)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_report_buttons_open_the_last_runs_files_and_nothing_else() {
    let (app, opened) = app_recording_opens();
    // Before any run there is nothing to open.
    let none = app
        .invoke_blocking("open_run_file", json!({"file": "report"}))
        .unwrap_err();
    assert_eq!(none["code"], "missing", "{none}");
    let status = app.invoke_blocking("run_status", json!({})).unwrap();
    assert_eq!(status, json!({"running": false, "last": null}));

    let summary = app.demo().await;
    let out = app.data.path().join("projects").join("demo");
    let details = app.invoke_blocking("run_details", json!({})).unwrap();
    let html = out.join(".m365-migrator/report/report.html");
    assert!(html.is_file(), "the run wrote its HTML report");
    assert_eq!(details["reportHtml"], json!(html), "{details}");
    assert_eq!(details["failuresTotal"], 0, "{details}");
    let status = app.invoke_blocking("run_status", json!({})).unwrap();
    assert_eq!(status["last"]["state"], "finished", "{status}");
    assert_eq!(status["last"]["summary"], summary, "{status}");
    assert_eq!(
        status["last"]["request"],
        json!({"kind": "demo", "outDir": out})
    );

    app.invoke_blocking("open_run_file", json!({"file": "report"}))
        .unwrap();
    assert_eq!(*opened.lock().unwrap(), std::slice::from_ref(&html));
    // No log folder in this app (tests do not log to files): said, not opened.
    let no_log = app
        .invoke_blocking("open_run_file", json!({"file": "logFolder"}))
        .unwrap_err();
    assert_eq!(no_log["code"], "missing", "{no_log}");

    // The web view names a file, never a path: a path it adds is ignored.
    app.invoke_blocking(
        "open_run_file",
        json!({"file": "report", "path": "/etc/passwd"}),
    )
    .unwrap();
    assert_eq!(opened.lock().unwrap().last(), Some(&html));
    // And it cannot reach the opener plugin itself.
    let refused = [
        ("open_run_file", json!({"file": "/etc/passwd"})),
        ("open_run_file", json!({"file": "stateFolder"})),
        ("plugin:opener|open_path", json!({"path": "/etc/passwd"})),
        ("plugin:opener|open_path", json!({"path": html})),
        (
            "plugin:opener|open_url",
            json!({"url": "https://example.com/"}),
        ),
        (
            "plugin:opener|reveal_item_in_dir",
            json!({"paths": ["/etc"]}),
        ),
    ];
    for (cmd, args) in refused {
        let before = opened.lock().unwrap().len();
        let err = app.invoke_blocking(cmd, args.clone());
        assert!(err.is_err(), "{cmd} {args} was accepted: {err:?}");
        assert_eq!(opened.lock().unwrap().len(), before, "{cmd} {args}");
    }
}

/// A demo run the app remembers as its last one, begun in the journal and never finished;
/// returns its output folder and state folder.
fn unfinished_demo_run(app: &TestApp) -> (std::path::PathBuf, std::path::PathBuf) {
    let out = app.data.path().join("projects").join("demo");
    let state_dir = out.join(".m365-migrator");
    migrator_core::journal::Journal::open(&state_dir)
        .unwrap()
        .begin_run()
        .unwrap();
    std::fs::write(
        app.data.path().join("last-run.json"),
        serde_json::to_vec(&json!({"request": {"kind": "demo", "outDir": out},
                                   "stateDir": state_dir}))
        .unwrap(),
    )
    .unwrap();
    (out, state_dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_run_is_offered_again_and_resumes_without_duplicates() {
    let (app, _) = app_recording_opens();
    // A run that began and never finished (the app was closed or the computer stopped).
    let (out, _state_dir) = unfinished_demo_run(&app);
    let status = app.invoke_blocking("run_status", json!({})).unwrap();
    assert_eq!(status["running"], false);
    assert_eq!(status["last"]["state"], "interrupted", "{status}");
    assert_eq!(status["last"]["request"]["kind"], "demo");

    // Resuming runs the same request; a second pass writes nothing twice.
    let first = app.demo().await;
    let messages = maildir_messages(&out).len() as u64;
    assert_eq!(first["totals"]["messages"].as_u64().unwrap(), messages);
    let again = app.demo().await;
    assert_eq!(again["totals"]["messages"], 0, "{again}");
    assert_eq!(maildir_messages(&out).len() as u64, messages);
    let status = app.invoke_blocking("run_status", json!({})).unwrap();
    assert_eq!(status["last"]["state"], "finished", "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_going_on_in_another_process_is_shown_as_such_and_not_resumed() {
    let (app, _) = app_recording_opens();
    let (out, state_dir) = unfinished_demo_run(&app);
    // Another run (the CLI, here this test) holds the state folder as `engine::run` does.
    let other = migrator_core::journal::StateLock::acquire(&state_dir).unwrap();

    let status = app.invoke_blocking("run_status", json!({})).unwrap();
    assert_eq!(status["running"], false, "{status}");
    assert_eq!(status["last"]["state"], "runningElsewhere", "{status}");
    let held_by = status["last"]["heldBy"].as_str().unwrap_or_default();
    assert!(
        held_by.contains(&format!("process {}", std::process::id())),
        "{status}"
    );
    // Resuming anyway (an old page) is refused at once and writes nothing.
    let refused = app.invoke_blocking("run_demo", json!({})).unwrap_err();
    assert_eq!(refused["code"], "busy", "{refused}");
    assert_eq!(maildir_messages(&out).len(), 0);
    assert!(
        !state_dir.join("report").exists(),
        "the report is left to the run going on"
    );

    // Once that run ends, it is offered again.
    drop(other);
    let status = app.invoke_blocking("run_status", json!({})).unwrap();
    assert_eq!(status["last"]["state"], "interrupted", "{status}");
    assert!(status["last"]["heldBy"].is_null(), "{status}");
}

/// A loopback port that records whether anything connected to it. Each connection is
/// recorded, then closed at once, so a client that reached it fails fast; the record is made
/// before the close, so a command that returned after reaching it is always seen.
struct Tripwire {
    addr: std::net::SocketAddr,
    touched: Arc<std::sync::atomic::AtomicBool>,
}

impl Tripwire {
    fn new() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let touched = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = touched.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                drop(stream);
            }
        });
        Tripwire { addr, touched }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn touched(&self) -> bool {
        self.touched.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_sent_override_cannot_send_the_stored_secret_elsewhere() {
    let (sim, source, app) = tenant_app().await;
    // The client secret is stored for the simulator's login host. A Graph URL the page points
    // elsewhere would receive its tokens: refused before anything is sent.
    let elsewhere = Tripwire::new();
    let mut redirected = source.clone();
    redirected["graphUrl"] = json!(elsewhere.url());
    let err = app
        .invoke_blocking("test_connection", json!({"source": redirected}))
        .unwrap_err();
    assert_eq!(err["code"], "invalid", "{err}");
    assert_eq!(err["fields"][0]["field"], "graphUrl", "{err}");
    assert!(
        !elsewhere.touched(),
        "the token went to the page's Graph URL"
    );
    // The same settings in a project are refused when saved.
    let mut project = app.project(source.clone(), json!({"kind": "folder", "path": "/tmp/x"}));
    project["source"] = redirected;
    let err = app
        .invoke_blocking("save_project", json!({"project": project}))
        .unwrap_err();
    assert_eq!(err["fields"][0]["field"], "graphUrl", "{err}");

    // A login URL the page changes names another keychain entry: nothing stored there.
    let mut login = source.clone();
    login["loginUrl"] = json!(elsewhere.url());
    login["graphUrl"] = json!(elsewhere.url());
    let err = app
        .invoke_blocking("test_connection", json!({"source": login}))
        .unwrap_err();
    assert_eq!(err["code"], "secret.missing", "{err}");
    assert!(
        !elsewhere.touched(),
        "the secret went to the page's login URL"
    );

    // IceWarp: the administrator's password stored for the server is not sent to an API URL
    // the page adds; that URL has an entry of its own.
    app.store(
        "destAdminPassword",
        "mail.example.com/admin@example.com",
        "Adm1n-Pa55",
    );
    let mut destination = json!({"kind": "iceWarp", "host": "mail.example.com",
                                 "adminEmail": "admin@example.com",
                                 "credentialsReport": app.data.path().join("new.csv")});
    app.project(source.clone(), destination.clone());
    destination["apiUrl"] = json!(elsewhere.url());
    let err = app
        .invoke_blocking("test_destination", json!({"destination": destination}))
        .unwrap_err();
    assert_eq!(err["code"], "secret.missing", "{err}");
    assert!(!err.to_string().contains("Adm1n-Pa55"));
    assert!(
        !elsewhere.touched(),
        "the admin password went to the page's API URL"
    );
    sim.shutdown().await;
}

#[test]
fn a_project_file_never_holds_a_secret_and_the_demo_keeps_its_own() {
    let app = TestApp::new();
    let source = json!({"tenantId": "contoso.onmicrosoft.com",
                        "clientId": "00000000-0000-0000-0000-000000000001"});
    app.store(
        "graphClientSecret",
        "contoso.onmicrosoft.com/00000000-0000-0000-0000-000000000001",
        "Cl1ent~Secret.Value",
    );
    app.store(
        "destAdminPassword",
        "mail.example.com/admin@example.com",
        "Adm1n-Pa55",
    );
    let csv = app.data.path().join("accounts.csv");
    std::fs::write(&csv, "email,password\nadele@contoso.com,\"Us3r,Pa55\"\n").unwrap();
    let project = app.project(
        source,
        json!({"kind": "iceWarp", "host": "mail.example.com", "adminEmail": "admin@example.com",
               "accountsCsv": csv}),
    );
    let id = project["id"].as_str().unwrap();
    let file = app.data.path().join("projects").join(format!("{id}.json"));
    let text = std::fs::read_to_string(&file).unwrap();
    for secret in ["Cl1ent~Secret.Value", "Adm1n-Pa55", "Us3r,Pa55"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A second project sits beside the first; the list names both.
    let second = app
        .invoke_blocking("create_project", json!({"name": "Fabrikam"}))
        .unwrap();
    let list = app.invoke_blocking("list_projects", json!({})).unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&id) && ids.contains(&second["id"].as_str().unwrap()));
    // The demo's id cannot be taken by a saved project, and reopening the first gives it back
    // as it was.
    let mut fake = project.clone();
    fake["id"] = json!("demo");
    assert!(app
        .invoke_blocking("save_project", json!({"project": fake}))
        .is_err());
    let reopened = app
        .invoke_blocking("open_project", json!({"id": id}))
        .unwrap();
    assert_eq!(reopened, project);
}

#[test]
fn paths_come_only_from_native_dialogs() {
    let app = TestApp::new();
    let source = json!({"tenantId": "", "clientId": ""});
    let picked = app.data.path().join("export");
    let mut project = app.project(source, json!({"kind": "folder", "path": picked}));
    // A path the page sends is ignored: the one chosen in the dialog stays.
    project["destination"] = json!({"kind": "folder", "path": "/etc"});
    let saved = app
        .invoke_blocking("save_project", json!({"project": project}))
        .unwrap();
    assert_eq!(saved["destination"]["path"], json!(picked), "{saved}");
    // A cancelled dialog changes nothing.
    let cancelled = app
        .invoke_blocking("pick_path", json!({"purpose": "destinationFolder"}))
        .unwrap();
    assert_eq!(cancelled, Value::Null);
    // The page cannot add a path to pick_path either.
    app.answer(
        PathPurpose::DestinationFolder,
        app.data.path().join("chosen"),
    );
    let chosen = app
        .invoke_blocking(
            "pick_path",
            json!({"purpose": "destinationFolder", "path": "/root"}),
        )
        .unwrap();
    assert_eq!(chosen, json!(app.data.path().join("chosen")));

    // Switching to IceWarp: the credentials report defaults into the user's folder, never
    // under /root, and a page-sent one is ignored.
    let mut project = app
        .invoke_blocking("open_project", json!({"id": saved["id"]}))
        .unwrap();
    project["destination"] = json!({"kind": "iceWarp", "host": "mail.example.com",
        "adminEmail": "admin@example.com", "credentialsReport": "/root/new-accounts.csv",
        "accountsCsv": "/etc/shadow"});
    let saved = app
        .invoke_blocking("save_project", json!({"project": project}))
        .unwrap();
    let report = saved["destination"]["credentialsReport"].as_str().unwrap();
    assert!(
        report.starts_with(app.data.path().to_str().unwrap()),
        "{saved}"
    );
    assert!(saved["destination"]["accountsCsv"].is_null(), "{saved}");
    // A purpose the destination has no field for is refused.
    app.answer(PathPurpose::DestinationFolder, "/srv/x");
    let err = app
        .invoke_blocking("pick_path", json!({"purpose": "destinationFolder"}))
        .unwrap_err();
    assert_eq!(err["code"], "invalid", "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_plan_shows_each_mailboxs_action_and_the_accounts_csv_preview_matches_it() {
    let (sim, source, app) = tenant_app().await;
    let dir = tempfile::tempdir().unwrap();
    app.project(
        source.clone(),
        json!({"kind": "iceWarp", "host": "mail.example.com", "adminEmail": "admin@example.com",
               "credentialsReport": dir.path().join("new.csv")}),
    );
    let plan = app
        .invoke_blocking("plan_migration", json!({"refresh": true}))
        .unwrap();
    let rows = plan["users"].as_array().unwrap().clone();
    let mails: Vec<String> = rows
        .iter()
        .map(|u| u["address"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(mails.len(), 3, "{plan}");
    // Without an accounts CSV every kept mailbox becomes a new IceWarp account.
    assert!(
        rows.iter()
            .all(|u| u["action"] == json!({"kind": "create"}) && u["kind"] != "guest"),
        "{plan}"
    );

    // One existing account's password (quoted, with a comma) and an address not in the tenant.
    let csv = dir.path().join("accounts.csv");
    std::fs::write(
        &csv,
        format!(
            "email,password\n{},\"Us3r,Pa55\"\nnobody@elsewhere.example,Other-Pa55\n",
            mails[0].to_uppercase()
        ),
    )
    .unwrap();
    app.answer(PathPurpose::AccountsCsv, &csv);
    app.invoke_blocking("pick_path", json!({"purpose": "accountsCsv"}))
        .unwrap();
    let preview = app
        .invoke_blocking("preview_accounts_csv", json!({}))
        .unwrap();
    assert_eq!(
        preview,
        json!({"rows": 2, "matched": 1, "unmatched": ["nobody@elsewhere.example"],
               "missing": 2, "errors": []})
    );
    let plan = app
        .invoke_blocking("plan_migration", json!({"refresh": false}))
        .unwrap();
    let action = |mail: &str| {
        plan["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["address"] == mail)
            .map(|u| u["action"].clone())
    };
    assert_eq!(action(&mails[0]), Some(json!({"kind": "merge"})), "{plan}");
    assert_eq!(action(&mails[1]), Some(json!({"kind": "create"})), "{plan}");
    assert!(!plan.to_string().contains("Pa55") && !preview.to_string().contains("Pa55"));

    // A CSV that cannot be read names its line, never a password.
    std::fs::write(&csv, "email,password\nadele@contoso.com\n").unwrap();
    let preview = app
        .invoke_blocking("preview_accounts_csv", json!({}))
        .unwrap();
    assert_eq!(preview["errors"][0]["line"], 2, "{preview}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn run_snapshot_was_null_and_now_totals_equal_the_summary() {
    let app = TestApp::new();
    assert_eq!(
        app.invoke_blocking("run_snapshot", json!({})),
        Ok(Value::Null)
    );
    let summary = app.demo().await;
    let t = &summary["totals"];
    let snapshot = app.invoke_blocking("run_snapshot", json!({})).unwrap();
    assert_eq!(snapshot["mailboxesTotal"], summary["users"], "{snapshot}");
    assert_eq!(snapshot["mailboxesDone"], summary["users"], "{snapshot}");
    assert_eq!(snapshot["mailboxesRunning"], 0, "{snapshot}");
    assert_eq!(snapshot["mailboxesQueued"], 0, "{snapshot}");
    let items = ["messages", "events", "contacts", "tasks"]
        .iter()
        .map(|k| t[k].as_u64().unwrap())
        .sum::<u64>();
    assert!(items >= 300, "{summary}");
    assert_eq!(snapshot["itemsDone"].as_u64(), Some(items), "{snapshot}");
    assert_eq!(snapshot["itemsFailed"], t["failed"], "{snapshot}");
    assert_eq!(snapshot["bytesDone"], t["bytes"], "{snapshot}");
    assert_eq!(snapshot["fraction"], 1.0, "{snapshot}");
    // A reloaded page reads the same run.
    let again = app.invoke_blocking("run_snapshot", json!({})).unwrap();
    assert_eq!(again["itemsDone"], snapshot["itemsDone"]);
    assert_eq!(again["mailboxes"], snapshot["mailboxes"]);
}

/// Requests the simulator saw after the first `from` that read a user's mailbox.
fn mailbox_reads(sim: &migrator_sim::SimServer, from: usize) -> Vec<String> {
    let ids: Vec<String> = sim.tenant().users.iter().map(|u| u.id.clone()).collect();
    sim.requests()[from..]
        .iter()
        .filter(|r| r.mailbox.as_ref().is_some_and(|m| ids.contains(m)))
        .map(|r| r.path_and_query.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_plan_reads_no_counted_mailbox_and_refresh_reads_them_again() {
    let (sim, source, app) = tenant_app().await;
    let out = tempfile::tempdir().unwrap();
    app.project(source, json!({"kind": "folder", "path": out.path()}));
    let first = app
        .invoke_blocking("plan_migration", json!({"refresh": false}))
        .unwrap();
    assert_eq!(first["items"].as_u64().map(|n| n >= 300), Some(true));
    assert!(!mailbox_reads(&sim, 0).is_empty());
    // The counts are kept in the project's own folder.
    let kept = app
        .data
        .path()
        .join("projects")
        .join(app.open_id())
        .join(migrator_core::engine::COUNTS_FILE);
    assert!(kept.is_file(), "{}", kept.display());

    let before = sim.requests().len();
    let second = app
        .invoke_blocking("plan_migration", json!({"refresh": false}))
        .unwrap();
    assert_eq!(mailbox_reads(&sim, before), Vec::<String>::new());
    assert_eq!(second["items"], first["items"]);
    assert_eq!(second["users"], first["users"]);

    let before = sim.requests().len();
    let refreshed = app
        .invoke_blocking("plan_migration", json!({"refresh": true}))
        .unwrap();
    assert!(!mailbox_reads(&sim, before).is_empty(), "refresh recounts");
    assert_eq!(refreshed["items"], first["items"]);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_plan_ends_the_plan_counting_and_a_new_plan_cancels_the_old() {
    let mut config = migrator_sim::SimConfig::demo();
    // Slow answers, so the plan is caught while it counts.
    config.latency = std::time::Duration::from_millis(150);
    let sim = migrator_sim::SimServer::start(config).await.unwrap();
    let (source, app) = app_for(&sim);
    let out = tempfile::tempdir().unwrap();
    app.project(source, json!({"kind": "folder", "path": out.path()}));
    assert_eq!(
        app.invoke_blocking("cancel_plan", json!({})),
        Ok(json!(false))
    );
    let webview = app.webview.clone();

    let ended = tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            let plan = s.spawn(|| invoke_on(&webview, "plan_migration", json!({"refresh": true})));
            // Test harness polling: until the plan is counting.
            while !(app.invoke("cancel_plan", json!({})) == Ok(json!(true))) {
                std::thread::yield_now();
            }
            plan.join().unwrap()
        })
    });
    let err = ended.unwrap_err();
    assert_eq!(err["code"], "cancelled", "{err}");

    // A new plan while one counts: the old one is cancelled, the new one answers.
    let (old, new) = tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            let before = sim.requests().len();
            let old = s.spawn(|| invoke_on(&webview, "plan_migration", json!({"refresh": true})));
            // Test harness polling: until the old plan reads a mailbox.
            while mailbox_reads(&sim, before).is_empty() {
                std::thread::yield_now();
            }
            let new = app.invoke("plan_migration", json!({"refresh": false}));
            (old.join().unwrap(), new)
        })
    });
    assert_eq!(old.unwrap_err()["code"], "cancelled");
    let new = new.unwrap();
    assert_eq!(new["users"].as_array().map(Vec::len), Some(3), "{new}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_sent_dav_url_never_receives_the_accounts_csv_passwords() {
    let app = TestApp::new();
    let files = tempfile::tempdir().unwrap();
    let csv = files.path().join("accounts.csv");
    std::fs::write(&csv, "email,password\nadele@contoso.com,Csv-Pa55-adele\n").unwrap();
    // An IMAP port nothing listens on: the IMAP check fails, the DAV check would still run.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let imap_port = closed.local_addr().unwrap().port();
    drop(closed);
    let destination = json!({"kind": "imap", "host": "127.0.0.1", "port": imap_port,
                             "security": "tls", "accountsCsv": csv});
    let source = json!({"tenantId": "contoso.com", "clientId": "00000000-0000-0000-0000-000000000001", "cloud": "global"});
    let project = app.project(source, destination.clone());
    assert_eq!(
        project["destination"]["accountsCsv"],
        json!(csv),
        "{project}"
    );

    // The page adds a DAV URL of its own: test_destination does not log in there with a
    // password of the accounts CSV.
    let elsewhere = Tripwire::new();
    let dav = format!("https://{}/", elsewhere.addr);
    let mut redirected = destination.clone();
    redirected["davUrl"] = json!(dav);
    let tested = app.invoke_blocking("test_destination", json!({"destination": redirected}));
    assert!(
        !elsewhere.touched(),
        "the DAV URL the page sent was reached"
    );
    assert!(!format!("{tested:?}").contains("Csv-Pa55"), "{tested:?}");

    // Saved with it, the project no longer holds the accounts CSV: the user chooses the file
    // again, in the native dialog, for the new servers.
    let mut changed = project.clone();
    changed["destination"]["davUrl"] = json!(dav);
    let saved = app
        .invoke_blocking("save_project", json!({"project": changed}))
        .unwrap();
    assert_eq!(saved["destination"]["accountsCsv"], Value::Null, "{saved}");
    let pass = app.invoke_blocking("start_pass", json!({"kind": "full"}));
    assert!(pass.is_err(), "{pass:?}");
    assert!(
        !elsewhere.touched(),
        "the DAV URL the page sent was reached"
    );

    // The same host, written as the page may (case, spaces), keeps the file.
    let mut same = saved.clone();
    same["destination"]["davUrl"] = Value::Null;
    app.invoke_blocking("save_project", json!({"project": same}))
        .unwrap();
    app.answer(PathPurpose::AccountsCsv, &csv);
    app.invoke_blocking("pick_path", json!({"purpose": "accountsCsv"}))
        .unwrap();
    let mut cased = app
        .invoke_blocking("open_project", json!({"id": project["id"]}))
        .unwrap();
    cased["destination"]["host"] = json!(" 127.0.0.1 ");
    let kept = app
        .invoke_blocking("save_project", json!({"project": cased}))
        .unwrap();
    assert_eq!(kept["destination"]["accountsCsv"], json!(csv), "{kept}");
}

/// Issue 16 ("MX records of each domain, looked up"): the cut-over checklist answered "not
/// looked up by this version" for every domain. It now asks DNS (here a loopback server that
/// never answers) for each domain of the plan and of the domain map, and a silent server is a
/// plain timeout reason within the checklist's budget, never a hang.
#[tokio::test(flavor = "multi_thread")]
async fn cutover_checklist_looks_up_each_domains_mx() {
    // A bound socket nobody reads: the queries arrive and are never answered.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("a loopback socket");
    let keychain: Arc<dyn SecretStore> = Arc::new(KeyringStore::new(
        keyring_core::mock::Store::new().expect("a mock store"),
    ));
    let state = AppState::new(Ok(keychain.clone()))
        .with_dns_servers(vec![silent.local_addr().expect("its address")]);
    let app = TestApp::with_state(state, keychain);
    let mut project = app
        .invoke_blocking("create_project", json!({"name": "Cut-over"}))
        .expect("a project");
    project["rules"]["domainMap"] = json!({"Contoso.com": "contoso.com"});
    app.invoke_blocking("save_project", json!({"project": project}))
        .expect("saved");
    let checklist = app
        .invoke_blocking("cutover_checklist", json!({}))
        .expect("the checklist");
    assert_eq!(
        checklist["domains"],
        json!([{
            "domain": "contoso.com",
            "mx": [],
            "error": "no answer from the DNS server within 4 s"
        }])
    );
}

/// Moves the open project's schedule `hours` into the past in its file, as if the app had been
/// closed that long since it was set.
fn age_schedule(app: &TestApp, hours: u64) {
    let file = app
        .data
        .path()
        .join("projects")
        .join(format!("{}.json", app.open_id()));
    let mut project: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let since = project["schedule"]["since"].as_u64().expect("a schedule");
    project["schedule"]["since"] = json!(since - hours * 3600);
    std::fs::write(&file, serde_json::to_vec(&project).unwrap()).unwrap();
}

/// Issue 16 ("incremental passes on demand or on a schedule while the app runs"): a schedule
/// set from the page persists in the project and says when it fires; not due, the timer starts
/// nothing; three days of missed slots start one incremental pass, recorded like a manual one,
/// and the next look starts no other.
#[tokio::test(flavor = "multi_thread")]
async fn a_due_schedule_starts_one_incremental_pass_however_many_slots_were_missed() {
    let (_sim, source, app) = tenant_app().await;
    let out = tempfile::tempdir().unwrap();
    app.project(source, json!({"kind": "folder", "path": out.path()}));
    let handle = app._app.handle().clone();

    let shown = app
        .invoke_blocking("set_pass_schedule", json!({"everyHours": 6}))
        .expect("set");
    let project = app.reopen();
    let since = project["schedule"]["since"].as_u64().expect("persisted");
    assert_eq!(project["schedule"]["everyHours"], 6);
    assert_eq!(
        shown,
        json!({"everyHours": 6, "nextAt": since + 6 * 3600}),
        "{project}"
    );
    assert_eq!(app.invoke_blocking("pass_schedule", json!({})), Ok(shown));
    assert!(!m365_migrator_app::scheduled_tick(&handle).await, "not due");

    age_schedule(&app, 72);
    // Due while another run goes on: nothing starts and the schedule is left due, so the
    // first look after that run starts it.
    let state = tauri::Manager::state::<AppState>(&app.webview);
    let other = state.start_run().expect("another run");
    assert!(!m365_migrator_app::scheduled_tick(&handle).await, "overlap");
    assert_eq!(app.reopen()["passes"], json!([]));
    drop(other);
    state.finish_run();
    assert!(m365_migrator_app::scheduled_tick(&handle).await, "due");
    app.idle().await;
    assert!(
        !m365_migrator_app::scheduled_tick(&handle).await,
        "one pass"
    );
    let project = app.reopen();
    let passes = project["passes"].as_array().unwrap();
    assert_eq!(passes.len(), 1, "{project}");
    assert_eq!(passes[0]["kind"], "incremental");
    assert_eq!(passes[0]["state"], "finished", "{project}");
    assert!(passes[0]["summary"]["totals"]["messages"].as_u64().unwrap() > 0);
    let next = app.invoke_blocking("pass_schedule", json!({})).unwrap();
    assert_eq!(
        next["nextAt"].as_u64(),
        Some(passes[0]["startedAt"].as_u64().unwrap() + 6 * 3600),
        "{next}"
    );
    // (Its notification comes just after the pass goes idle: not counted here.)

    // Cleared: off, and gone from the file; out of range: refused.
    assert_eq!(
        app.invoke_blocking("set_pass_schedule", json!({"everyHours": null})),
        Ok(Value::Null)
    );
    let project = app.reopen();
    assert!(project.get("schedule").is_none(), "{project}");
    let refused = app
        .invoke_blocking("set_pass_schedule", json!({"everyHours": 0}))
        .unwrap_err();
    assert_eq!(refused["code"], "invalid", "{refused}");
}

/// A scheduled pass that cannot start (here the project has no source yet) is recorded as a
/// failed pass with its reason and announced, and is not tried again at every look.
#[tokio::test(flavor = "multi_thread")]
async fn a_scheduled_pass_that_cannot_start_is_recorded_failed_once() {
    let app = TestApp::new();
    app.invoke_blocking("create_project", json!({"name": "Unfinished"}))
        .expect("a project");
    let handle = app._app.handle().clone();
    app.invoke_blocking("set_pass_schedule", json!({"everyHours": 1}))
        .expect("set");
    age_schedule(&app, 2);
    assert!(!m365_migrator_app::scheduled_tick(&handle).await);
    assert!(!m365_migrator_app::scheduled_tick(&handle).await);
    let project = app.reopen();
    let passes = project["passes"].as_array().unwrap();
    assert_eq!(passes.len(), 1, "{project}");
    assert_eq!(passes[0]["kind"], "incremental");
    assert_eq!(passes[0]["state"], "failed");
    assert!(
        !passes[0]["error"].as_str().unwrap_or_default().is_empty(),
        "{project}"
    );
    let notes = app.notifications(1).await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].0, "Unfinished: pass failed");
}

/// The simulator's tenant and an app whose passes keep the computer awake through
/// `inhibitor` (in place of the system's logind lock).
async fn awake_app(
    inhibitor: m365_migrator_app::Inhibitor,
) -> (migrator_sim::SimServer, TestApp, tempfile::TempDir) {
    let sim = migrator_sim::SimServer::start(migrator_sim::SimConfig::demo())
        .await
        .unwrap();
    let source = json!({"tenantId": sim.tenant_id(), "clientId": sim.client_id(), "cloud": "global",
                        "loginUrl": sim.url(), "graphUrl": sim.url(), "allowPlaintextLoopback": true});
    let keychain: Arc<dyn SecretStore> = Arc::new(KeyringStore::new(
        keyring_core::mock::Store::new().expect("a mock store"),
    ));
    let app = TestApp::with_state(
        AppState::new(Ok(keychain.clone())).with_inhibitor(inhibitor),
        keychain,
    );
    app.store("graphClientSecret", sim_account(&sim), sim.client_secret());
    let out = tempfile::tempdir().unwrap();
    app.project(source, json!({"kind": "folder", "path": out.path()}));
    (sim, app, out)
}

/// Issue 16 ("the machine kept awake during a run (and said so)"): without a system bus the
/// lock cannot be taken; the pass still runs to the end and `run_status` says why the
/// computer may sleep.
#[tokio::test(flavor = "multi_thread")]
async fn a_pass_runs_when_the_computer_cannot_be_kept_awake_and_says_why() {
    let refuse: m365_migrator_app::Inhibitor =
        Arc::new(|| Err("no system bus (org.freedesktop.login1 unreachable)".to_string()));
    let (_sim, app, _out) = awake_app(refuse).await;
    let record = app.pass("full").await;
    assert_eq!(record["state"], "finished", "{record}");
    assert!(record["summary"]["totals"]["messages"].as_u64().unwrap() > 0);
    let status = app.invoke_blocking("run_status", json!({})).unwrap();
    assert_eq!(
        status["awake"],
        json!({"kept": false, "reason": "no system bus (org.freedesktop.login1 unreachable)"}),
        "{status}"
    );
}

/// The lock is taken for the pass and released when it ends (the guard is dropped), and
/// `run_status` says the computer was kept awake.
#[tokio::test(flavor = "multi_thread")]
async fn the_keep_awake_lock_is_held_for_the_pass_and_released_after() {
    struct Lock(Arc<std::sync::atomic::AtomicUsize>);
    impl Drop for Lock {
        fn drop(&mut self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let taken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let released = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (t, r) = (taken.clone(), released.clone());
    let lock: m365_migrator_app::Inhibitor = Arc::new(move || {
        t.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Box::new(Lock(r.clone())) as Box<dyn Send>)
    });
    let (_sim, app, _out) = awake_app(lock).await;
    let record = app.pass("full").await;
    assert_eq!(record["state"], "finished", "{record}");
    assert_eq!(taken.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(released.load(std::sync::atomic::Ordering::SeqCst), 1);
    let status = app.invoke_blocking("run_status", json!({})).unwrap();
    assert_eq!(status["awake"], json!({"kept": true}), "{status}");
}
