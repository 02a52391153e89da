//! The tenant generator: seeded and deterministic (the same [`TenantSpec`] gives the same
//! tenant, byte for byte), with the shapes real tenants have: well-known folders, nested,
//! unicode and awkward folder names (`/ . % * &`), a hidden folder and a search folder,
//! messages of realistic sizes (median a few tens of KB, a long tail to a few MB) with
//! attachments, a few without a Message-ID and two distinct ones sharing one.
//!
//! Users and messages are generated from seeds derived from `(seed, user, index)`, so each
//! is independent of the others, and message bytes are produced on demand ([`Mime`]): a
//! tenant of thousands of mailboxes is generated in well under a second per 100k messages
//! and holds only metadata in memory.

use base64::Engine as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::calendar::Calendar;
use crate::groupware::{ContactFolder, GroupwareSpec, TodoList};
use crate::mime::{Mime, Recipe, Shape};

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantSpec {
    pub seed: u64,
    pub users: usize,
    pub messages_per_user: usize,
    /// Verified domains users get addresses in, the first is the default; the initial
    /// `<first label>.onmicrosoft.com` domain is added.
    pub domains: Vec<String>,
    /// Largest attachment generated, in bytes.
    pub max_attachment: usize,
    /// How message sizes are distributed.
    pub sizes: SizeProfile,
    /// Calendars, contacts and To Do tasks per mailbox (generated from their own seeds, so
    /// mail is the same whatever this says).
    pub groupware: GroupwareSpec,
    /// Shared mailboxes after the `users` people (`mailboxSettings.userPurpose` `shared`,
    /// sign-in blocked as Exchange creates them), with mail like anyone's.
    pub shared_mailboxes: usize,
    /// Room mailboxes after the shared ones (`userPurpose` `room`, sign-in blocked).
    pub rooms: usize,
    /// Groups: in turn a Microsoft 365 group, a distribution list, a mail-enabled security
    /// group and a plain security group (no mail), with people, nested groups and an outside
    /// contact as members (see [`Group`]).
    pub groups: usize,
    /// B2B guests after the rooms: `userType` `Guest`, `mail` and the only proxy address in
    /// an outside domain (`…@gmail.com`), a `#EXT#` userPrincipalName, and no Exchange
    /// mailbox in this tenant (learn.microsoft.com/entra/external-id/user-properties).
    pub guests: usize,
    /// Members after the guests whose mailbox Graph cannot reach (unlicensed, hosted
    /// on-premises, soft-deleted): every mailbox call answers 404
    /// `MailboxNotEnabledForRESTAPI` ([`User::has_mailbox`]).
    pub without_mailbox: usize,
    /// The first this many people have an online (In-Place) archive mailbox
    /// ([`User::online_archive`]).
    pub online_archives: usize,
    /// How many messages each mailbox holds.
    pub mailbox_sizes: MailboxSizes,
}

/// How many messages each mailbox holds. A benchmark's choice of tenant shape, not a Graph
/// behaviour: no Microsoft source gives the distribution of mailbox sizes in a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum MailboxSizes {
    /// `messages_per_user` in every mailbox.
    #[default]
    Even,
    /// Heavy-tailed (Pareto with shape `alpha` and minimum `messages_per_user`, capped at
    /// `largest`): most mailboxes small, a few many times larger. The mailbox in the middle
    /// of the list holds exactly `largest`, so the tenant surely has its big one and it is
    /// not listed first.
    HeavyTailed { alpha: f64, largest: usize },
}

impl TenantSpec {
    /// Messages generated for mailbox `u` (people, shared mailboxes and rooms in order).
    pub fn messages_of(&self, u: usize) -> usize {
        match self.mailbox_sizes {
            MailboxSizes::Even => self.messages_per_user,
            MailboxSizes::HeavyTailed { alpha, largest } => {
                if u == (self.users + self.shared_mailboxes + self.rooms) / 2 {
                    return largest;
                }
                // Its own seed, so the messages of a mailbox do not depend on the draw.
                let mut rng = StdRng::seed_from_u64(mix(self.seed ^ 0x5a5a_5a5a, u as u64 + 1));
                let uniform: f64 = rng.random_range(f64::EPSILON..1.0);
                let drawn = self.messages_per_user as f64 / uniform.powf(1.0 / alpha.max(0.1));
                (drawn as usize).min(largest)
            }
        }
    }
}

