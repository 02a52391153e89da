//! What the emulated server holds: domains, accounts, server properties, sessions, injected
//! faults and the request log. Account rules follow IceWarp's documented semantics (shared
//! reference `icewarp.md` §2 and `icewarp-apiconst.txt`): an account lives in one domain, its
//! `U_Alias` is a `;`-separated list of local names whose first is the primary, `U_Mailbox` is
//! its mailbox name, and mailbox names and aliases are unique within a domain (`E_CONFLICT`).

use std::collections::{BTreeMap, HashMap};

/// The password policy, as the server properties `C_Accounts_Policies_Pass_*` hold it.
#[derive(Debug, Clone, PartialEq)]
pub struct PasswordPolicy {
    /// `C_Accounts_Policies_Pass_Enable`.
    pub enabled: bool,
    /// `C_Accounts_Policies_Pass_MinLength`.
    pub min_length: usize,
    /// `C_Accounts_Policies_Pass_Digits`: digits at least.
    pub digits: usize,
    /// `C_Accounts_Policies_Pass_NonAlphaNum`: non-alphanumeric characters at least.
    pub non_alphanumeric: usize,
    /// `C_Accounts_Policies_Pass_Alpha`: letters at least.
    pub alpha: usize,
    /// `C_Accounts_Policies_Pass_UpperAlpha`: upper-case letters at least.
    pub upper_alpha: usize,
    /// `C_Accounts_Policies_Pass_UserAlias`: the password must not contain the mailbox name or
    /// an alias.
    pub user_alias: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            enabled: true,
            min_length: 8,
            digits: 1,
            non_alphanumeric: 1,
            alpha: 1,
            upper_alpha: 1,
            user_alias: true,
        }
    }
}

impl PasswordPolicy {
    /// Why `password` breaks the policy for an account with these names, if it does. Written
    /// apart from the migrator's own check on purpose: the emulator is the independent judge
    /// of the passwords the client generates (the sim does not depend on the core).
    pub fn violation(&self, password: &str, names: &[String]) -> Option<String> {
        if !self.enabled {
            return None;
        }
        let count = |f: fn(&char) -> bool| password.chars().filter(f).count();
        let checks = [
            (password.chars().count(), self.min_length, "characters"),
            (count(char::is_ascii_digit), self.digits, "digits"),
            (
                count(|c| !c.is_alphanumeric()),
                self.non_alphanumeric,
                "non-alphanumeric characters",
            ),
            (count(|c| c.is_alphabetic()), self.alpha, "letters"),
            (
                count(|c| c.is_uppercase()),
                self.upper_alpha,
                "upper-case letters",
            ),
        ];
        for (have, need, what) in checks {
            if have < need {
                return Some(format!("password policy: {have} {what}, needs {need}"));
            }
        }
        let lower = password.to_lowercase();
        if self.user_alias
            && names
                .iter()
                .any(|n| !n.is_empty() && lower.contains(&n.to_lowercase()))
        {
            return Some("password policy: contains the user name or an alias".into());
        }
        None
    }

    /// The policy as server properties.
    pub fn properties(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "C_Accounts_Policies_Pass_Enable",
                u8::from(self.enabled).to_string(),
            ),
            (
                "C_Accounts_Policies_Pass_MinLength",
                self.min_length.to_string(),
            ),
            ("C_Accounts_Policies_Pass_Digits", self.digits.to_string()),
            (
                "C_Accounts_Policies_Pass_NonAlphaNum",
                self.non_alphanumeric.to_string(),
            ),
            ("C_Accounts_Policies_Pass_Alpha", self.alpha.to_string()),
            (
                "C_Accounts_Policies_Pass_UpperAlpha",
                self.upper_alpha.to_string(),
            ),
            (
                "C_Accounts_Policies_Pass_UserAlias",
                u8::from(self.user_alias).to_string(),
            ),
        ]
    }
}

