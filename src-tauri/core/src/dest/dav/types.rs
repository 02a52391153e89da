//! WebDAV wire types: the XML request bodies the destination sends (PROPFIND, MKCALENDAR,
//! extended MKCOL, calendar-query, addressbook-query) and the parsed `207 Multi-Status`
//! (RFC 4918 §13) and `DAV:error` (§16) responses, plus the one iCalendar/vCard fact the
//! destination reads from a resource: its UIDs.
//!
//! Parsing is namespace-aware ([`roxmltree`], DTDs refused), so `D:href`, `href xmlns="DAV:"`
//! and any other prefix read the same.

use roxmltree::{Document, Node};

pub const DAV: &str = "DAV:";
pub const CALDAV: &str = "urn:ietf:params:xml:ns:caldav";
pub const CARDDAV: &str = "urn:ietf:params:xml:ns:carddav";
/// `getctag` (calendarserver.org, used by most servers besides sync-token).
pub const CALENDARSERVER: &str = "http://calendarserver.org/ns/";
/// `calendar-color` (Apple's iCal namespace, understood by Radicale, IceWarp, Nextcloud...).
pub const APPLE_ICAL: &str = "http://apple.com/ns/ical/";

/// A malformed response body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable WebDAV response: {0}")]
pub struct XmlError(pub String);

/// Escapes text for an XML element's content or a double-quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Not representable in XML 1.0; a display name never needs them.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

const PROLOG: &str = r#"<?xml version="1.0" encoding="utf-8"?>"#;

/// PROPFIND for the principal (RFC 5397 §3).
pub fn propfind_principal() -> String {
    format!(
        r#"{PROLOG}<D:propfind xmlns:D="DAV:"><D:prop><D:current-user-principal/></D:prop></D:propfind>"#
    )
}

/// PROPFIND on a principal for both home sets (RFC 4791 §6.2.1, RFC 6352 §7.1.1).
pub fn propfind_home_sets() -> String {
    format!(
        r#"{PROLOG}<D:propfind xmlns:D="DAV:" xmlns:C="{CALDAV}" xmlns:CR="{CARDDAV}"><D:prop><C:calendar-home-set/><CR:addressbook-home-set/></D:prop></D:propfind>"#
    )
}

/// PROPFIND for what describes a collection: name, type, components, color, change tags.
pub fn propfind_collections() -> String {
    format!(
        r#"{PROLOG}<D:propfind xmlns:D="DAV:" xmlns:C="{CALDAV}" xmlns:CS="{CALENDARSERVER}" xmlns:A="{APPLE_ICAL}"><D:prop><D:resourcetype/><D:displayname/><C:supported-calendar-component-set/><A:calendar-color/><CS:getctag/><D:sync-token/></D:prop></D:propfind>"#
    )
}

/// PROPFIND for the members of a collection and their ETags.
pub fn propfind_etags() -> String {
    format!(
        r#"{PROLOG}<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getetag/></D:prop></D:propfind>"#
    )
}

/// MKCALENDAR body (RFC 4791 §5.3.1): display name, color, and the one component the
/// calendar holds (`VEVENT` or `VTODO`).
pub fn mkcalendar(display_name: &str, color: Option<&str>, component: &str) -> String {
    let color = color
        .map(|c| format!("<A:calendar-color>{}</A:calendar-color>", escape(c)))
        .unwrap_or_default();
    format!(
        r#"{PROLOG}<C:mkcalendar xmlns:D="DAV:" xmlns:C="{CALDAV}" xmlns:A="{APPLE_ICAL}"><D:set><D:prop><D:displayname>{}</D:displayname>{color}<C:supported-calendar-component-set><C:comp name="{}"/></C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>"#,
        escape(display_name),
        escape(component)
    )
}

/// Extended MKCOL body creating an address book (RFC 5689 §3, RFC 6352 §6.3.1).
pub fn mkcol_addressbook(display_name: &str) -> String {
    format!(
        r#"{PROLOG}<D:mkcol xmlns:D="DAV:" xmlns:CR="{CARDDAV}"><D:set><D:prop><D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype><D:displayname>{}</D:displayname></D:prop></D:set></D:mkcol>"#,
        escape(display_name)
    )
}

