//! Throttling and faults as Exchange Online answers them, latency, and the request log.

use crate::common;

use std::time::{Duration, Instant};

use migrator_sim::{Faults, MailboxLimits, SimConfig, TenantSpec};
use serde_json::Value;

fn small() -> TenantSpec {
    TenantSpec {
        users: 2,
        messages_per_user: 20,
        max_attachment: 16 * 1024,
        ..TenantSpec::default()
    }
}

#[tokio::test]
async fn a_fifth_concurrent_request_to_one_mailbox_is_429_but_other_mailboxes_are_not() {
    let s = common::start(SimConfig {
        tenant: small(),
        latency: Duration::from_millis(300),
        limits: Some(MailboxLimits::default()),
        ..SimConfig::default()
    })
    .await;
    let users = s.sim.tenant().users.clone();
    let path = |u: &str| format!("/v1.0/users/{u}/mailFolders/inbox");
    let mut calls = Vec::new();
    for _ in 0..6 {
        calls.push(s.get(&path(&users[0].user_principal_name)).send());
    }
    calls.push(s.get(&path(&users[1].id)).send());
    let responses = futures_util::future::join_all(calls).await;
    let mut ok = 0;
    let mut throttled = 0;
    for r in &responses[..6] {
        let r = r.as_ref().unwrap();
        match r.status().as_u16() {
            200 => ok += 1,
            429 => {
                throttled += 1;
                let after: f64 = r.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(after > 0.0);
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, throttled), (4, 2));
    assert_eq!(
        responses[6].as_ref().unwrap().status(),
        200,
        "mailboxes are independent"
    );
    drop(responses);
    let log = s.sim.requests();
    let refused: Vec<_> = log.iter().filter(|r| r.status == 429).collect();
    assert_eq!(refused.len(), 2);
    assert!(refused
        .iter()
        .all(|r| r.mailbox.as_deref() == Some(users[0].id.as_str())));
    assert!(refused.iter().all(|r| r.retry_after.is_some()));
    // The message is Exchange's.
    let r = futures_util::future::join_all((0..5).map(|_| s.get(&path(&users[0].id)).send())).await;
    let body: Value = r
        .into_iter()
        .map(|r| r.unwrap())
        .find(|r| r.status() == 429)
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["error"]["code"], "ApplicationThrottled");
    assert_eq!(
        body["error"]["message"],
        "Application is over its MailboxConcurrency limit."
    );
}

#[tokio::test]
async fn a_slow_value_body_holds_its_slot_until_it_is_read() {
    let s = common::start(SimConfig {
        tenant: small(),
        limits: Some(MailboxLimits {
            max_in_flight: 1,
            ..MailboxLimits::default()
        }),
        ..SimConfig::default()
    })
    .await;
    let user = s.sim.tenant().users[0].clone();
    let m = user
        .folders
        .iter()
        .flat_map(|f| &f.messages)
        .max_by_key(|m| m.mime.len())
        .unwrap()
        .clone();
    let value = format!("/v1.0/users/{}/messages/{}/$value", user.id, m.id);
    let first = s.get(&value).send().await.unwrap();
    assert_eq!(first.status(), 200);
    // The first body has not been read: the mailbox's only slot is still taken... unless the
    // whole body already fit in the socket buffers, in which case the slot is free again.
    let second = s.get(&value).send().await.unwrap();
    let in_flight_while_unread = second.status() == 429;
    let bytes = first.bytes().await.unwrap();
    assert_eq!(bytes, m.mime.bytes());
    if in_flight_while_unread {
        let third = s.get(&value).send().await.unwrap();
        assert_eq!(
            third.status(),
            200,
            "the slot is released once the body is sent"
        );
    }
}