/// Names of the default folders every new account gets. IceWarp lets the administrator rename
/// them server-wide (`C_System_Adv_Rename_Default_Folders`, keys `sent drafts trash events
/// contacts tasks notes journals files`), and localised installations differ.
#[derive(Debug, Clone, PartialEq)]
pub struct DefaultFolderNames {
    pub sent: String,
    pub drafts: String,
    pub trash: String,
    /// `C_AS_SpamFolderName`.
    pub spam: String,
    pub events: String,
    pub contacts: String,
    pub tasks: String,
    pub notes: String,
    pub journals: String,
    pub files: String,
}

impl DefaultFolderNames {
    /// IceWarp's English defaults (`Documents`, `Calendar`, `Tasks`, `Journal`, `Notes`,
    /// `Contacts` as in IceWarp.Net's GetAccountFolderList fixture).
    pub fn english() -> Self {
        DefaultFolderNames {
            sent: "Sent".into(),
            drafts: "Drafts".into(),
            trash: "Trash".into(),
            spam: "Spam".into(),
            events: "Calendar".into(),
            contacts: "Contacts".into(),
            tasks: "Tasks".into(),
            notes: "Notes".into(),
            journals: "Journal".into(),
            files: "Documents".into(),
        }
    }

    /// A Czech installation, for tests of localised names.
    pub fn czech() -> Self {
        DefaultFolderNames {
            sent: "Odeslané".into(),
            drafts: "Koncepty".into(),
            trash: "Koš".into(),
            spam: "Nevyžádaná pošta".into(),
            events: "Kalendář".into(),
            contacts: "Kontakty".into(),
            tasks: "Úkoly".into(),
            notes: "Poznámky".into(),
            journals: "Deník".into(),
            files: "Dokumenty".into(),
        }
    }

    /// `(name, foldertype, defaulttype)` of each default folder. Folder types are those of the
    /// IceWarp.Net fixture (M mail, E events, C contacts, T tasks, N notes, J journal, F
    /// files) and Inbox's default type `I`; the other mail default types (`S` sent, `D`
    /// drafts, `T` trash, `P` spam) are inferred, not documented.
    pub fn folders(&self) -> Vec<(String, &'static str, &'static str)> {
        vec![
            ("Inbox".to_string(), "M", "I"),
            (self.sent.clone(), "M", "S"),
            (self.drafts.clone(), "M", "D"),
            (self.trash.clone(), "M", "T"),
            (self.spam.clone(), "M", "P"),
            (self.files.clone(), "F", ""),
            (self.events.clone(), "E", ""),
            (self.tasks.clone(), "T", ""),
            (self.journals.clone(), "J", ""),
            (self.notes.clone(), "N", ""),
            (self.contacts.clone(), "C", ""),
        ]
    }
}

/// An account that exists before the client arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountSpec {
    /// `local@domain`; the domain is created when missing.
    pub email: String,
    pub name: String,
    pub password: String,
    /// More local names (the primary, the local part of `email`, comes first by itself).
    pub aliases: Vec<String>,
}

/// A group or mailing list that exists before the client arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct ListSpec {
    /// `local@domain`; the domain is created when missing.
    pub email: String,
    pub name: String,
    /// `U_Type`: 1 mailing list, 7 group.
    pub account_type: u32,
    /// Member addresses.
    pub members: Vec<String>,
}

/// A resource (`U_Type` 8, apiconst) that exists before the client arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceSpec {
    /// `local@domain`; the domain is created when missing.
    pub email: String,
    pub name: String,
    pub password: String,
    /// More local names (the primary comes first by itself).
    pub aliases: Vec<String>,
    /// `S_Type`: 0 room, 1 equipment, 2 car (apiconst "rtRoom, rtEquipment,rtCar").
    pub s_type: u32,
}

