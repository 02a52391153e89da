//! The tenant generator: seeded and deterministic (the same [`TenantSpec`] gives the same
//! bytes), with the shapes real tenants have: nested, unicode and awkward folder names,
//! hidden and search folders, messages of realistic sizes with attachments, a few without a
//! Message-ID and two distinct ones sharing one.

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::OffsetDateTime;

use crate::mime::{build_message, MessageParts};

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantSpec {
    pub seed: u64,
    pub users: usize,
    pub messages_per_user: usize,
    /// Verified domains users get addresses in (the `onmicrosoft.com` one is added).
    pub domains: Vec<String>,
    /// Largest attachment generated, in bytes.
    pub max_attachment: usize,
    /// How message sizes are distributed.
    pub sizes: SizeProfile,
}

/// How message sizes are distributed.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum SizeProfile {
    /// Bodies up to ~60 KB, one message in ten with an attachment up to `max_attachment`
    /// (heavily skewed to small). Small and quick to generate: tests and the demo.
    #[default]
    Compact,
    /// Closer to real mailboxes, for benchmarks: log-normal bodies (median ~12 KB), one message
    /// in ten with a log-normal attachment (median ~100 KB, capped at `max_attachment`), which
    /// gives a median message of a few tens of KB and a tail of multi-MB messages. Every
    /// `giant_every`-th message of a mailbox (if set) carries an attachment of exactly
    /// `max_attachment`, so large mailboxes surely hold the largest size.
    Realistic { giant_every: Option<usize> },
}

