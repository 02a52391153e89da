//! Settings the engine runs with. The TOML file format for headless runs builds on these.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// The Microsoft cloud a tenant lives in. Each has its own login and Graph hosts and tokens are
/// not interchangeable between them (Graph docs, concepts/deployments.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum Cloud {
    /// Worldwide and GCC (moderate).
    #[default]
    Global,
    /// US Government GCC High (L4).
    UsGovHigh,
    /// US Government DoD (L5).
    UsGovDod,
    /// China, operated by 21Vianet.
    China,
}

impl Cloud {
    /// Login host of this cloud, without a trailing slash.
    pub fn login_url(self) -> &'static str {
        match self {
            Cloud::Global => "https://login.microsoftonline.com",
            Cloud::UsGovHigh | Cloud::UsGovDod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }

    /// Graph host of this cloud, without a trailing slash.
    pub fn graph_url(self) -> &'static str {
        match self {
            Cloud::Global => "https://graph.microsoft.com",
            Cloud::UsGovHigh => "https://graph.microsoft.us",
            Cloud::UsGovDod => "https://dod-graph.microsoft.us",
            Cloud::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }
}

/// Where to read from: one Entra app registration in one tenant. The secret is not here; it
/// comes from the keychain or the environment as a [`crate::secrets::Secret`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct SourceConfig {
    /// Directory (tenant) ID: a GUID or a verified domain such as `contoso.onmicrosoft.com`.
    pub tenant_id: String,
    /// Application (client) ID of the app registration.
    pub client_id: String,
    #[serde(default)]
    pub cloud: Cloud,
    /// Overrides the cloud's login host (a proxy, or the simulator in tests).
    #[serde(default)]
    #[ts(optional)]
    pub login_url: Option<String>,
    /// Overrides the cloud's Graph host.
    #[serde(default)]
    #[ts(optional)]
    pub graph_url: Option<String>,
}

impl SourceConfig {
    /// The login host in effect, without a trailing slash.
    pub fn login_base(&self) -> String {
        trim(self.login_url.as_deref().unwrap_or(self.cloud.login_url()))
    }

    /// The Graph host in effect, without a trailing slash.
    pub fn graph_base(&self) -> String {
        trim(self.graph_url.as_deref().unwrap_or(self.cloud.graph_url()))
    }
}

fn trim(url: &str) -> String {
    url.trim().trim_end_matches('/').to_string()
}

/// Checks the shape of a tenant ID before any request: a GUID or a DNS name.
pub fn tenant_id_shape_ok(tenant: &str) -> bool {
    is_guid(tenant) || is_dns_name(tenant)
}

/// True for the 8-4-4-4-12 hexadecimal form of a GUID.
pub fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn is_dns_name(s: &str) -> bool {
    s.len() <= 253
        && s.contains('.')
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_shapes() {
        assert!(tenant_id_shape_ok("72f988bf-86f1-41af-91ab-2d7cd011db47"));
        assert!(tenant_id_shape_ok("contoso.onmicrosoft.com"));
        assert!(!tenant_id_shape_ok("contoso"));
        assert!(!tenant_id_shape_ok("72f988bf-86f1-41af-91ab-2d7cd011db4"));
        assert!(!tenant_id_shape_ok("https://login.microsoftonline.com/x"));
    }

    #[test]
    fn overrides_win_and_lose_trailing_slash() {
        let mut c = SourceConfig {
            tenant_id: "t".into(),
            client_id: "c".into(),
            cloud: Cloud::China,
            login_url: None,
            graph_url: Some("http://127.0.0.1:9/".into()),
        };
        assert_eq!(c.login_base(), "https://login.chinacloudapi.cn");
        assert_eq!(c.graph_base(), "http://127.0.0.1:9");
        c.cloud = Cloud::UsGovDod;
        assert_eq!(c.login_base(), "https://login.microsoftonline.us");
    }
}
