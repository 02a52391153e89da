//! The app's commands through Tauri's mock runtime, as the web view calls them.

use std::sync::{Arc, Mutex};

use m365_migrator_app::{builder, demo, AppState, ChannelReporter};
use migrator_core::engine::RunControl;
use migrator_core::progress::ProgressEvent;
use migrator_core::secrets::{KeyringStore, SecretStore};
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
        }
    }

    fn invoke(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        get_ipc_response(
            &self.webview,
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

    /// `invoke` from inside a multi-threaded tokio test (async commands need the runtime).
    fn invoke_blocking(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        tokio::task::block_in_place(|| self.invoke(cmd, args))
    }
}

fn invoke(cmd: &str, args: Value) -> Result<Value, Value> {
    TestApp::new().invoke(cmd, args)
}

#[test]
fn app_info_reports_the_version() {
    let info = invoke("app_info", json!({})).unwrap();
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
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
                        "loginUrl": sim.url(), "graphUrl": sim.url()});
    let app = TestApp::new();
    let account = format!("{}/{}", sim.tenant_id(), sim.client_id());
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

    app.invoke_blocking(
        "store_secret",
        json!({"kind": "graphClientSecret", "account": account, "value": "wrong-value~1"}),
    )
    .unwrap();
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
    let events = Arc::new(Mutex::new(Vec::<ProgressEvent>::new()));
    let sink = events.clone();
    let channel: Channel<ProgressEvent> = Channel::new(move |body| {
        let event: ProgressEvent = body.deserialize().expect("a ProgressEvent");
        sink.lock().unwrap().push(event);
        Ok(())
    });
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
    assert_eq!(done, summary.totals.messages);
    assert!(summary.totals.messages >= 200);
    assert_eq!(summary.totals.failed, 0);
    let finished = events
        .iter()
        .filter(|e| matches!(e, ProgressEvent::UserFinished { .. }))
        .count();
    assert_eq!(finished, 3);
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
