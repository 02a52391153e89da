//! A message rebuilt from its Graph properties when Graph cannot export its MIME (`$value`
//! answers 500 `ErrorMimeContentConversionFailed` or times out: [`crate::graph::mail::undownloadable`]).
//! The shared reference graph.md ("MIME export") names the way: the message's JSON with its
//! transport headers (`internetMessageHeaders`), its body, and each attachment's raw bytes
//! (`/attachments/{id}/$value`), put together again as `multipart/mixed` (RFC 2046 §5.1.3).
//! The result is lossy (the original MIME structure, a signature, an encrypted payload's
//! wrapping are gone), so it says so in an [`REBUILT_HEADER`] field.
//!
//! The same properties always give the same bytes (the boundary comes from the message's id,
//! no clock is read), so the destination's duplicate check recognises a rebuilt message on a
//! rerun. Attachments are streamed by the caller between [`attachment_head`] and the next
//! part, base64-encoded by [`Base64Lines`], so a large attachment is never held whole.

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::graph::mail::{AttachmentMeta, MessageExport};
use crate::graph::types::Recipient;

/// The header field a rebuilt message carries, with the reason its MIME could not be exported.
pub const REBUILT_HEADER: &str = "X-M365-Migrator-Rebuilt";

/// Header fields of the original that describe its MIME structure: replaced by the rebuilt
/// message's own.
const STRUCTURE_FIELDS: [&str; 5] = [
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "Content-ID",
];

/// The multipart boundary of the message with Graph id `message_id`: stable across runs, and
/// not a line a base64 or header line can be (RFC 2046 §5.1.1: `=_` never starts base64 text).
pub fn boundary(message_id: &str) -> String {
    let digest = Sha256::digest(message_id.as_bytes());
    format!("=_m365_rebuilt_{}", hex::encode(&digest[..12]))
}

