//! Shared helpers: start a simulator, sign in, call Graph.
#![allow(dead_code)]

use migrator_sim::{SimConfig, SimServer};
use serde_json::Value;

pub struct Session {
    pub sim: SimServer,
    pub http: reqwest::Client,
    pub token: String,
}

pub async fn start(config: SimConfig) -> Session {
    let sim = SimServer::start(config).await.expect("simulator starts");
    let http = reqwest::Client::new();
    let token = token(&sim, &http).await;
    Session { sim, http, token }
}

pub async fn token(sim: &SimServer, http: &reqwest::Client) -> String {
    let response = http
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            sim.url(),
            sim.tenant_id()
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", sim.client_id()),
            ("client_secret", sim.client_secret()),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

impl Session {
    /// `path` is relative to the Graph root (`/v1.0/...`) or an absolute link.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{}", self.sim.url(), path)
        };
        self.http.get(url).bearer_auth(&self.token)
    }

    pub async fn json(&self, path: &str) -> Value {
        let r = self.get(path).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }

    /// Follows `@odata.nextLink` to the end; returns every item and the number of pages.
    pub async fn all(&self, path: &str, prefer: Option<&str>) -> (Vec<Value>, usize) {
        let mut items = Vec::new();
        let mut next = Some(path.to_string());
        let mut pages = 0;
        while let Some(link) = next {
            let mut req = self.get(&link);
            if let Some(p) = prefer {
                req = req.header("Prefer", p);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200, "GET {link}");
            let body: Value = r.json().await.unwrap();
            items.extend(body["value"].as_array().unwrap().iter().cloned());
            next = body["@odata.nextLink"].as_str().map(str::to_string);
            if let Some(n) = &next {
                assert!(n.starts_with(&self.sim.url()), "nextLink is absolute: {n}");
            }
            pages += 1;
        }
        (items, pages)
    }
}
