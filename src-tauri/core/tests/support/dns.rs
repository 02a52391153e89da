//! A DNS responder on 127.0.0.1 for the MX lookups' tests (the core's cut-over checks and
//! `m365-migrate check`): no test ever queries a non-loopback address. It answers per domain
//! as a real server could (RFC 1035 §4.1.1 response codes): records, NXDOMAIN, SERVFAIL, an
//! empty answer, or nothing at all.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::MX;
use hickory_proto::rr::{Name, RData, Record};
use tokio::net::UdpSocket;

/// How the responder treats a query for one domain.
#[derive(Clone)]
pub enum Answer {
    Mx(Vec<(u16, &'static str)>),
    Code(ResponseCode),
    /// The query is read and never answered.
    Silence,
}

/// A UDP DNS responder on an ephemeral loopback port; a domain it does not know is NXDOMAIN.
pub async fn responder(zone: HashMap<&'static str, Answer>) -> SocketAddr {
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind udp"));
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(q) = query.queries.first().cloned() else {
                continue;
            };
            let asked = q.name().to_ascii().trim_end_matches('.').to_lowercase();
            let answer = zone
                .get(asked.as_str())
                .cloned()
                .unwrap_or(Answer::Code(ResponseCode::NXDomain));
            let mut reply = Message::new(
                query.metadata.id,
                MessageType::Response,
                query.metadata.op_code,
            );
            reply.metadata.recursion_desired = query.metadata.recursion_desired;
            reply.metadata.recursion_available = true;
            reply.add_query(q.clone());
            match answer {
                Answer::Silence => continue,
                Answer::Code(code) => reply.metadata.response_code = code,
                Answer::Mx(records) => {
                    for (preference, host) in records {
                        let exchange = Name::from_ascii(format!("{host}.")).expect("name");
                        reply.add_answer(Record::from_rdata(
                            q.name().clone(),
                            300,
                            RData::MX(MX::new(preference, exchange)),
                        ));
                    }
                }
            }
            let bytes = reply.to_vec().expect("encode");
            let _ = socket.send_to(&bytes, peer).await;
        }
    });
    addr
}