/// How message sizes are distributed.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum SizeProfile {
    /// Log-normal bodies (median ~6 KB), one message in five with one to three log-normal
    /// attachments (median ~40 KB, capped at `max_attachment`): a median message of ~10 KB
    /// and a long tail. Quick to generate and serve: tests and the demo.
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
            groupware: GroupwareSpec::default(),
            shared_mailboxes: 0,
            rooms: 0,
            groups: 0,
            guests: 0,
            without_mailbox: 0,
            online_archives: 0,
            mailbox_sizes: MailboxSizes::Even,
        }
    }
}

/// A generated tenant. `id` is the tenant (directory) GUID.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    pub id: String,
    pub domains: Vec<Domain>,
    /// People first, then shared mailboxes, then rooms.
    pub users: Vec<User>,
    pub groups: Vec<Group>,
}

/// A group (Graph docs resources/group.md; kinds as in concepts/groups-overview.md).
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub id: String,
    pub display_name: String,
    /// `None` for a group without mail (a plain security group).
    pub mail: Option<String>,
    pub mail_enabled: bool,
    pub security_enabled: bool,
    /// `["Unified"]` for a Microsoft 365 group.
    pub group_types: Vec<String>,
    pub proxy_addresses: Vec<String>,
    /// Direct members, in the order Graph lists them.
    pub members: Vec<GroupMember>,
}

/// A direct member of a group.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupMember {
    /// A user of the tenant, by id.
    User(String),
    /// A nested group, by id.
    Group(String),
    /// An organizational contact: an outside address.
    Contact {
        id: String,
        display_name: String,
        mail: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Domain {
    /// The domain name, e.g. `contoso.com`.
    pub id: String,
    pub is_default: bool,
    pub is_initial: bool,
    pub is_verified: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// A GUID.
    pub id: String,
    pub user_principal_name: String,
    pub mail: String,
    pub display_name: String,
    pub account_enabled: bool,
    /// `mailboxSettings.userPurpose`: `user`, `shared`, `room`, ... (Graph docs
    /// resources/mailboxsettings.md).
    pub purpose: String,
    /// `SMTP:` marks the primary address, `smtp:` the aliases.
    pub proxy_addresses: Vec<String>,
    /// `Member` or `Guest` (Graph docs resources/user.md, `userType`).
    pub user_type: String,
    /// `false`: the user has no Exchange Online mailbox (a guest, an unlicensed or on-premises
    /// user); mailbox calls answer 404 `MailboxNotEnabledForRESTAPI`.
    pub has_mailbox: bool,
    /// The user has an online (In-Place) archive mailbox, which Graph's mail API does not
    /// reach; beta `settings/exchange` names it (`inPlaceArchiveMailboxId`).
    pub online_archive: bool,
    /// Flat list; the tree is given by `parent_id` (`None` = child of msgfolderroot).
    pub folders: Vec<MailFolder>,
    /// The first is the default calendar.
    pub calendars: Vec<Calendar>,
    /// Flat list; the first is the default folder ("Contacts"), the tree is given by
    /// `parent_id`.
    pub contact_folders: Vec<ContactFolder>,
    pub todo_lists: Vec<TodoList>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MailFolder {
    pub id: String,
    /// `None`: a child of msgfolderroot (a top-level folder).
    pub parent_id: Option<String>,
    pub display_name: String,
    /// inbox, sentitems, drafts, … (Graph docs resources/mailfolder.md); usable in paths.
    pub well_known_name: Option<String>,
    pub is_hidden: bool,
    /// A `mailSearchFolder`: listed by Graph, holds no items of its own (its message list
    /// shows matching items of other folders).
    pub is_search_folder: bool,
    /// Newest first, as Graph lists them.
    pub messages: Vec<Message>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The immutable id (what Graph returns with `Prefer: IdType="ImmutableId"`).
    pub id: String,
    /// With angle brackets; `None` when the MIME has no Message-ID header.
    pub internet_message_id: Option<String>,
    pub received: OffsetDateTime,
    pub sent: OffsetDateTime,
    pub is_read: bool,
    pub is_draft: bool,
    /// notFlagged | flagged | complete
    pub flag_status: String,
    pub categories: Vec<String>,
    /// low | normal | high
    pub importance: String,
    pub subject: String,
    /// `Display Name <address>`.
    pub from: String,
    pub to: Vec<String>,
    pub has_attachments: bool,
    /// The exact bytes `$value` returns.
    pub mime: Mime,
    /// PidTagLastVerbExecuted (`Integer 0x1081`, MS-OXOMSG §2.2.1.33): 102 replied, 103
    /// replied to all, 104 forwarded; `None` when never answered. Graph shows it only as an
    /// extended property, never in delta.
    pub last_verb_executed: Option<u32>,
}

impl Message {
    /// A message with the given MIME, other properties read from its headers (Subject,
    /// Message-ID, From, To) or defaulted: unread, not flagged, normal importance.
    pub fn from_mime(
        id: impl Into<String>,
        mime: impl Into<Mime>,
        received: OffsetDateTime,
    ) -> Self {
        let mime = mime.into();
        let bytes = mime.bytes();
        let head_end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(bytes.len());
        let head = String::from_utf8_lossy(&bytes[..head_end]);
        let header = |name: &str| {
            head.split("\r\n").find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim().to_string())
            })
        };
        Message {
            id: id.into(),
            internet_message_id: header("Message-ID"),
            received,
            sent: received,
            is_read: false,
            is_draft: false,
            flag_status: "notFlagged".into(),
            categories: Vec::new(),
            importance: "normal".into(),
            subject: header("Subject").unwrap_or_default(),
            from: header("From").unwrap_or_default(),
            to: header("To").into_iter().collect(),
            has_attachments: head.contains("multipart/mixed"),
            mime,
            last_verb_executed: None,
        }
    }
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
const SUBJECTS: [&str; 14] = [
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
    "RE: Budget 2025 – zweite Runde, bitte bis Freitag prüfen und zurückmelden",
    "Photos from the offsite 📷",
    "",
    "Status update",
];
const ATTACHMENTS: [&str; 6] = [
    "report.pdf",
    "photo.jpg",
    "Rechnung März.pdf",
    "budget.xlsx",
    "minutes.docx",
    "diagram.png",
];
const CATEGORIES: [&[&str]; 3] = [
    &["Red category"],
    &["Projekt Ä", "Blue category"],
    &["Follow up"],
];