/// The header section, and the body part whole: everything up to the first attachment.
pub fn head(export: &MessageExport, why: &str, boundary: &str) -> Vec<u8> {
    let mut out = String::new();
    let present = |name: &str| {
        export
            .internet_message_headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(name))
    };
    let date = export
        .sent_date_time
        .as_deref()
        .or(export.received_date_time.as_deref())
        .and_then(rfc5322_date);
    let mut synthesized: Vec<(&str, String)> = Vec::new();
    if !present("Date") {
        if let Some(date) = date {
            synthesized.push(("Date", date));
        }
    }
    if !present("From") {
        if let Some(from) = export.from.as_ref().or(export.sender.as_ref()) {
            synthesized.push(("From", mailbox(from)));
        }
    }
    for (name, list) in [
        ("To", &export.to_recipients),
        ("Cc", &export.cc_recipients),
        ("Bcc", &export.bcc_recipients),
        ("Reply-To", &export.reply_to),
    ] {
        if !list.is_empty() && !present(name) {
            let joined: Vec<String> = list.iter().map(mailbox).collect();
            synthesized.push((name, joined.join(", ")));
        }
    }
    if !present("Subject") {
        synthesized.push((
            "Subject",
            encoded_words(export.subject.as_deref().unwrap_or("")),
        ));
    }
    if !present("Message-ID") {
        if let Some(id) = &export.internet_message_id {
            synthesized.push(("Message-ID", one_line(id)));
        }
    }
    for h in &export.internet_message_headers {
        if STRUCTURE_FIELDS
            .iter()
            .any(|f| f.eq_ignore_ascii_case(&h.name))
            || h.name.eq_ignore_ascii_case(REBUILT_HEADER)
            || !is_field_name(&h.name)
        {
            continue;
        }
        out.push_str(&format!("{}: {}\r\n", h.name, one_line(&h.value)));
    }
    for (name, value) in synthesized {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!(
        "{REBUILT_HEADER}: {}; rebuilt by M365 Migrator from the message's properties and attachments\r\n",
        one_line(why)
    ));
    out.push_str("MIME-Version: 1.0\r\n");
    out.push_str(&format!(
        "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
    ));
    let body = export.body.clone().unwrap_or_default();
    let subtype = if body.is_html() { "html" } else { "plain" };
    out.push_str(&format!(
        "--{boundary}\r\nContent-Type: text/{subtype}; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    ));
    let mut bytes = out.into_bytes();
    let mut lines = Base64Lines::default();
    bytes.extend(lines.feed(body.content.unwrap_or_default().as_bytes()));
    bytes.extend(lines.finish());
    bytes
}

/// The part header of one attachment; its bytes follow, base64-encoded ([`Base64Lines`]).
pub fn attachment_head(attachment: &AttachmentMeta, boundary: &str) -> Vec<u8> {
    let name = attachment.name.as_deref().unwrap_or("attachment");
    let content_type = attachment
        .content_type
        .as_deref()
        .filter(|t| !attachment.is_item() && is_media_type(t))
        .unwrap_or("application/octet-stream")
        .to_ascii_lowercase();
    let disposition = if attachment.is_inline {
        "inline"
    } else {
        "attachment"
    };
    let (name_param, filename_param) = if name.is_ascii() && !name.contains(['"', '\\']) {
        let plain = one_line(name);
        (format!("name=\"{plain}\""), format!("filename=\"{plain}\""))
    } else {
        // RFC 2231 §4 for the disposition, RFC 2047 words for the older `name` parameter.
        (
            format!("name=\"{}\"", encoded_words(name)),
            format!("filename*=utf-8''{}", percent_encoded(name)),
        )
    };
    format!(
        "--{boundary}\r\nContent-Type: {content_type}; {name_param}\r\nContent-Disposition: {disposition}; {filename_param}\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )
    .into_bytes()
}

/// A part in place of an attachment that has no bytes to copy (a link to a file elsewhere, or
/// one Graph would not give).
pub fn missing_attachment(attachment: &AttachmentMeta, what: &str, boundary: &str) -> Vec<u8> {
    let name = one_line(attachment.name.as_deref().unwrap_or("attachment"));
    let text = format!("The attachment \"{name}\" could not be copied: {what}.\r\n");
    let mut out = format!(
        "--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )
    .into_bytes();
    let mut lines = Base64Lines::default();
    out.extend(lines.feed(text.as_bytes()));
    out.extend(lines.finish());
    out
}

/// The end of the message.
pub fn closing(boundary: &str) -> Vec<u8> {
    format!("--{boundary}--\r\n").into_bytes()
}

/// Base64 in lines of 76 characters (RFC 2045 §6.8), fed in chunks of any size.
#[derive(Debug, Default)]
pub struct Base64Lines {
    /// Input not yet encoded: less than one line's worth.
    carry: Vec<u8>,
}

/// Input bytes per output line: 57 bytes make 76 characters.
const LINE_INPUT: usize = 57;

impl Base64Lines {
    /// The complete lines `chunk` (after what was carried) makes.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.carry.extend_from_slice(chunk);
        let whole = self.carry.len() / LINE_INPUT * LINE_INPUT;
        let mut out = Vec::with_capacity(whole / LINE_INPUT * 78);
        for line in self.carry[..whole].chunks(LINE_INPUT) {
            out.extend(
                base64::engine::general_purpose::STANDARD
                    .encode(line)
                    .bytes(),
            );
            out.extend(b"\r\n");
        }
        self.carry.drain(..whole);
        out
    }

    /// The last, shorter line, if any.
    pub fn finish(self) -> Vec<u8> {
        if self.carry.is_empty() {
            return Vec::new();
        }
        let mut out = base64::engine::general_purpose::STANDARD
            .encode(&self.carry)
            .into_bytes();
        out.extend(b"\r\n");
        out
    }
}

/// `Name <address>`, the name quoted or encoded as needed.
fn mailbox(r: &Recipient) -> String {
    let email = r.email_address.clone().unwrap_or_default();
    let address = one_line(email.address.as_deref().unwrap_or("")).replace(['<', '>'], "");
    match email
        .name
        .as_deref()
        .map(one_line)
        .filter(|n| !n.is_empty())
    {
        Some(name) if name == address => format!("<{address}>"),
        Some(name) if name.is_ascii() => {
            format!("\"{}\" <{address}>", name.replace(['"', '\\'], ""))
        }
        Some(name) => format!("{} <{address}>", encoded_words(&name)),
        None => format!("<{address}>"),
    }
}

/// RFC 2047 encoded words (UTF-8, base64) for non-ASCII text; ASCII is kept as it is.
fn encoded_words(text: &str) -> String {
    let text = one_line(text);
    if text.is_ascii() {
        return text;
    }
    // At most 45 bytes per word keep each under 75 characters (RFC 2047 §2), split on
    // character boundaries.
    let mut words = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if word.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut word));
        }
        word.push(c);
    }
    words.push(word);
    words
        .iter()
        .map(|w| {
            format!(
                "=?utf-8?B?{}?=",
                base64::engine::general_purpose::STANDARD.encode(w)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Line breaks and other control characters as spaces: one header line.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// RFC 5322 §3.6.1 field name: printable ASCII except colon.
fn is_field_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

/// `type/subtype` of token characters (RFC 2045 §5.1), no parameters.
fn is_media_type(value: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    matches!(value.split_once('/'), Some((t, s)) if token(t) && token(s))
}

/// RFC 2231 §7 value characters: attribute-char kept, everything else `%XX`.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// An RFC 3339 time as an RFC 5322 date.
fn rfc5322_date(rfc3339: &str) -> Option<String> {
    use time::format_description::well_known::{Rfc2822, Rfc3339};
    time::OffsetDateTime::parse(rfc3339, &Rfc3339)
        .ok()?
        .format(&Rfc2822)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::mail::MessageHeader;
    use crate::graph::types::{EmailAddress, ItemBody};

    fn export() -> MessageExport {
        MessageExport {
            id: "AAkALg=".into(),
            subject: Some("Grüße".into()),
            from: Some(Recipient {
                email_address: Some(EmailAddress {
                    name: Some("Ada".into()),
                    address: Some("ada@contoso.com".into()),
                    kind: None,
                }),
            }),
            sent_date_time: Some("2024-03-01T10:00:00Z".into()),
            internet_message_id: Some("<m1@contoso.com>".into()),
            body: Some(ItemBody {
                content_type: Some("html".into()),
                content: Some("<p>hi</p>".into()),
            }),
            ..MessageExport::default()
        }
    }

    #[test]
    fn a_rebuilt_head_names_itself_and_keeps_the_transport_headers_but_not_the_structure() {
        let mut e = export();
        e.internet_message_headers = vec![
            MessageHeader {
                name: "Received".into(),
                value: "from a by b".into(),
            },
            MessageHeader {
                name: "Content-Type".into(),
                value: "application/pkcs7-mime".into(),
            },
            MessageHeader {
                name: "Subject".into(),
                value: "=?utf-8?B?R3LDvMOfZQ==?=".into(),
            },
        ];
        let b = boundary(&e.id);
        let text = String::from_utf8(head(&e, "why", &b)).unwrap();
        assert!(text.starts_with("Received: from a by b\r\nSubject: =?utf-8?B?R3LDvMOfZQ==?=\r\n"));
        assert!(text.contains("Date: Fri, 01 Mar 2024 10:00:00 +0000\r\n"));
        assert!(text.contains("From: \"Ada\" <ada@contoso.com>\r\n"));
        assert!(text.contains("Message-ID: <m1@contoso.com>\r\n"));
        assert!(text.contains(&format!("{REBUILT_HEADER}: why; rebuilt")));
        assert!(!text.contains("pkcs7"));
        assert!(text.contains("Content-Type: text/html; charset=utf-8\r\n"));
        assert!(text.contains("PHA+aGk8L3A+\r\n"));
        assert_eq!(head(&e, "why", &b), head(&e, "why", &b), "stable bytes");
    }

    #[test]
    fn base64_lines_are_76_characters_whatever_the_chunks() {
        let data: Vec<u8> = (0..200u8).collect();
        let mut lines = Base64Lines::default();
        let mut out = Vec::new();
        for chunk in data.chunks(7) {
            out.extend(lines.feed(chunk));
        }
        out.extend(lines.finish());
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().all(|l| l.len() <= 76));
        let joined: String = text.lines().collect();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(joined)
                .unwrap(),
            data
        );
    }

    #[test]
    fn attachment_names_are_quoted_or_encoded() {
        let a = AttachmentMeta {
            name: Some("Rechnung ä.pdf".into()),
            content_type: Some("application/pdf".into()),
            ..AttachmentMeta::default()
        };
        let text = String::from_utf8(attachment_head(&a, "b")).unwrap();
        assert!(
            text.contains("filename*=utf-8''Rechnung%20%C3%A4.pdf"),
            "{text}"
        );
        let b = AttachmentMeta {
            name: Some("a.txt".into()),
            content_type: Some("bad type; x=1".into()),
            is_inline: true,
            ..AttachmentMeta::default()
        };
        let text = String::from_utf8(attachment_head(&b, "b")).unwrap();
        assert!(text.contains("Content-Type: application/octet-stream; name=\"a.txt\""));
        assert!(text.contains("Content-Disposition: inline; filename=\"a.txt\""));
    }
}