/// calendar-query REPORT for the resources whose `component` has this UID (RFC 4791 §7.8,
/// §9.7.5). `text-match` is a substring match (case-insensitive on many servers), so the
/// caller checks the returned data for the exact UID.
pub fn calendar_query_uid(component: &str, uid: &str) -> String {
    format!(
        r#"{PROLOG}<C:calendar-query xmlns:D="DAV:" xmlns:C="{CALDAV}"><D:prop><D:getetag/><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="{}"><C:prop-filter name="UID"><C:text-match collation="i;octet">{}</C:text-match></C:prop-filter></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#,
        escape(component),
        escape(uid)
    )
}

/// addressbook-query REPORT for the vCards with this UID (RFC 6352 §8.6, §10.5.4).
pub fn addressbook_query_uid(uid: &str) -> String {
    format!(
        r#"{PROLOG}<CR:addressbook-query xmlns:D="DAV:" xmlns:CR="{CARDDAV}"><D:prop><D:getetag/><CR:address-data/></D:prop><CR:filter><CR:prop-filter name="UID"><CR:text-match collation="i;octet" match-type="equals">{}</CR:text-match></CR:prop-filter></CR:filter></CR:addressbook-query>"#,
        escape(uid)
    )
}

/// What a resource is (`DAV:resourcetype`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceType {
    pub collection: bool,
    pub calendar: bool,
    pub addressbook: bool,
    pub principal: bool,
}

/// The properties the destination reads, from the `200` propstats of one response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Props {
    pub current_user_principal: Option<String>,
    pub calendar_home_set: Vec<String>,
    pub addressbook_home_set: Vec<String>,
    pub resource_type: Option<ResourceType>,
    pub display_name: Option<String>,
    /// `supported-calendar-component-set`; `None` when not reported (then any component).
    pub components: Option<Vec<String>>,
    pub color: Option<String>,
    pub ctag: Option<String>,
    pub sync_token: Option<String>,
    pub etag: Option<String>,
    /// `calendar-data` or `address-data`.
    pub data: Option<String>,
}

/// One `DAV:response` of a multistatus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// As sent by the server (an absolute path or URL, percent-encoded).
    pub href: String,
    /// The response-level status (RFC 4918 §14.24), e.g. 404 for a vanished member.
    pub status: Option<u16>,
    pub props: Props,
}

/// Parses a `207 Multi-Status` body.
pub fn parse_multistatus(body: &[u8]) -> Result<Vec<Response>, XmlError> {
    let text = std::str::from_utf8(body).map_err(|e| XmlError(format!("not UTF-8: {e}")))?;
    let doc = Document::parse(text).map_err(|e| XmlError(e.to_string()))?;
    let root = doc.root_element();
    if !is(root, DAV, "multistatus") {
        return Err(XmlError(format!(
            "expected DAV:multistatus, got {}",
            root.tag_name().name()
        )));
    }
    let mut out = Vec::new();
    for response in children(root, DAV, "response") {
        let Some(href) = child(response, DAV, "href").map(text_of) else {
            return Err(XmlError("a response without href".into()));
        };
        let status = child(response, DAV, "status").and_then(|s| status_code(&text_of(s)));
        let mut props = Props::default();
        for propstat in children(response, DAV, "propstat") {
            let ok = child(propstat, DAV, "status")
                .and_then(|s| status_code(&text_of(s)))
                .is_some_and(|code| (200..300).contains(&code));
            if !ok {
                continue;
            }
            for prop in children(propstat, DAV, "prop") {
                read_props(prop, &mut props);
            }
        }
        out.push(Response {
            href: href.trim().to_string(),
            status,
            props,
        });
    }
    Ok(out)
}

fn read_props(prop: Node, props: &mut Props) {
    for p in prop.children().filter(Node::is_element) {
        let (ns, name) = (p.tag_name().namespace().unwrap_or(""), p.tag_name().name());
        match (ns, name) {
            (DAV, "current-user-principal") => {
                props.current_user_principal =
                    child(p, DAV, "href").map(|h| text_of(h).trim().into())
            }
            (CALDAV, "calendar-home-set") => props.calendar_home_set = hrefs(p),
            (CARDDAV, "addressbook-home-set") => props.addressbook_home_set = hrefs(p),
            (DAV, "resourcetype") => {
                props.resource_type = Some(ResourceType {
                    collection: child(p, DAV, "collection").is_some(),
                    calendar: child(p, CALDAV, "calendar").is_some(),
                    addressbook: child(p, CARDDAV, "addressbook").is_some(),
                    principal: child(p, DAV, "principal").is_some(),
                })
            }
            (DAV, "displayname") => props.display_name = non_empty(text_of(p)),
            (CALDAV, "supported-calendar-component-set") => {
                props.components = Some(
                    children(p, CALDAV, "comp")
                        .filter_map(|c| c.attribute("name"))
                        .map(str::to_ascii_uppercase)
                        .collect(),
                )
            }
            (APPLE_ICAL, "calendar-color") => props.color = non_empty(text_of(p)),
            (CALENDARSERVER, "getctag") => props.ctag = non_empty(text_of(p)),
            (DAV, "sync-token") => props.sync_token = non_empty(text_of(p)),
            (DAV, "getetag") => props.etag = non_empty(text_of(p)),
            (CALDAV, "calendar-data") | (CARDDAV, "address-data") => props.data = Some(text_of(p)),
            _ => {}
        }
    }
}