impl Default for TenantSpec {
    fn default() -> Self {
        TenantSpec {
            seed: 365,
            users: 3,
            messages_per_user: 100,
            domains: vec!["contoso.com".into()],
            max_attachment: 256 * 1024,
            sizes: SizeProfile::Compact,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    pub id: String,
    pub domains: Vec<Domain>,
    pub users: Vec<User>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Domain {
    pub id: String,
    pub is_default: bool,
    pub is_initial: bool,
    pub is_verified: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: String,
    pub user_principal_name: String,
    pub mail: String,
    pub display_name: String,
    pub account_enabled: bool,
    pub proxy_addresses: Vec<String>,
    /// Flat list; the tree is given by `parent_id` (`None` = child of msgfolderroot).
    pub folders: Vec<MailFolder>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MailFolder {
    pub id: String,
    pub parent_id: Option<String>,
    pub display_name: String,
    pub well_known_name: Option<String>,
    pub is_hidden: bool,
    /// A search folder: listed by Graph, holds no items of its own.
    pub is_search_folder: bool,
    pub messages: Vec<Message>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: String,
    pub internet_message_id: Option<String>,
    pub received: OffsetDateTime,
    pub is_read: bool,
    pub is_draft: bool,
    /// notFlagged | flagged | complete
    pub flag_status: String,
    pub categories: Vec<String>,
    pub importance: String,
    pub subject: String,
    pub mime: Bytes,
}

const FIRST: [&str; 12] = [
    "Adele", "Alex", "Diego", "Grady", "Isaiah", "Johanna", "Lee", "Lidia", "Megan", "Nestor",
    "Patti", "Zoë",
];
const LAST: [&str; 10] = [
    "Vance",
    "Wilber",
    "Siciliani",
    "Archie",
    "Langer",
    "Lorenz",
    "Gu",
    "Holloway",
    "Bowen",
    "Müller",
];
const SUBJECTS: [&str; 10] = [
    "Quarterly report",
    "Re: Lunch on Friday?",
    "Angebot für Projekt Ä",
    "会議の議事録",
    "Invoice 2024-0042",
    "Fwd: Travel plans ✈",
    "Your order has shipped",
    "Draft: proposal",
    "Welcome to the team",
    "Meeting notes",
];

/// A Graph-like opaque id (base64url of random bytes, with the usual `AAMk` prefix).
fn graph_id(rng: &mut StdRng, prefix: &str) -> String {
    use base64::Engine as _;
    let bytes: [u8; 33] = rng.random();
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// A random GUID in its 8-4-4-4-12 form.
pub fn guid(rng: &mut StdRng) -> String {
    let b: [u8; 16] = rng.random();
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
        b[14], b[15]
    )
}

/// Folder template: (name, parent index, well-known name, hidden, search, share of messages).
type FolderTemplate = (
    &'static str,
    Option<usize>,
    Option<&'static str>,
    bool,
    bool,
    u32,
);

const FOLDERS: [FolderTemplate; 19] = [
    ("Inbox", None, Some("inbox"), false, false, 30),
    ("Projects", Some(0), None, false, false, 6),
    ("2024", Some(1), None, false, false, 4),
    ("Q1", Some(2), None, false, false, 3),
    ("Sent Items", None, Some("sentitems"), false, false, 14),
    ("Drafts", None, Some("drafts"), false, false, 3),
    ("Deleted Items", None, Some("deleteditems"), false, false, 5),
    ("Junk Email", None, Some("junkemail"), false, false, 3),
    ("Archive", None, Some("archive"), false, false, 6),
    ("Rechnungen äöü", None, None, false, false, 4),
    ("日本語", None, None, false, false, 3),
    ("Ideas 💡", None, None, false, false, 2),
    ("a/b", Some(0), None, false, false, 2),
    ("v1.2", None, None, false, false, 2),
    ("100% & more", None, None, false, false, 2),
    ("*starred*", None, None, false, false, 2),
    ("Sent", None, None, false, false, 2),
    ("Sync state", None, None, true, false, 1),
    ("Unread mail", None, None, false, true, 0),
];

/// Generates a tenant from its spec.
pub fn generate_tenant(spec: &TenantSpec) -> Tenant {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let tenant_id = guid(&mut rng);
    let primary = spec
        .domains
        .first()
        .cloned()
        .unwrap_or_else(|| "contoso.com".into());
    let initial = format!(
        "{}.onmicrosoft.com",
        primary.split('.').next().unwrap_or("contoso")
    );
    let mut domains: Vec<Domain> = spec
        .domains
        .iter()
        .enumerate()
        .map(|(i, d)| Domain {
            id: d.clone(),
            is_default: i == 0,
            is_initial: false,
            is_verified: true,
        })
        .collect();
    domains.push(Domain {
        id: initial.clone(),
        is_default: spec.domains.is_empty(),
        is_initial: true,
        is_verified: true,
    });

    let mut shared_message_id: Option<String> = None;
    let users = (0..spec.users)
        .map(|u| {
            let first = FIRST[u % FIRST.len()];
            let last = LAST[(u / FIRST.len() + u) % LAST.len()];
            let domain = &spec
                .domains
                .get(u % spec.domains.len().max(1))
                .cloned()
                .unwrap_or(primary.clone());
            let local = format!(
                "{}.{}{}",
                ascii(first),
                ascii(last),
                if u >= FIRST.len() {
                    (u / FIRST.len()).to_string()
                } else {
                    String::new()
                }
            )
            .to_lowercase();
            let mail = format!("{local}@{domain}");
            let mut folders: Vec<MailFolder> = FOLDERS
                .iter()
                .map(|(name, _, wk, hidden, search, _)| MailFolder {
                    id: graph_id(&mut rng, "AAMkAGF"),
                    parent_id: None,
                    display_name: name.to_string(),
                    well_known_name: wk.map(str::to_string),
                    is_hidden: *hidden,
                    is_search_folder: *search,
                    messages: Vec::new(),
                })
                .collect();
            for (i, (_, parent, ..)) in FOLDERS.iter().enumerate() {
                folders[i].parent_id = parent.map(|p| folders[p].id.clone());
            }
            let weights: Vec<u32> = FOLDERS.iter().map(|f| f.5).collect();
            let total_weight: u32 = weights.iter().sum();
            for n in 0..spec.messages_per_user {
                let mut pick = rng.random_range(0..total_weight);
                let mut folder = 0;
                for (i, w) in weights.iter().enumerate() {
                    if pick < *w {
                        folder = i;
                        break;
                    }
                    pick -= w;
                }
                let is_drafts = FOLDERS[folder].2 == Some("drafts");
                let received = OffsetDateTime::from_unix_timestamp(
                    1_546_300_800 + rng.random_range(0..190_000_000),
                )
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
                let subject = SUBJECTS[rng.random_range(0..SUBJECTS.len())].to_string();
                let message_id = match n % 37 {
                    5 => None,
                    11 => Some(
                        shared_message_id
                            .get_or_insert_with(|| format!("<shared-{}@{domain}>", spec.seed))
                            .clone(),
                    ),
                    _ => Some(format!("<{}.{n}.{u}@{domain}>", rng.random::<u64>())),
                };
                let from = if FOLDERS[folder].2 == Some("sentitems") || is_drafts {
                    format!("{first} {last} <{mail}>")
                } else {
                    let o = rng.random_range(0..FIRST.len());
                    format!(
                        "{} {} <{}@fabrikam.com>",
                        FIRST[o],
                        LAST[o % LAST.len()],
                        ascii(FIRST[o]).to_lowercase()
                    )
                };
                let (body_len, attachment) = message_size(&mut rng, spec, n);
                let mime = build_message(
                    &mut rng,
                    &MessageParts {
                        from: &from,
                        to: &format!("{first} {last} <{mail}>"),
                        subject: &subject,
                        date: received,
                        message_id: message_id.as_deref(),
                        body_len,
                        attachment,
                    },
                );
                let flag_status = match rng.random_range(0..12) {
                    0 => "flagged",
                    1 => "complete",
                    _ => "notFlagged",
                };
                let categories = match rng.random_range(0..8) {
                    0 => vec!["Red category".to_string()],
                    1 => vec!["Projekt Ä".to_string(), "Blue category".to_string()],
                    _ => vec![],
                };
                folders[folder].messages.push(Message {
                    id: graph_id(&mut rng, "AAMkAGI"),
                    internet_message_id: message_id,
                    received,
                    is_read: !is_drafts && rng.random_range(0..3) != 0,
                    is_draft: is_drafts,
                    flag_status: flag_status.into(),
                    categories,
                    importance: if rng.random_range(0..10) == 0 {
                        "high"
                    } else {
                        "normal"
                    }
                    .into(),
                    subject,
                    mime,
                });
            }
            User {
                id: guid(&mut rng),
                user_principal_name: mail.clone(),
                display_name: format!("{first} {last}"),
                account_enabled: u % 11 != 10,
                proxy_addresses: vec![format!("SMTP:{mail}"), format!("smtp:{local}@{initial}")],
                mail,
                folders,
            }
        })
        .collect();
    Tenant {
        id: tenant_id,
        domains,
        users,
    }
}

/// The body length and attachment size (if any) of message number `n` of a mailbox.
fn message_size(rng: &mut StdRng, spec: &TenantSpec, n: usize) -> (usize, Option<usize>) {
    match spec.sizes {
        SizeProfile::Compact => {
            let body_len = (rng.random::<f64>().powi(3) * 60_000.0) as usize + 200;
            let attachment = if rng.random_range(0..10) == 0 {
                let size =
                    (rng.random::<f64>().powi(4) * spec.max_attachment as f64) as usize + 1024;
                Some(size.min(spec.max_attachment.max(1024)))
            } else {
                None
            };
            (body_len, attachment)
        }
        SizeProfile::Realistic { giant_every } => {
            let body_len = (log_normal(rng, 12_000.0, 0.8) as usize).clamp(200, 400_000);
            let cap = spec.max_attachment.max(1024);
            let attachment = if giant_every.is_some_and(|g| g > 0 && n % g == g - 1) {
                Some(cap)
            } else if rng.random_range(0..10) == 0 {
                Some((log_normal(rng, 100_000.0, 1.5) as usize).clamp(1024, cap))
            } else {
                None
            };
            (body_len, attachment)
        }
    }
}

/// A log-normal sample with the given median and shape (Box-Muller).
fn log_normal(rng: &mut StdRng, median: f64, sigma: f64) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    median * (sigma * z).exp()
}

fn ascii(name: &str) -> String {
    name.replace('ë', "e").replace('ü', "ue")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_realistic() {
        let spec = TenantSpec::default();
        let a = generate_tenant(&spec);
        let b = generate_tenant(&spec);
        assert_eq!(a, b);
        assert_eq!(a.users.len(), 3);
        let messages: Vec<&Message> = a
            .users
            .iter()
            .flat_map(|u| &u.folders)
            .flat_map(|f| &f.messages)
            .collect();
        assert_eq!(messages.len(), 300);
        assert!(messages.iter().any(|m| m.internet_message_id.is_none()));
        let shared = messages
            .iter()
            .filter(|m| {
                m.internet_message_id
                    .as_deref()
                    .is_some_and(|i| i.starts_with("<shared-"))
            })
            .count();
        assert!(shared >= 2, "two distinct messages share a Message-ID");
        assert!(messages
            .iter()
            .all(|m| m.mime.windows(4).any(|w| w == b"\r\n\r\n")));
        let ids: std::collections::HashSet<_> = messages.iter().map(|m| &m.id).collect();
        assert_eq!(ids.len(), messages.len());
        let other = generate_tenant(&TenantSpec { seed: 1, ..spec });
        assert_ne!(
            other.users[0].folders[0].messages,
            a.users[0].folders[0].messages
        );
    }

    #[test]
    fn realistic_sizes_have_a_median_of_tens_of_kb_and_a_multi_mb_tail() {
        let spec = TenantSpec {
            users: 1,
            messages_per_user: 600,
            max_attachment: 4 * 1024 * 1024,
            sizes: SizeProfile::Realistic {
                giant_every: Some(300),
            },
            ..TenantSpec::default()
        };
        let tenant = generate_tenant(&spec);
        assert_eq!(tenant, generate_tenant(&spec));
        let mut sizes: Vec<usize> = tenant.users[0]
            .folders
            .iter()
            .flat_map(|f| &f.messages)
            .map(|m| m.mime.len())
            .collect();
        sizes.sort_unstable();
        let median = sizes[sizes.len() / 2];
        assert!((10_000..80_000).contains(&median), "median {median}");
        // Two giants (messages 299 and 599); base64 makes them ~4/3 of the attachment.
        let giants = sizes.iter().filter(|s| **s > 5_600_000).count();
        assert!(giants >= 2, "largest {:?}", &sizes[sizes.len() - 3..]);
    }
}