/// An account as the emulator holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub domain: String,
    /// `U_Mailbox`.
    pub mailbox: String,
    /// `U_Alias`, split; the first is the primary.
    pub aliases: Vec<String>,
    /// `U_Name`.
    pub name: String,
    /// `U_Password` (the emulator keeps it so tests can check what the client set).
    pub password: String,
    /// `U_Type` (0 user, 7 group, ...).
    pub account_type: u32,
    /// Set by `expireaccountpassword`.
    pub password_expired: bool,
    /// Members of a group or mailing list (`A_MemberList`), in the order added; the emulator
    /// keeps what it is given, duplicates included, so a client that adds one twice shows.
    pub members: Vec<String>,
    /// Every other property set through the API, by lower-case name.
    pub properties: BTreeMap<String, String>,
}

impl Account {
    /// The primary address: the first alias (or the mailbox name) at the domain.
    pub fn email(&self) -> String {
        let local = self.aliases.first().unwrap_or(&self.mailbox);
        format!("{local}@{}", self.domain)
    }

    /// True when `local` names this account (mailbox or alias), case-insensitively.
    pub fn answers_to(&self, local: &str) -> bool {
        self.mailbox.eq_ignore_ascii_case(local)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(local))
    }
}

/// What the server does with a `U_Alias` longer than its 255 characters ("maximal length of
/// this field is limited to 255 characters", online help 282.htm). Whether the API refuses
/// such a value or cuts it is not documented: both are emulated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AliasOverflow {
    /// `createaccount`/`setaccountproperties` answer 0.
    #[default]
    Refuse,
    /// The value is cut at 255 characters and stored.
    Truncate,
}

/// A fault to inject into the next calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `<result>0</result>` without doing anything (a transient failure).
    ResultZero,
    /// HTTP 500 with no body.
    Http500,
    /// The command is carried out, but the answer is lost: HTTP 500 with no body (a proxy or
    /// connection failing after the server acted).
    LostReply,
}

/// One request as the emulator saw it.
#[derive(Debug, Clone)]
pub struct IceWarpRequest {
    /// Lower-case command name (`None`: no parsable command).
    pub command: Option<String>,
    /// The request body as sent (it may hold passwords: the emulator is a test tool).
    pub body: String,
    pub status: u16,
    /// The response body.
    pub response: String,
    /// What the emulator did: `ok`, or why it answered 0 or an error.
    pub outcome: String,
    /// Where the request breaks the command's request schema (empty: valid).
    pub schema_violations: Vec<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Data {
    pub domains: BTreeMap<String, String>,
    pub accounts: Vec<Account>,
    pub properties: BTreeMap<String, (String, String)>,
    pub sessions: HashMap<String, String>,
    pub faults: Vec<(Fault, Option<String>)>,
    pub refused: Vec<String>,
    pub log: Vec<IceWarpRequest>,
    /// Domain aliases (lower case): the domain each stands for.
    pub domain_aliases: BTreeMap<String, String>,
    /// Alias patterns by lower-case name: the local names each stands for.
    pub patterns: BTreeMap<String, Vec<String>>,
    /// Domain properties (`D_...`, apiconst) by lower-case domain, then lower-case name.
    pub domain_properties: BTreeMap<String, BTreeMap<String, String>>,
}

impl Data {
    pub fn find_account(&self, email: &str) -> Option<usize> {
        let (local, domain) = email.trim().rsplit_once('@')?;
        let domain = self
            .domain_aliases
            .get(&domain.to_ascii_lowercase())
            .map_or(domain, String::as_str);
        self.accounts
            .iter()
            .position(|a| a.domain.eq_ignore_ascii_case(domain) && self.answers(a, local))
    }

    /// True when `local` names the account: its mailbox, an alias, or a name of a pattern
    /// its `U_Alias` references (`[name]`, online help 282.htm).
    pub fn answers(&self, account: &Account, local: &str) -> bool {
        account.answers_to(local)
            || account.aliases.iter().any(|a| {
                a.strip_prefix('[')
                    .and_then(|a| a.strip_suffix(']'))
                    .and_then(|name| self.patterns.get(&name.to_ascii_lowercase()))
                    .is_some_and(|names| names.iter().any(|n| n.eq_ignore_ascii_case(local)))
            })
    }

