//! The cut-over checklist's MX lookups (issue 16, "Passes over days": the MX records of each
//! domain, looked up, showing where they point) against a DNS responder on 127.0.0.1: no test
//! ever queries a non-loopback address. The responder answers per domain as a real server
//! could (RFC 1035 §4.1.1 response codes): records, NXDOMAIN, SERVFAIL, an empty answer, or
//! nothing at all.

use crate::support;

use std::collections::HashMap;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use migrator_core::cutover::MxLookup;
use migrator_core::project::DomainMx;
use support::dns::{responder, Answer};

fn zone() -> HashMap<&'static str, Answer> {
    HashMap::from([
        (
            // Listed worst first: the lookup must sort by preference, not keep wire order.
            "contoso.com",
            Answer::Mx(vec![
                (20, "backup.contoso.com"),
                (10, "contoso-com.mail.protection.outlook.com"),
            ]),
        ),
        ("fabrikam.com", Answer::Code(ResponseCode::ServFail)),
        ("silent.example", Answer::Silence),
        ("nomail.example", Answer::Mx(Vec::new())),
    ])
}

#[tokio::test]
async fn mx_records_come_back_sorted_by_preference() {
    let dns = responder(zone()).await;
    let lookup = MxLookup::with_servers(&[dns], Duration::from_secs(3)).expect("resolver");
    let got = lookup.domain("Contoso.com").await;
    assert_eq!(
        got,
        DomainMx {
            domain: "Contoso.com".into(),
            mx: vec![
                "contoso-com.mail.protection.outlook.com".into(),
                "backup.contoso.com".into()
            ],
            error: None,
        }
    );
}

#[tokio::test]
async fn each_domain_gets_its_own_plain_reason_and_none_holds_up_the_others() {
    let dns = responder(zone()).await;
    let budget = Duration::from_secs(2);
    let lookup = MxLookup::with_servers(&[dns], budget).expect("resolver");
    let domains: Vec<String> = [
        "silent.example",
        "contoso.com",
        "gone.example",
        "fabrikam.com",
        "nomail.example",
    ]
    .iter()
    .map(|d| d.to_string())
    .collect();
    let got = lookup.domains(&domains).await;
    let by: Vec<(&str, Vec<&str>, Option<&str>)> = got
        .iter()
        .map(|d| {
            (
                d.domain.as_str(),
                d.mx.iter().map(String::as_str).collect(),
                d.error.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        by,
        vec![
            (
                "silent.example",
                vec![],
                Some("no answer from the DNS server within 2 s")
            ),
            (
                "contoso.com",
                vec![
                    "contoso-com.mail.protection.outlook.com",
                    "backup.contoso.com"
                ],
                None
            ),
            (
                "gone.example",
                vec![],
                Some("the domain does not exist (NXDOMAIN)")
            ),
            (
                "fabrikam.com",
                vec![],
                Some("the DNS server failed to answer (SERVFAIL)")
            ),
            (
                "nomail.example",
                vec![],
                Some("no MX records: mail for this domain goes nowhere (or to its A record)")
            ),
        ]
    );
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_timeout_not_a_hang() {
    // A bound socket nobody reads: queries arrive and are never answered.
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = silent.local_addr().expect("addr");
    let lookup = MxLookup::with_servers(&[addr], Duration::from_secs(1)).expect("resolver");
    let got = lookup.domain("contoso.com").await;
    assert!(got.mx.is_empty());
    assert_eq!(
        got.error.as_deref(),
        Some("no answer from the DNS server within 1 s")
    );
    drop(silent);
}