/// The precondition/postcondition names of a `DAV:error` body (RFC 4918 §16), as
/// `prefix:name` with `C` for CalDAV, `CR` for CardDAV and `D` for DAV (e.g.
/// `C:no-uid-conflict`). Empty when the body is not such a document.
pub fn error_conditions(body: &[u8]) -> Vec<String> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Vec::new();
    };
    let Ok(doc) = Document::parse(text) else {
        return Vec::new();
    };
    let root = doc.root_element();
    if !is(root, DAV, "error") {
        return Vec::new();
    }
    root.children()
        .filter(Node::is_element)
        .map(|c| {
            let prefix = match c.tag_name().namespace() {
                Some(CALDAV) => "C:",
                Some(CARDDAV) => "CR:",
                Some(DAV) => "D:",
                _ => "",
            };
            format!("{prefix}{}", c.tag_name().name())
        })
        .collect()
}

/// The href a `no-uid-conflict` refusal names (RFC 4791 §5.3.2.1, RFC 6352 §6.3.2.1: the
/// precondition element holds the `DAV:href` of the resource that has the UID), if any.
pub fn uid_conflict_href(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let doc = Document::parse(text).ok()?;
    let root = doc.root_element();
    if !is(root, DAV, "error") {
        return None;
    }
    root.children()
        .filter(|c| c.is_element() && c.tag_name().name() == "no-uid-conflict")
        .flat_map(|c| c.children())
        .find(|h| is(*h, DAV, "href"))
        .and_then(|h| h.text())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// The UIDs in an iCalendar (RFC 5545 §3.8.4.7) or vCard (RFC 6350 §6.7.6) text: the values of
/// its `UID` content lines, unfolded (§3.1). A calendar resource has one UID per component.
pub fn resource_uids(text: &str) -> Vec<String> {
    let mut uids = Vec::new();
    let mut line = String::new();
    let mut flush = |line: &mut String| {
        if let Some(uid) = uid_value(line) {
            if !uids.contains(&uid) {
                uids.push(uid);
            }
        }
        line.clear();
    };
    for raw in text.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(cont) = raw.strip_prefix([' ', '\t']) {
            line.push_str(cont);
        } else {
            flush(&mut line);
            line.push_str(raw);
        }
    }
    flush(&mut line);
    uids
}

/// The value of one unfolded content line if it is a `UID` property (any group prefix,
/// parameters skipped, `:` inside quoted parameter values ignored).
fn uid_value(line: &str) -> Option<String> {
    let mut in_quotes = false;
    let mut colon = None;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ':' if !in_quotes => {
                colon = Some(i);
                break;
            }
            _ => {}
        }
    }
    let colon = colon?;
    let head = &line[..colon];
    let name = head.split(';').next()?;
    let name = name.rsplit('.').next()?; // vCard groups: `item1.UID`
    name.trim()
        .eq_ignore_ascii_case("UID")
        .then(|| line[colon + 1..].trim().to_string())
}

fn is(node: Node, ns: &str, name: &str) -> bool {
    node.is_element() && node.tag_name().name() == name && node.tag_name().namespace() == Some(ns)
}

fn children<'a, 'input>(
    node: Node<'a, 'input>,
    ns: &'a str,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'input>> + 'a {
    node.children().filter(move |c| is(*c, ns, name))
}

fn child<'a, 'input>(
    node: Node<'a, 'input>,
    ns: &'a str,
    name: &'a str,
) -> Option<Node<'a, 'input>> {
    node.children().find(|c| is(*c, ns, name))
}

fn hrefs(node: Node) -> Vec<String> {
    children(node, DAV, "href")
        .map(|h| text_of(h).trim().to_string())
        .filter(|h| !h.is_empty())
        .collect()
}