    /// The server property `name` (case-insensitive), as set.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .get(&name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }

    pub fn set_property(&mut self, name: &str, value: impl Into<String>) {
        self.properties
            .insert(name.to_ascii_lowercase(), (name.to_string(), value.into()));
    }

    /// `C_Accounts_Policies_Login_LoginSettings`: 1 log in with the full address, 0 with the
    /// username (apiconst; a missing value reads as 1, the emulator's default).
    pub fn login_with_email(&self) -> bool {
        self.property("C_Accounts_Policies_Login_LoginSettings")
            .is_none_or(|v| v.trim() != "0")
    }

    pub fn policy(&self) -> PasswordPolicy {
        let num = |n: &str| {
            self.property(n)
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0)
        };
        PasswordPolicy {
            enabled: num("C_Accounts_Policies_Pass_Enable") != 0,
            min_length: num("C_Accounts_Policies_Pass_MinLength"),
            digits: num("C_Accounts_Policies_Pass_Digits"),
            non_alphanumeric: num("C_Accounts_Policies_Pass_NonAlphaNum"),
            alpha: num("C_Accounts_Policies_Pass_Alpha"),
            upper_alpha: num("C_Accounts_Policies_Pass_UpperAlpha"),
            user_alias: num("C_Accounts_Policies_Pass_UserAlias") != 0,
        }
    }

    /// Takes the next injected fault that applies to `command`.
    pub fn take_fault(&mut self, command: Option<&str>) -> Option<Fault> {
        let i = self
            .faults
            .iter()
            .position(|(_, only)| match (only, command) {
                (None, _) => true,
                (Some(want), Some(c)) => want.eq_ignore_ascii_case(c),
                (Some(_), None) => false,
            })?;
        Some(self.faults.remove(i).0)
    }
}

/// True for a name IceWarp accepts as a mailbox or alias (`E_INVALID` otherwise): letters,
/// digits and `. _ - + ' &`, not starting or ending with a dot.
pub fn valid_local_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && !name.ends_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-+'&".contains(c))
}

/// True for a domain name `createdomain` accepts.
pub fn valid_domain(name: &str) -> bool {
    name.len() <= 253
        && name.contains('.')
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// IceWarp's `*` and `?` masks (`namemask`), case-insensitive; an empty mask matches all.
pub fn mask_matches(mask: &str, name: &str) -> bool {
    fn go(m: &[char], n: &[char]) -> bool {
        match m.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('?', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some((c, rest)) => n.first().is_some_and(|x| x == c) && go(rest, &n[1..]),
        }
    }
    let m: Vec<char> = mask.trim().to_lowercase().chars().collect();
    let n: Vec<char> = name.to_lowercase().chars().collect();
    m.is_empty() || go(&m, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_counts_each_class_and_forbids_names() {
        let p = PasswordPolicy {
            min_length: 10,
            digits: 2,
            ..PasswordPolicy::default()
        };
        let names = vec!["adele".to_string()];
        assert!(p
            .violation("Abcdefg1!x", &names)
            .unwrap()
            .contains("digits"));
        assert!(p.violation("Ab1!", &names).unwrap().contains("characters"));
        assert!(p
            .violation("Xadele12!zz", &names)
            .unwrap()
            .contains("user name"));
        assert_eq!(p.violation("Qwerty12!zz", &names), None);
        let off = PasswordPolicy {
            enabled: false,
            ..p
        };
        assert_eq!(off.violation("a", &names), None);
    }

    #[test]
    fn masks_and_names() {
        assert!(mask_matches("", "x"));
        assert!(mask_matches("*.COM", "contoso.com"));
        assert!(mask_matches("ad?le*", "adele.vance"));
        assert!(!mask_matches("b*", "adele"));
        assert!(valid_local_name("adele.vance"));
        assert!(!valid_local_name("adele vance"));
        assert!(!valid_local_name(".x"));
        assert!(valid_domain("contoso.com") && !valid_domain("contoso") && !valid_domain("a..b"));
    }
}
