//! Before the cut-over: where each migrated domain's mail goes today. [`MxLookup`] asks DNS for
//! the MX records of every domain at once (RFC 1035 §3.3.9), each under one short budget, so a
//! checklist never hangs on a slow or silent server; a domain without an answer gets a plain
//! reason ([`DomainMx::error`]), never a failure of the whole list.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

use crate::project::DomainMx;

/// How long one domain's lookup may take, retries included, before it is reported unanswered.
pub const MX_LOOKUP_BUDGET: Duration = Duration::from_secs(4);

/// Why the lookup could not be set up at all (each domain's own failure is its `error`).
#[derive(Debug, thiserror::Error)]
pub enum CutoverError {
    #[error("cannot read this computer's DNS configuration: {0}")]
    SystemConfig(String),
}

/// MX lookups through one resolver configuration.
#[derive(Clone)]
pub struct MxLookup {
    resolver: TokioResolver,
    budget: Duration,
}

impl MxLookup {
    /// The system's resolver configuration (`/etc/resolv.conf` on Unix, the registry on
    /// Windows, the system settings on macOS); the hosts file is not consulted (it holds no MX).
    pub fn system(budget: Duration) -> Result<Self, CutoverError> {
        let mut builder = TokioResolver::builder_tokio()
            .map_err(|e| CutoverError::SystemConfig(e.to_string()))?;
        tune(builder.options_mut(), budget);
        let resolver = builder
            .build()
            .map_err(|e| CutoverError::SystemConfig(e.to_string()))?;
        Ok(MxLookup { resolver, budget })
    }

    /// The name servers at `servers` over UDP only (tests point this at a loopback responder).
    pub fn with_servers(servers: &[SocketAddr], budget: Duration) -> Result<Self, CutoverError> {
        let name_servers = servers
            .iter()
            .map(|addr| {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                NameServerConfig::new(addr.ip(), true, vec![udp])
            })
            .collect();
        let mut builder = TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(name_servers),
            Default::default(),
        );
        tune(builder.options_mut(), budget);
        let resolver = builder
            .build()
            .map_err(|e| CutoverError::SystemConfig(e.to_string()))?;
        Ok(MxLookup { resolver, budget })
    }

    /// Every domain's mail exchangers, all looked up at once, in the order given (each list
    /// sorted by preference, lowest first, then by name; names without the final dot).
    pub async fn domains(&self, domains: &[String]) -> Vec<DomainMx> {
        futures_util::future::join_all(domains.iter().map(|d| self.domain(d))).await
    }

    /// One domain's mail exchangers, or why there are none.
    pub async fn domain(&self, domain: &str) -> DomainMx {
        // A fully qualified name: the search list of resolv.conf is never appended.
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        let answer = tokio::time::timeout(self.budget, self.resolver.mx_lookup(fqdn)).await;
        let (mx, error) = match answer {
            Err(_) => (Vec::new(), Some(timed_out(self.budget))),
            Ok(Err(e)) => (Vec::new(), Some(reason(&e, self.budget))),
            Ok(Ok(lookup)) => {
                let mut found: Vec<(u16, String)> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some((
                            mx.preference,
                            mx.exchange.to_ascii().trim_end_matches('.').to_lowercase(),
                        )),
                        _ => None,
                    })
                    .collect();
                found.sort();
                found.dedup();
                if found.is_empty() {
                    (Vec::new(), Some(NO_MX.to_string()))
                } else {
                    (found.into_iter().map(|(_, host)| host).collect(), None)
                }
            }
        };
        DomainMx {
            domain: domain.to_string(),
            mx,
            error,
        }
    }
}

/// Every domain's mail exchangers through `lookup`, or, when it could not be set up, the
/// same reason for each domain.
pub async fn mx_of(lookup: Result<MxLookup, CutoverError>, domains: &[String]) -> Vec<DomainMx> {
    match lookup {
        Ok(lookup) => lookup.domains(domains).await,
        Err(e) => domains
            .iter()
            .map(|domain| DomainMx {
                domain: domain.clone(),
                mx: Vec::new(),
                error: Some(e.to_string()),
            })
            .collect(),
    }
}

/// The domains whose mail moves: those of the plan's mailbox addresses and the domain map's
/// Microsoft 365 side, lower-cased, sorted, once each.
pub fn domains_to_check<'a>(
    addresses: &'a [String],
    mapped: impl IntoIterator<Item = &'a String>,
) -> Vec<String> {
    let mut domains: Vec<String> = addresses
        .iter()
        .filter_map(|a| a.rsplit_once('@').map(|(_, d)| d))
        .chain(mapped.into_iter().map(String::as_str))
        .map(|d| d.trim().trim_end_matches('.').to_lowercase())
        .filter(|d| !d.is_empty())
        .collect();
    domains.sort();
    domains.dedup();
    domains
}

const NO_MX: &str = "no MX records: mail for this domain goes nowhere (or to its A record)";

/// One attempt per server within the budget, no cache across checklists (records change
/// during a cut-over and the list is asked for again to see them).
fn tune(opts: &mut ResolverOpts, budget: Duration) {
    opts.timeout = budget;
    opts.attempts = 1;
    opts.cache_size = 0;
    opts.use_hosts_file = ResolveHosts::Never;
}

fn timed_out(budget: Duration) -> String {
    format!(
        "no answer from the DNS server within {} s",
        budget.as_secs()
    )
}

/// The plain reason for a failed lookup: the response code a server gave (RFC 1035 §4.1.1),
/// or that none answered.
fn reason(e: &NetError, budget: Duration) -> String {
    if e.is_nx_domain() {
        return "the domain does not exist (NXDOMAIN)".into();
    }
    if e.is_no_records_found() {
        return NO_MX.into();
    }
    match e {
        NetError::Timeout => timed_out(budget),
        NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => {
            "the DNS server failed to answer (SERVFAIL)".into()
        }
        NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => {
            "the DNS server refused the query (REFUSED)".into()
        }
        NetError::Dns(DnsError::ResponseCode(code)) => {
            format!("the DNS server answered {code}")
        }
        other => format!("lookup failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_domains_to_check_are_the_plans_and_the_maps_once_each() {
        let addresses = vec![
            "a@Contoso.com".to_string(),
            "b@contoso.com".to_string(),
            "no-at-sign".to_string(),
            "c@fabrikam.com".to_string(),
        ];
        let mapped = ["contoso.com".to_string(), "northwind.com.".to_string()];
        assert_eq!(
            domains_to_check(&addresses, &mapped),
            vec!["contoso.com", "fabrikam.com", "northwind.com"]
        );
    }
}