/// All text below `node` (a value may be split by comments or CDATA sections).
fn text_of(node: Node) -> String {
    node.descendants()
        .filter(Node::is_text)
        .filter_map(|t| t.text())
        .collect()
}

fn non_empty(s: String) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// The code of a status line `HTTP/1.1 404 Not Found`.
fn status_code(line: &str) -> Option<u16> {
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multistatus_reads_any_prefix_and_only_successful_propstats() {
        let body = br#"<?xml version="1.0"?>
<x:multistatus xmlns:x="DAV:" xmlns:cal="urn:ietf:params:xml:ns:caldav" xmlns:cs="http://calendarserver.org/ns/">
 <x:response><x:href>/u/</x:href>
  <x:propstat><x:prop><x:resourcetype><x:collection/><x:principal/></x:resourcetype></x:prop><x:status>HTTP/1.1 200 OK</x:status></x:propstat>
  <x:propstat><x:prop><x:displayname>should not be read</x:displayname></x:prop><x:status>HTTP/1.1 404 Not Found</x:status></x:propstat>
 </x:response>
 <response xmlns="DAV:"><href>/u/cal%20one/</href><propstat><prop>
   <resourcetype><collection/><cal:calendar/></resourcetype>
   <displayname>Work &amp; <!-- c -->Play</displayname>
   <cal:supported-calendar-component-set><cal:comp name="vtodo"/></cal:supported-calendar-component-set>
   <cs:getctag>"7"</cs:getctag><sync-token>tok</sync-token>
  </prop><status>HTTP/1.1 200 OK</status></propstat></response>
 <x:response><x:href>/u/gone.ics</x:href><x:status>HTTP/1.1 404 Not Found</x:status></x:response>
</x:multistatus>"#;
        let r = parse_multistatus(body).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].props.display_name, None);
        assert!(r[0].props.resource_type.as_ref().unwrap().principal);
        let cal = &r[1];
        assert_eq!(cal.href, "/u/cal%20one/");
        assert_eq!(cal.props.display_name.as_deref(), Some("Work & Play"));
        assert!(cal.props.resource_type.as_ref().unwrap().calendar);
        assert_eq!(cal.props.components, Some(vec!["VTODO".to_string()]));
        assert_eq!(cal.props.ctag.as_deref(), Some("\"7\""));
        assert_eq!(cal.props.sync_token.as_deref(), Some("tok"));
        assert_eq!(r[2].status, Some(404));
    }

    #[test]
    fn malformed_or_hostile_bodies_are_errors() {
        assert!(parse_multistatus(b"<multistatus xmlns='DAV:'><response>").is_err());
        assert!(parse_multistatus(b"<error xmlns='DAV:'/>").is_err());
        let dtd = br#"<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaa">]><multistatus xmlns="DAV:">&a;</multistatus>"#;
        assert!(parse_multistatus(dtd).is_err());
    }

    #[test]
    fn error_conditions_name_the_precondition() {
        let body = br#"<?xml version='1.0'?><error xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><C:no-uid-conflict><href>/a.ics</href></C:no-uid-conflict></error>"#;
        assert_eq!(error_conditions(body), vec!["C:no-uid-conflict"]);
        assert!(error_conditions(b"Bad Request").is_empty());
    }

    #[test]
    fn request_bodies_escape_names() {
        let body = mkcalendar("A <b> & \"c\"", Some("#FF0000FF"), "VTODO");
        assert!(body.contains("<D:displayname>A &lt;b&gt; &amp; &quot;c&quot;</D:displayname>"));
        assert!(body.contains(r#"<C:comp name="VTODO"/>"#));
        assert!(Document::parse(&body).is_ok());
        assert!(Document::parse(&mkcol_addressbook("x\u{1}y")).is_ok());
        assert!(Document::parse(&calendar_query_uid("VEVENT", "a<b")).is_ok());
        assert!(Document::parse(&addressbook_query_uid("a&b")).is_ok());
    }

    #[test]
    fn uids_are_unfolded_and_found_in_groups_and_after_parameters() {
        let ics = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:abc-\r\n def\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nuid;X-P=\"a:b\":abc-def\r\nRECURRENCE-ID:20240101T000000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        assert_eq!(resource_uids(ics), vec!["abc-def"]);
        let vcf = "BEGIN:VCARD\nVERSION:3.0\nitem1.UID:urn:uuid:1\nFN:x\nEND:VCARD\n";
        assert_eq!(resource_uids(vcf), vec!["urn:uuid:1"]);
        assert!(resource_uids("SUMMARY:UID:x\n").is_empty());
    }
}