/// Derives independent seeds (SplitMix64 finaliser).
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(0x632B_E59B_D9B4_E019);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A random (version 4, RFC 9562) GUID in its 8-4-4-4-12 form.
pub fn guid(rng: &mut StdRng) -> String {
    let mut b: [u8; 16] = rng.random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!(
        "{}-{}-{}-{}-{}",
        h(0..4),
        h(4..6),
        h(6..8),
        h(8..10),
        h(10..16)
    )
}

/// A folder id shaped like Exchange's (base64 of an entry id, `-`/`_` for `+`/`/`).
fn folder_id(rng: &mut StdRng) -> String {
    let bytes: [u8; 46] = rng.random();
    format!(
        "AAMkAGI2TG93AAAuAAAAAAA{}AAA=",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// An immutable item id shaped like Exchange's (`AAkALg…`, graph docs outlook-immutable-id.md).
fn message_id(rng: &mut StdRng) -> String {
    let bytes: [u8; 30] = rng.random();
    format!(
        "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A{}AAA=",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Folder template: (name, parent index, well-known name, hidden, search folder, weight).
type FolderTemplate = (
    &'static str,
    Option<usize>,
    Option<&'static str>,
    bool,
    bool,
    u32,
);

/// The folders every mailbox gets. Parents come before children.
const FOLDERS: [FolderTemplate; 25] = [
    ("Inbox", None, Some("inbox"), false, false, 34),
    ("Projects", Some(0), None, false, false, 5),
    ("2024", Some(1), None, false, false, 4),
    ("Q1", Some(2), None, false, false, 3),
    ("a/b", Some(0), None, false, false, 2),
    ("Sent Items", None, Some("sentitems"), false, false, 14),
    ("Drafts", None, Some("drafts"), false, false, 2),
    ("Deleted Items", None, Some("deleteditems"), false, false, 5),
    ("Junk Email", None, Some("junkemail"), false, false, 3),
    ("Archive", None, Some("archive"), false, false, 6),
    ("R&D", Some(9), None, false, false, 2),
    ("Outbox", None, Some("outbox"), false, false, 0),
    (
        "Conversation History",
        None,
        Some("conversationhistory"),
        false,
        false,
        1,
    ),
    ("Rechnungen äöü", None, None, false, false, 3),
    ("日本語", None, None, false, false, 2),
    ("Ideas 💡", None, None, false, false, 2),
    ("v1.2", None, None, false, false, 2),
    ("100%", None, None, false, false, 2),
    ("*starred*", None, None, false, false, 2),
    ("Sent", None, None, false, false, 1),
    ("Sync Issues", None, Some("syncissues"), false, false, 0),
    ("Conflicts", Some(20), Some("conflicts"), false, false, 0),
    (
        "Local Failures",
        Some(20),
        Some("localfailures"),
        false,
        false,
        0,
    ),
    ("Sync state", None, None, true, false, 1),
    ("Unread mail", None, None, false, true, 0),
];

/// The newest `receivedDateTime` generated: 2025-06-01T00:00:00Z.
const NEWEST: i64 = 1_748_736_000;
/// Messages span about six years before [`NEWEST`].
const SPAN: i64 = 6 * 365 * 86_400;

/// Log-normal sample with the given median and sigma (Box–Muller).
fn log_normal(rng: &mut StdRng, median: f64, sigma: f64) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    median * (sigma * z).exp()
}

fn ascii(name: &str) -> String {
    name.replace('ë', "e").replace('ü', "ue")
}

/// Generates a tenant from its spec. Pure and deterministic.
pub fn generate_tenant(spec: &TenantSpec) -> Tenant {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let tenant_id = guid(&mut rng);
    let verified: Vec<String> = if spec.domains.is_empty() {
        vec!["contoso.com".into()]
    } else {
        spec.domains.clone()
    };
    let initial = format!(
        "{}.onmicrosoft.com",
        verified[0].split('.').next().unwrap_or("contoso")
    );
    let mut domains: Vec<Domain> = verified
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
        is_default: false,
        is_initial: true,
        is_verified: true,
    });
    let mailboxes = spec.users + spec.shared_mailboxes + spec.rooms;
    let mut users: Vec<User> = (0..mailboxes)
        .map(|u| generate_user(spec, u, &verified, &initial))
        .collect();
    let groups = generate_groups(spec, &users, &verified[0], &initial);
    users.extend(
        (0..spec.guests + spec.without_mailbox)
            .map(|n| outsider(spec, mailboxes + n, n < spec.guests, &verified, &initial)),
    );
    Tenant {
        id: tenant_id,
        domains,
        users,
        groups,
    }
}

/// Outside domains guests come from.
const GUEST_DOMAINS: [&str; 2] = ["gmail.com", "outlook.com"];

/// A user without an Exchange mailbox in this tenant: a B2B guest (`guest`) or a member whose
/// mailbox Graph cannot reach. Directory data only: no folders, calendars, contacts or tasks.
fn outsider(spec: &TenantSpec, u: usize, guest: bool, verified: &[String], initial: &str) -> User {
    let mut rng = StdRng::seed_from_u64(mix(spec.seed, u as u64 + 1));
    let n = u % FIRST.len();
    let local = format!(
        "{}.{}{}",
        ascii(FIRST[n]),
        ascii(LAST[(u / FIRST.len() + u) % LAST.len()]),
        u
    )
    .to_lowercase();
    let display_name = format!("{} {}", FIRST[n], LAST[(u / FIRST.len() + u) % LAST.len()]);
    let (mail, upn, user_type, proxies) = if guest {
        // A guest's mail is its own outside address and its UPN the mangled `#EXT#` form
        // (learn.microsoft.com/entra/external-id/user-properties, "Key properties of the
        // Microsoft Entra B2B guest user").
        let mail = format!("{local}@{}", GUEST_DOMAINS[u % GUEST_DOMAINS.len()]);
        let upn = format!("{}#EXT#@{initial}", mail.replace('@', "_"));
        (mail.clone(), upn, "Guest", vec![format!("SMTP:{mail}")])
    } else {
        let mail = format!("{local}@{}", verified[u % verified.len()]);
        (
            mail.clone(),
            mail.clone(),
            "Member",
            vec![format!("SMTP:{mail}")],
        )
    };
    User {
        id: guid(&mut rng),
        user_principal_name: upn,
        mail,
        display_name,
        account_enabled: true,
        purpose: "user".into(),
        proxy_addresses: proxies,
        user_type: user_type.into(),
        has_mailbox: false,
        online_archive: false,
        folders: Vec::new(),
        calendars: Vec::new(),
        contact_folders: Vec::new(),
        todo_lists: Vec::new(),
    }
}

/// Names of generated shared mailboxes, in turn.
const SHARED: [&str; 4] = ["info", "sales", "support", "billing"];

/// The local part, display name and `userPurpose` of mailbox `u`: people first, then shared
/// mailboxes, then rooms.
fn identity(spec: &TenantSpec, u: usize) -> (String, String, &'static str) {
    if u >= spec.users + spec.shared_mailboxes {
        let n = u - spec.users - spec.shared_mailboxes + 1;
        return (format!("room{n}"), format!("Conference Room {n}"), "room");
    }
    if u >= spec.users {
        let n = u - spec.users;
        let name = SHARED[n % SHARED.len()];
        let suffix = if n >= SHARED.len() {
            (n / SHARED.len()).to_string()
        } else {
            String::new()
        };
        let mut display = name.to_string();
        display[..1].make_ascii_uppercase();
        return (
            format!("{name}{suffix}"),
            format!("{display}{suffix}"),
            "shared",
        );
    }
    let first = FIRST[u % FIRST.len()];
    let last = LAST[(u / FIRST.len() + u) % LAST.len()];
    let suffix = if u >= FIRST.len() {
        (u / FIRST.len()).to_string()
    } else {
        String::new()
    };
    let local = format!("{}.{}{suffix}", ascii(first), ascii(last)).to_lowercase();
    (local, format!("{first} {last}"), "user")
}

/// The groups of a tenant: kinds in turn (Microsoft 365 group, distribution list, mail-enabled
/// security group, security group without mail). Every other person is a member of each,
/// starting with the group's own parity; the first shared mailbox is also in the Microsoft
/// 365 groups; distribution lists also hold the first group (nested) and an outside contact.
fn generate_groups(spec: &TenantSpec, users: &[User], domain: &str, initial: &str) -> Vec<Group> {
    let ids: Vec<String> = (0..spec.groups)
        .map(|g| {
            guid(&mut StdRng::seed_from_u64(mix(
                spec.seed,
                0x6000 + g as u64,
            )))
        })
        .collect();
    (0..spec.groups)
        .map(|g| {
            let n = g / 4 + 1;
            let (name, local, types, mail_enabled, security_enabled) = match g % 4 {
                0 => (
                    format!("Project {n}"),
                    format!("project{n}"),
                    vec!["Unified".to_string()],
                    true,
                    false,
                ),
                1 => (
                    format!("All Staff {n}"),
                    format!("allstaff{n}"),
                    vec![],
                    true,
                    false,
                ),
                2 => (
                    format!("Finance {n}"),
                    format!("finance{n}"),
                    vec![],
                    true,
                    true,
                ),
                _ => (
                    format!("Laptops {n}"),
                    format!("laptops{n}"),
                    vec![],
                    false,
                    true,
                ),
            };
            let mut members: Vec<GroupMember> = users
                .iter()
                .take(spec.users)
                .enumerate()
                .filter(|(i, _)| (i + g) % 2 == 0)
                .map(|(_, u)| GroupMember::User(u.id.clone()))
                .collect();
            match g % 4 {
                0 => members.extend(
                    users
                        .iter()
                        .find(|u| u.purpose == "shared")
                        .map(|u| GroupMember::User(u.id.clone())),
                ),
                1 => {
                    if g > 0 {
                        members.push(GroupMember::Group(ids[0].clone()));
                    }
                    members.push(GroupMember::Contact {
                        id: guid(&mut StdRng::seed_from_u64(mix(
                            spec.seed,
                            0x7000 + g as u64,
                        ))),
                        display_name: format!("Partner {n}"),
                        mail: format!("partner{n}@tailspintoys.com"),
                    });
                }
                _ => {}
            }
            let mail = mail_enabled.then(|| format!("{local}@{domain}"));
            let proxy_addresses = match &mail {
                Some(m) => vec![format!("SMTP:{m}"), format!("smtp:{local}@{initial}")],
                None => Vec::new(),
            };
            Group {
                id: ids[g].clone(),
                display_name: name,
                mail,
                mail_enabled,
                security_enabled,
                group_types: types,
                proxy_addresses,
                members,
            }
        })
        .collect()
}

fn generate_user(spec: &TenantSpec, u: usize, verified: &[String], initial: &str) -> User {
    let mut rng = StdRng::seed_from_u64(mix(spec.seed, u as u64 + 1));
    let (local, display_name, purpose) = identity(spec, u);
    let person = purpose == "user";
    let domain = &verified[u % verified.len()];
    let mail = format!("{local}@{domain}");
    // Some users sign in with their initial-domain name; their mail is still the vanity one.
    let upn = if person && u % 7 == 4 {
        format!("{local}@{initial}")
    } else {
        mail.clone()
    };
    let id = guid(&mut rng);
    let mut folders: Vec<MailFolder> = FOLDERS
        .iter()
        .map(|(name, _, wk, hidden, search, _)| MailFolder {
            id: folder_id(&mut rng),
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
    let total_weight: u32 = FOLDERS.iter().map(|f| f.5).sum();
    let me = format!("{display_name} <{mail}>");
    for n in 0..spec.messages_of(u) {
        let mut rng = StdRng::seed_from_u64(mix(mix(spec.seed, u as u64 + 1), n as u64 + 1));
        let mut pick = rng.random_range(0..total_weight);
        let folder = FOLDERS
            .iter()
            .position(|f| {
                if pick < f.5 {
                    true
                } else {
                    pick -= f.5;
                    false
                }
            })
            .unwrap_or(0);
        let wk = FOLDERS[folder].2;
        let outgoing = matches!(wk, Some("sentitems") | Some("drafts"));
        let is_draft = wk == Some("drafts");
        let received = OffsetDateTime::from_unix_timestamp(NEWEST - rng.random_range(0..SPAN))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let sent = received - Duration::seconds(rng.random_range(1..900));
        let offset = [0, 1, 2, -5, 9][rng.random_range(0..5)];
        let date = sent.to_offset(UtcOffset::from_hms(offset, 0, 0).unwrap_or(UtcOffset::UTC));
        let subject = SUBJECTS[rng.random_range(0..SUBJECTS.len())].to_string();
        // Every 37th message has no Message-ID; two distinct messages of user 0 share one.
        let internet_message_id = match (u, n) {
            (_, n) if n % 37 == 5 => None,
            (0, 11) | (0, 12) => Some(format!("<shared-{}@fabrikam.com>", spec.seed)),
            _ => Some(format!(
                "<{:016x}.{n}.{u}@{}>",
                rng.random::<u64>(),
                if outgoing {
                    domain.as_str()
                } else {
                    "fabrikam.com"
                }
            )),
        };
        let other = rng.random_range(0..FIRST.len());
        let correspondent = format!(
            "{} {} <{}.{}@fabrikam.com>",
            FIRST[other],
            LAST[other % LAST.len()],
            ascii(FIRST[other]).to_lowercase(),
            ascii(LAST[other % LAST.len()]).to_lowercase()
        );
        let (from, to) = if outgoing {
            (me.clone(), correspondent)
        } else {
            (correspondent, me.clone())
        };
        let (shape, body_len, attachments) = message_size(&mut rng, spec, n);
        let importance = match rng.random_range(0..20) {
            0 | 1 => "high",
            2 => "low",
            _ => "normal",
        }
        .to_string();
        let cc = (rng.random_range(0..5) == 0)
            .then(|| "Megan Bowen <megan.bowen@fabrikam.com>".to_string());
        let recipe = Recipe {
            seed: rng.random(),
            from: from.clone(),
            to: to.clone(),
            cc,
            subject: subject.clone(),
            date,
            received,
            received_header: !outgoing,
            message_id: internet_message_id.clone(),
            shape,
            body_len,
            attachments,
            importance: importance.clone(),
        };
        let flag_status = match rng.random_range(0..12) {
            0 => "flagged",
            1 => "complete",
            _ => "notFlagged",
        };
        let categories = match rng.random_range(0..10) {
            i @ 0..=2 => CATEGORIES[i].iter().map(|c| c.to_string()).collect(),
            _ => Vec::new(),
        };
        let is_read = !is_draft && (outgoing || rng.random_range(0..3) != 0);
        folders[folder].messages.push(Message {
            id: message_id(&mut rng),
            internet_message_id,
            received,
            sent,
            is_read,
            is_draft,
            flag_status: flag_status.into(),
            categories,
            importance,
            subject,
            from,
            to: vec![to],
            has_attachments: shape == Shape::Mixed,
            mime: Mime::from_recipe(recipe),
            last_verb_executed: None,
        });
    }
    for f in &mut folders {
        f.messages.sort_by_key(|m| std::cmp::Reverse(m.received));
    }
    let groupware = crate::groupware::generate(
        &spec.groupware,
        mix(mix(spec.seed, u as u64 + 1), 0x9e0),
        &display_name,
        &mail,
    );
    User {
        id,
        user_principal_name: upn,
        display_name,
        // Exchange creates shared and resource mailboxes with sign-in blocked.
        account_enabled: person && u % 11 != 10,
        purpose: purpose.to_string(),
        proxy_addresses: vec![format!("SMTP:{mail}"), format!("smtp:{local}@{initial}")],
        user_type: "Member".into(),
        has_mailbox: true,
        online_archive: person && u < spec.online_archives,
        mail,
        folders,
        calendars: groupware.calendars,
        contact_folders: groupware.contact_folders,
        todo_lists: groupware.todo_lists,
    }
}

/// The shape, body length and attachments of message number `n` of a mailbox.
fn message_size(
    rng: &mut StdRng,
    spec: &TenantSpec,
    n: usize,
) -> (Shape, usize, Vec<(String, usize)>) {
    let cap = spec.max_attachment.max(100);
    let attachment = |rng: &mut StdRng, size: usize| {
        (
            ATTACHMENTS[rng.random_range(0..ATTACHMENTS.len())].to_string(),
            size,
        )
    };
    let text_shape = |rng: &mut StdRng| {
        if rng.random_range(0..9) < 4 {
            Shape::Plain
        } else {
            Shape::Alternative
        }
    };
    match spec.sizes {
        SizeProfile::Compact => {
            let body_len = log_normal(rng, 6_000.0, 0.9).clamp(200.0, 200_000.0) as usize;
            if rng.random_range(0..5) == 0 {
                let files = (0..rng.random_range(1..=3))
                    .map(|_| {
                        let size = (log_normal(rng, 40_000.0, 1.3) as usize).clamp(100, cap);
                        attachment(rng, size)
                    })
                    .collect();
                (Shape::Mixed, body_len, files)
            } else {
                (text_shape(rng), body_len, Vec::new())
            }
        }
        SizeProfile::Realistic { giant_every } => {
            let body_len = log_normal(rng, 12_000.0, 0.8).clamp(200.0, 400_000.0) as usize;
            if giant_every.is_some_and(|g| g > 0 && n % g == g - 1) {
                let file = attachment(rng, cap);
                (Shape::Mixed, body_len, vec![file])
            } else if rng.random_range(0..10) == 0 {
                let size = (log_normal(rng, 100_000.0, 1.5) as usize).clamp(1024, cap);
                let file = attachment(rng, size);
                (Shape::Mixed, body_len, vec![file])
            } else {
                (text_shape(rng), body_len, Vec::new())
            }
        }
    }
}

/// A new message for `user`, generated from `seed` like the tenant's own (for tests that
/// add mail between two delta rounds).
pub fn sample_message(user: &User, seed: u64, received: OffsetDateTime) -> Message {
    let mut rng = StdRng::seed_from_u64(mix(seed, 0xadd));
    let to = format!("{} <{}>", user.display_name, user.mail);
    let subject = format!("New message {seed}");
    let internet_message_id = Some(format!("<new-{seed:x}@fabrikam.com>"));
    let recipe = Recipe {
        seed: rng.random(),
        from: "Alex Wilber <alex.wilber@fabrikam.com>".into(),
        to: to.clone(),
        cc: None,
        subject: subject.clone(),
        date: received,
        received,
        received_header: true,
        message_id: internet_message_id.clone(),
        shape: Shape::Alternative,
        body_len: 2_000,
        attachments: Vec::new(),
        importance: "normal".into(),
    };
    Message {
        id: message_id(&mut rng),
        internet_message_id,
        received,
        sent: received,
        is_read: false,
        is_draft: false,
        flag_status: "notFlagged".into(),
        categories: Vec::new(),
        importance: "normal".into(),
        subject,
        from: "Alex Wilber <alex.wilber@fabrikam.com>".into(),
        to: vec![to],
        has_attachments: false,
        mime: Mime::from_recipe(recipe),
        last_verb_executed: None,
    }
}

/// The hidden system folders real mailboxes show with `includeHiddenFolders=true`, for tests
/// to add to a user (`Tenant::users[..].folders.extend(...)`): the hidden Team Chat folder
/// under Conversation History holding Teams compliance records (office365itpros.com
/// 2019-07-03 "Team Chat folder"; gsexdev.blogspot.com 2018-02; Graph's known issue that such
/// chat items come back as messages with the subject "IM", concepts/known-issues.md), and
/// Yammer Root with its Feeds (shared reference graph.md "Real-service behaviours"). Each holds
/// one item. `None` when the user has no Conversation History folder.
pub fn system_folders(user: &User) -> Option<Vec<MailFolder>> {
    let history = user
        .folders
        .iter()
        .find(|f| f.well_known_name.as_deref() == Some("conversationhistory"))?;
    let at = user
        .folders
        .iter()
        .flat_map(|f| &f.messages)
        .map(|m| m.received)
        .max()
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let item = |id: &str, subject: &str| {
        let mime = format!(
            "From: {name} <{mail}>\r\nTo: {name} <{mail}>\r\nSubject: {subject}\r\nMessage-ID: <{id}@system.invalid>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{subject}\r\n",
            name = user.display_name,
            mail = user.mail,
        );
        Message::from_mime(id, mime.into_bytes(), at)
    };
    let folder = |id: &str, parent: Option<&str>, name: &str, hidden: bool, messages| MailFolder {
        id: format!("AAMkAGI2TG93AAAuAAAAAAA{id}AAA="),
        parent_id: parent.map(str::to_string),
        display_name: name.into(),
        well_known_name: None,
        is_hidden: hidden,
        is_search_folder: false,
        messages,
    };
    let yammer = folder("systemyammerroot", None, "Yammer Root", true, Vec::new());
    let feeds = folder(
        "systemyammerfeeds",
        Some(yammer.id.as_str()),
        "Feeds",
        false,
        vec![item("AAkALgSYSYAMMER0001", "Yammer: new post")],
    );
    Some(vec![
        folder(
            "systemteamchat",
            Some(history.id.as_str()),
            "Team Chat",
            true,
            vec![item("AAkALgSYSTEAMS0001", "IM")],
        ),
        yammer,
        feeds,
    ])
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
        assert_eq!(shared, 2, "two distinct messages share a Message-ID");
        for m in &messages {
            let bytes = m.mime.bytes();
            assert_eq!(bytes, m.mime.bytes());
            assert!(bytes.windows(4).any(|w| w == b"\r\n\r\n"));
        }
        let ids: std::collections::HashSet<_> = messages.iter().map(|m| &m.id).collect();
        assert_eq!(ids.len(), messages.len());
        let other = generate_tenant(&TenantSpec { seed: 1, ..spec });
        assert_ne!(
            other.users[0].folders[0].messages,
            a.users[0].folders[0].messages
        );
    }

    #[test]
    fn heavy_tailed_mailboxes_are_mostly_small_with_the_largest_in_the_middle() {
        let spec = TenantSpec {
            users: 400,
            messages_per_user: 2,
            mailbox_sizes: MailboxSizes::HeavyTailed {
                alpha: 1.2,
                largest: 300,
            },
            ..TenantSpec::default()
        };
        let t = generate_tenant(&spec);
        let mut counts: Vec<usize> = (t.users.iter())
            .map(|u| u.folders.iter().map(|f| f.messages.len()).sum())
            .collect();
        assert_eq!(counts[200], 300, "the largest in the middle");
        assert_eq!(
            counts,
            (0..400).map(|u| spec.messages_of(u)).collect::<Vec<_>>()
        );
        counts.sort_unstable();
        assert!(counts[0] >= 2);
        assert!(counts[200] < 6, "median {}", counts[200]);
        assert_eq!(counts[399], 300);
    }

    #[test]
    fn sizes_have_a_median_of_tens_of_kilobytes_and_a_long_tail() {
        let t = generate_tenant(&TenantSpec {
            users: 2,
            messages_per_user: 400,
            max_attachment: 4 * 1024 * 1024,
            ..TenantSpec::default()
        });
        let mut sizes: Vec<usize> = t
            .users
            .iter()
            .flat_map(|u| &u.folders)
            .flat_map(|f| &f.messages)
            .map(|m| m.mime.len())
            .collect();
        sizes.sort_unstable();
        let median = sizes[sizes.len() / 2];
        let max = sizes[sizes.len() - 1];
        assert!((8_000..80_000).contains(&median), "median {median}");
        assert!(max > 500_000, "max {max}");
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

    #[test]
    fn large_tenants_generate_without_message_bytes() {
        let t = generate_tenant(&TenantSpec {
            users: 2_000,
            messages_per_user: 50,
            ..TenantSpec::default()
        });
        assert_eq!(t.users.len(), 2_000);
        let upns: std::collections::HashSet<_> =
            t.users.iter().map(|u| &u.user_principal_name).collect();
        assert_eq!(upns.len(), 2_000, "user principal names are unique");
        // 100,000 messages: their bytes are generated when served, never held by the tenant.
        let messages: Vec<_> = t
            .users
            .iter()
            .flat_map(|u| &u.folders)
            .flat_map(|f| &f.messages)
            .collect();
        assert_eq!(messages.len(), 100_000);
        assert!(messages.iter().all(|m| !m.mime.holds_bytes()));
    }
}
