//! Finding an account's calendar and address book homes.
//!
//! 1. `PROPFIND /.well-known/caldav` for `current-user-principal`, following redirects
//!    (RFC 6764 §5, RFC 5397 §3); if that names no principal, the same at the base URL itself
//!    (a server configured with its context path).
//! 2. `PROPFIND` on the principal for `calendar-home-set` (RFC 4791 §6.2.1) and
//!    `addressbook-home-set` (RFC 6352 §7.1.1).
//! 3. If no address book home came out, steps 1–2 again from `/.well-known/carddav` (CalDAV
//!    and CardDAV may be served by different principals or hosts).
//!
//! A server that answers discovery with an error or nothing usable leaves the homes empty;
//! the templates then apply. A refused login, a transport failure or a 5xx is an error.

use url::Url;

use super::connection::{method, Http, Reply};
use super::{refusal, types, CollectionKind, DavError};

/// The collections' parents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Homes {
    pub calendar: Option<Url>,
    pub addressbook: Option<Url>,
}

impl Homes {
    /// Fills the homes discovery did not find with the parents of the template collections.
    pub fn fill_from_templates(&mut self, defaults: &[(CollectionKind, Url)]) {
        for (kind, url) in defaults {
            let home = match kind {
                CollectionKind::Contacts => &mut self.addressbook,
                _ => &mut self.calendar,
            };
            if home.is_none() {
                *home = url.join("..").ok();
            }
        }
    }

    /// The home for collections of `kind`.
    pub fn of(&self, kind: CollectionKind) -> Option<&Url> {
        match kind {
            CollectionKind::Contacts => self.addressbook.as_ref(),
            _ => self.calendar.as_ref(),
        }
    }
}

/// Runs the discovery of the module doc against `base`.
pub async fn discover(http: &Http, base: &Url) -> Result<Homes, DavError> {
    let mut homes = Homes::default();
    for service in ["caldav", "carddav"] {
        if service == "carddav" && homes.addressbook.is_some() {
            break;
        }
        let well_known = base
            .join(&format!("/.well-known/{service}"))
            .map_err(|e| DavError::Config(format!("base URL {base}: {e}")))?;
        let principal = match principal(http, &well_known).await? {
            Some(p) => Some(p),
            None => principal(http, base).await?,
        };
        let Some(principal) = principal else {
            continue;
        };
        let found = home_sets(http, &principal).await?;
        homes.calendar = homes.calendar.or(found.calendar);
        homes.addressbook = homes.addressbook.or(found.addressbook);
    }
    Ok(homes)
}

/// The `current-user-principal` named at `url`, resolved.
async fn principal(http: &Http, url: &Url) -> Result<Option<Url>, DavError> {
    let reply = http
        .send_following(method("PROPFIND"), url, "0", &types::propfind_principal())
        .await?;
    let Some(responses) = multistatus(&reply)? else {
        return Ok(None);
    };
    Ok(responses
        .into_iter()
        .find_map(|r| r.props.current_user_principal)
        .and_then(|href| reply.url.join(&href).ok()))
}

async fn home_sets(http: &Http, principal: &Url) -> Result<Homes, DavError> {
    let reply = http
        .send_following(
            method("PROPFIND"),
            principal,
            "0",
            &types::propfind_home_sets(),
        )
        .await?;
    let Some(responses) = multistatus(&reply)? else {
        return Ok(Homes::default());
    };
    let mut homes = Homes::default();
    for r in responses {
        let resolve = |hrefs: &[String]| hrefs.first().and_then(|h| reply.url.join(h).ok());
        homes.calendar = homes
            .calendar
            .or_else(|| resolve(&r.props.calendar_home_set));
        homes.addressbook = homes
            .addressbook
            .or_else(|| resolve(&r.props.addressbook_home_set));
    }
    Ok(homes)
}

/// The responses of a 207; `None` for a 4xx (nothing to discover there). A 5xx is an error.
fn multistatus(reply: &Reply) -> Result<Option<Vec<types::Response>>, DavError> {
    match reply.status.as_u16() {
        207 => Ok(types::parse_multistatus(&reply.body).ok()),
        400..=499 | 501 | 505 => Ok(None),
        _ if reply.status.is_redirection() || reply.status.is_success() => Ok(None),
        _ => Err(refusal(reply, |reason| DavError::Protocol {
            url: reply.url.to_string(),
            reason,
        })),
    }
}

/// Expands a collection URL template for `email` and resolves it against `base`; the result
/// ends with `/` (a collection).
pub fn expand_template(base: &Url, template: &str, email: &str) -> Result<Url, DavError> {
    let (user, domain) = email.rsplit_once('@').unwrap_or((email, ""));
    let expanded = template
        .replace("{email}", &encode_segment(email))
        .replace("{user}", &encode_segment(user))
        .replace("{domain}", &encode_segment(domain));
    let mut url = base
        .join(expanded.trim())
        .map_err(|e| DavError::Config(format!("collection URL template {template:?}: {e}")))?;
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// Characters of a path segment that are sent as they are (RFC 3986 `pchar` without `%`).
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@');

/// Percent-encodes `s` as one path segment (`/`, `?`, `#`, `%` and non-ASCII encoded).
pub fn encode_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_expand_to_encoded_collection_urls() {
        let base = Url::parse("https://mail.example.com/").unwrap();
        let url =
            expand_template(&base, "/webdav/{email}/Calendar", "jörg.o'neil@example.com").unwrap();
        assert_eq!(
            url.as_str(),
            "https://mail.example.com/webdav/j%C3%B6rg.o'neil@example.com/Calendar/"
        );
        let url = expand_template(
            &base,
            "https://dav.example.com/{domain}/{user}/tasks/",
            "a/b?c#d@example.com",
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://dav.example.com/example.com/a%2Fb%3Fc%23d/tasks/"
        );
    }

    #[test]
    fn template_parents_become_homes_where_discovery_found_none() {
        let base = Url::parse("https://mail.example.com/").unwrap();
        let cal = expand_template(&base, "/webdav/{email}/Calendar", "a@b.c").unwrap();
        let contacts = expand_template(&base, "/webdav/{email}/Contacts", "a@b.c").unwrap();
        let mut homes = Homes {
            calendar: None,
            addressbook: Some(Url::parse("https://mail.example.com/card/a/").unwrap()),
        };
        homes.fill_from_templates(&[
            (CollectionKind::Events, cal),
            (CollectionKind::Contacts, contacts),
        ]);
        assert_eq!(
            homes.of(CollectionKind::Tasks).unwrap().as_str(),
            "https://mail.example.com/webdav/a@b.c/"
        );
        assert_eq!(
            homes.of(CollectionKind::Contacts).unwrap().as_str(),
            "https://mail.example.com/card/a/"
        );
    }
}