#[tokio::test]
async fn the_request_budget_answers_429_until_the_window_frees_a_slot() {
    for fractional in [false, true] {
        let s = common::start(SimConfig {
            tenant: small(),
            limits: Some(MailboxLimits {
                max_in_flight: 4,
                budget: 5,
                window: Duration::from_secs(30),
            }),
            fractional_retry_after: fractional,
            ..SimConfig::default()
        })
        .await;
        let user = s.sim.tenant().users[0].id.clone();
        for _ in 0..5 {
            let r = s
                .get(&format!("/v1.0/users/{user}/mailFolders"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        let r = s
            .get(&format!("/v1.0/users/{user}/mailFolders"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 429);
        let header = r.headers()["retry-after"].to_str().unwrap().to_string();
        let after: f64 = header.parse().unwrap();
        assert!(after > 25.0 && after <= 30.0, "{header}");
        assert_eq!(header.contains('.'), fractional, "{header}");
        // The directory is not an Outlook resource: not counted.
        let r = s.get(&format!("/v1.0/users/{user}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
}

#[tokio::test]
async fn injected_faults_answer_503_504_and_cut_bodies() {
    let faults = |f: Faults| SimConfig {
        tenant: small(),
        faults: f,
        ..SimConfig::default()
    };
    let s = common::start(faults(Faults {
        error_rate_503: 1.0,
        ..Faults::default()
    }))
    .await;
    let r = s.get("/v1.0/users").send().await.unwrap();
    assert_eq!(r.status(), 503);
    let s = common::start(faults(Faults {
        error_rate_504: 1.0,
        ..Faults::default()
    }))
    .await;
    assert_eq!(s.get("/v1.0/users").send().await.unwrap().status(), 504);
    let s = common::start(faults(Faults {
        error_rate_429: 1.0,
        ..Faults::default()
    }))
    .await;
    let r = s.get("/v1.0/users").send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));

    let s = common::start(faults(Faults {
        reset_rate: 1.0,
        value_fails_above: Some(30_000),
        ..Faults::default()
    }))
    .await;
    let user = s.sim.tenant().users[0].clone();
    let messages: Vec<_> = user
        .folders
        .iter()
        .flat_map(|f| &f.messages)
        .cloned()
        .collect();
    let big = messages.iter().find(|m| m.mime.len() > 30_000).unwrap();
    let r = s
        .get(&format!(
            "/v1.0/users/{}/messages/{}/$value",
            user.id, big.id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    let small = messages
        .iter()
        .find(|m| m.mime.len() > 16 * 1024 * 2 - 1 && m.mime.len() <= 30_000)
        .or_else(|| messages.iter().find(|m| m.mime.len() <= 30_000))
        .unwrap();
    let r = s
        .get(&format!(
            "/v1.0/users/{}/messages/{}/$value",
            user.id, small.id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.bytes().await.is_err(),
        "the body is cut before Content-Length"
    );
}

#[tokio::test]
async fn latency_is_added_before_answering() {
    let s = common::start(SimConfig {
        tenant: small(),
        latency: Duration::from_millis(150),
        jitter: Duration::from_millis(50),
        ..SimConfig::default()
    })
    .await;
    let started = Instant::now();
    assert_eq!(s.get("/v1.0/users").send().await.unwrap().status(), 200);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(100), "{took:?}");
}

#[tokio::test]
async fn the_request_log_has_every_request_in_order() {
    let s = common::start(SimConfig {
        tenant: small(),
        ..SimConfig::default()
    })
    .await;
    let user = s.sim.tenant().users[1].clone();
    s.get(&format!(
        "/v1.0/users/{}/mailFolders?$top=2",
        user.user_principal_name
    ))
    .send()
    .await
    .unwrap();
    s.get("/v1.0/users/unknown@contoso.com/mailFolders")
        .send()
        .await
        .unwrap();
    s.get("/v1.0/domains").send().await.unwrap();
    let log = s.sim.requests();
    assert_eq!(log.len(), 4, "token + 3 Graph calls");
    assert_eq!(log[0].method, "POST");
    assert!(log[0].path_and_query.ends_with("/oauth2/v2.0/token"));
    assert_eq!(log[0].status, 200);
    assert_eq!(log[1].method, "GET");
    assert!(log[1].path_and_query.ends_with("/mailFolders?$top=2"));
    assert_eq!(
        log[1].mailbox.as_deref(),
        Some(user.id.as_str()),
        "UPN resolved to the id"
    );
    assert_eq!(log[1].status, 200);
    assert_eq!(log[2].mailbox.as_deref(), Some("unknown@contoso.com"));
    assert_eq!(log[2].status, 404);
    assert_eq!(log[3].mailbox, None);
    for w in log.windows(2) {
        assert!(w[0].at <= w[1].at);
    }
    assert!(log
        .iter()
        .all(|r| r.finished >= r.at && r.retry_after.is_none()));
}

/// The app's limit across the tenant (throttling-limits.md, global limits): requests to any
/// mailboxes and the directory share it; one more in the window is 429 `TooManyRequests`
/// with `Retry-After`; with `announce`, responses past 0.8 of it carry
/// `x-ms-throttle-limit-percentage` and the 429 `x-ms-throttle-scope: Application/...`.
#[tokio::test]
async fn the_app_limit_spans_every_mailbox_and_announces_only_when_asked() {
    for announce in [false, true] {
        let s = common::start(SimConfig {
            tenant: small(),
            app_limit: Some(migrator_sim::AppLimit {
                budget: 5,
                window: Duration::from_secs(60),
                announce,
            }),
            ..SimConfig::default()
        })
        .await;
        let users = s.sim.tenant().users.clone();
        let paths = [
            format!("/v1.0/users/{}/mailFolders/inbox", users[0].id),
            format!("/v1.0/users/{}/mailFolders/inbox", users[1].id),
            "/v1.0/users".to_string(),
            format!("/v1.0/users/{}/mailFolders", users[0].id),
            format!("/v1.0/users/{}/mailFolders", users[1].id),
            format!("/v1.0/users/{}/mailFolders/inbox", users[1].id),
        ];
        let mut percentages = Vec::new();
        for (i, path) in paths.iter().enumerate() {
            let r = s.get(path).send().await.unwrap();
            let percentage = r
                .headers()
                .get("x-ms-throttle-limit-percentage")
                .map(|v| v.to_str().unwrap().to_string());
            if i < 5 {
                assert_eq!(r.status(), 200, "{path}");
                percentages.push(percentage);
                continue;
            }
            assert_eq!(r.status(), 429, "the sixth request of the app");
            let after: f64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(after > 0.0 && after <= 60.0, "{after}");
            let scope = r
                .headers()
                .get("x-ms-throttle-scope")
                .map(|v| v.to_str().unwrap().to_string());
            assert_eq!(
                scope.is_some_and(|s| s.starts_with("Application/")),
                announce
            );
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "TooManyRequests");
        }
        let expected: Vec<Option<String>> = if announce {
            vec![None, None, None, None, Some("1.00".into())]
        } else {
            vec![None; 5]
        };
        assert_eq!(percentages, expected, "announce={announce}");
        let logged = s.sim.requests().iter().filter(|r| r.app_throttled).count();
        assert_eq!(logged, 1, "the log names the app's 429");
    }
}
