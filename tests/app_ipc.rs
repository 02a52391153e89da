//! The app's commands through Tauri's mock runtime, as the web view calls them.

use std::sync::{Arc, Mutex};

use m365_migrator_app::{builder, demo, ChannelReporter};
use migrator_core::engine::RunControl;
use migrator_core::progress::ProgressEvent;
use serde_json::{json, Value};
use tauri::ipc::{CallbackFn, Channel, InvokeBody};
use tauri::test::{get_ipc_response, mock_builder, mock_context, noop_assets, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::WebviewWindowBuilder;

fn invoke(cmd: &str, args: Value) -> Result<Value, Value> {
    let app = builder(mock_builder())
        .build(mock_context(noop_assets()))
        .expect("the app builds on the mock runtime");
    let webview = WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .expect("a mock window");
    get_ipc_response(
        &webview,
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
    let secret = sim.client_secret().to_string();
    let ok = tokio::task::block_in_place(|| {
        invoke(
            "test_connection",
            json!({"source": source, "clientSecret": secret}),
        )
    })
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

    let wrong = tokio::task::block_in_place(|| {
        invoke(
            "test_connection",
            json!({"source": source, "clientSecret": "wrong-value~1"}),
        )
    })
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
