//! A message's attachments and transport headers as Graph shows them, read from its MIME:
//! `GET …/messages/{id}/attachments`, `…/attachments/{id}` and `…/attachments/{id}/$value`
//! (Graph docs api/message-list-attachments.md, api/attachment-get.md: `$value` of a file
//! attachment is its raw bytes), and the `internetMessageHeaders` property
//! (resources/message.md: "returned only on applying a $select query option").
//!
//! Also what `$value` cannot export: an opaque-signed or encrypted S/MIME message (a top-level
//! `application/pkcs7-mime` entity, RFC 8551 §3.2) is stored by Exchange as an
//! `IPM.Note.SMIME` item whose one attachment holds the whole signed or enveloped data
//! ([MS-OXOSMIME] §2.1.3.2, `smime.p7m`), and `$value` answers it with 500
//! `ErrorMimeContentConversionFailed` on every attempt while its JSON reads fine
//! (LogicLabs-OU/OpenArchiver#487).

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::graph::{iso, page, select, Ctx};
use crate::tenant::Message;

/// One leaf of a message's MIME tree that Graph lists as a file attachment.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub is_inline: bool,
    /// The decoded bytes (what `$value` returns).
    pub bytes: Vec<u8>,
}

/// The header fields of a MIME entity, unfolded (RFC 5322 §2.2.3), in order.
pub fn header_fields(entity: &[u8]) -> Vec<(String, String)> {
    let (head, _) = split_entity(entity);
    let text = String::from_utf8_lossy(head);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = out.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    out
}

/// True for an opaque-signed or encrypted S/MIME message (see the module doc).
pub fn is_opaque_smime(message: &[u8]) -> bool {
    let media = typed(message).2;
    media == "application/pkcs7-mime" || media == "application/x-pkcs7-mime"
}

/// The file attachments of a message, in MIME order.
pub fn attachments(message: &[u8]) -> Vec<Attachment> {
    let mut out = Vec::new();
    if is_opaque_smime(message) {
        let fields = header_fields(message);
        let ct = field(&fields, "Content-Type").unwrap_or_default();
        out.push(Attachment {
            name: parameter(&ct, "name").unwrap_or_else(|| "smime.p7m".into()),
            content_type: "application/pkcs7-mime".into(),
            is_inline: false,
            bytes: decode(&fields, split_entity(message).1),
        });
        return out;
    }
    collect(message, true, &mut out);
    out
}

fn collect(entity: &[u8], top: bool, out: &mut Vec<Attachment>) {
    let (fields, ct, media, body) = typed(entity);
    if let Some(rest) = media.strip_prefix("multipart/") {
        // The alternative bodies of a message are its body, not attachments.
        if rest == "alternative" {
            return;
        }
        if let Some(boundary) = parameter(&ct, "boundary") {
            for part in parts(body, &boundary) {
                collect(part, false, out);
            }
        }
        return;
    }
    let disposition = field(&fields, "Content-Disposition").unwrap_or_default();
    let name = parameter(&disposition, "filename").or_else(|| parameter(&ct, "name"));
    let is_attachment = disposition.to_ascii_lowercase().starts_with("attachment")
        || name.is_some()
        || (!top && !media.starts_with("text/"));
    if top || !is_attachment {
        return;
    }
    out.push(Attachment {
        name: name.unwrap_or_else(|| "attachment".into()),
        content_type: media,
        is_inline: disposition.to_ascii_lowercase().starts_with("inline"),
        bytes: decode(&fields, body),
    });
}

/// The text of a message's first `text/*` leaf that is not an attachment (what Graph shows as
/// its `body`); empty for an opaque S/MIME item, whose content is its attachment.
pub fn body_text(message: &[u8]) -> String {
    if is_opaque_smime(message) {
        return String::new();
    }
    first_text(message).unwrap_or_default()
}

fn first_text(entity: &[u8]) -> Option<String> {
    let (fields, ct, media, body) = typed(entity);
    if media.starts_with("multipart/") {
        let boundary = parameter(&ct, "boundary")?;
        return parts(body, &boundary).into_iter().find_map(first_text);
    }
    let disposition = field(&fields, "Content-Disposition").unwrap_or_default();
    if !media.starts_with("text/") || disposition.to_ascii_lowercase().starts_with("attachment") {
        return None;
    }
    Some(String::from_utf8_lossy(&decode(&fields, body)).into_owned())
}

/// An entity's header fields, its `Content-Type` (default `text/plain`, RFC 2045 §5.2), its
/// media type in lower case without parameters, and its body.
fn typed(entity: &[u8]) -> (Vec<(String, String)>, String, String, &[u8]) {
    let fields = header_fields(entity);
    let ct = field(&fields, "Content-Type").unwrap_or_else(|| "text/plain".into());
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    (fields, ct, media, split_entity(entity).1)
}

/// (header section, body) of an entity.
fn split_entity(entity: &[u8]) -> (&[u8], &[u8]) {
    match entity.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => (&entity[..i], &entity[i + 4..]),
        None => (entity, &[]),
    }
}

fn field(fields: &[(String, String)], name: &str) -> Option<String> {
    fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

/// A parameter of a structured header value (`boundary`, `name`, `filename`), unquoted; an
/// RFC 2231 `name*=utf-8''…` value is percent-decoded.
fn parameter(value: &str, name: &str) -> Option<String> {
    for piece in value.split(';').skip(1) {
        let Some((key, v)) = piece.split_once('=') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let v = v.trim().trim_matches('"');
        if key == name {
            return Some(v.to_string());
        }
        if key == format!("{name}*") {
            let encoded = v.splitn(3, '\'').nth(2).unwrap_or(v);
            return Some(crate::graph::percent_decode(encoded));
        }
    }
    None
}

/// The body parts of a multipart body (RFC 2046 §5.1.1).
fn parts<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let delimiter = format!("--{boundary}");
    let d = delimiter.as_bytes();
    let mut starts = Vec::new();
    let mut i = 0;
    while i + d.len() <= body.len() {
        let at_line = i == 0 || body[i - 1] == b'\n';
        if at_line && &body[i..i + d.len()] == d {
            starts.push(i);
            i += d.len();
        } else {
            i += 1;
        }
    }
    let mut out = Vec::new();
    for w in starts.windows(2) {
        let (from, to) = (w[0] + d.len(), w[1]);
        let part = &body[from..to];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        out.push(part);
    }
    out
}

fn decode(fields: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let cte = field(fields, "Content-Transfer-Encoding").unwrap_or_default();
    if cte.eq_ignore_ascii_case("base64") {
        let clean: Vec<u8> = body
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(clean)
            .unwrap_or_default()
    } else {
        body.to_vec()
    }
}

/// A stable attachment id: the message's id and the attachment's position.
fn attachment_id(message: &Message, index: usize) -> String {
    format!(
        "AAMkAGI2ATT{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}:{index}", message.id))
    )
}

fn attachment_json(message: &Message, index: usize, a: &Attachment) -> Value {
    json!({"@odata.type": "#microsoft.graph.fileAttachment",
           "id": attachment_id(message, index),
           "lastModifiedDateTime": iso(message.received),
           "name": a.name, "contentType": a.content_type, "size": a.bytes.len(),
           "isInline": a.is_inline, "contentId": null,
           "contentBytes": base64::engine::general_purpose::STANDARD.encode(&a.bytes)})
}

/// `…/messages/{id}/attachments[/{id}[/$value]]`: `rest` is what follows `attachments`.
pub(crate) fn route(ctx: &Ctx<'_>, message: &Message, rest: &[&str]) -> Response {
    let list = attachments(&message.mime.bytes());
    let fields = ctx.select();
    match rest {
        [] => {
            let items: Vec<(usize, &Attachment)> = list.iter().enumerate().collect();
            page(ctx, "attachments", &items, 10, 1000, |(i, a)| {
                // Without `$select` the bytes come inline (api/message-list-attachments.md).
                select(fields.as_deref(), attachment_json(message, *i, a))
            })
        }
        [id, tail @ ..] => {
            let Some((i, a)) = list
                .iter()
                .enumerate()
                .find(|(i, _)| attachment_id(message, *i) == *id)
            else {
                return ctx.error(
                    StatusCode::NOT_FOUND,
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                );
            };
            match tail {
                [] => axum::Json(select(fields.as_deref(), attachment_json(message, i, a)))
                    .into_response(),
                ["$value"] => {
                    let mut response = Response::new(Body::from(a.bytes.clone()));
                    let ct = HeaderValue::from_str(&a.content_type)
                        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
                    response.headers_mut().insert(header::CONTENT_TYPE, ct);
                    response
                        .headers_mut()
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(a.bytes.len()));
                    response
                }
                _ => ctx.error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "Resource not found for the segment.",
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_are_the_named_leaves_and_smime_is_one_p7m() {
        let mixed = b"Subject: x\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: multipart/alternative; boundary=\"b2\"\r\n\r\n--b2\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b2--\r\n--b1\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b1--\r\n";
        let found = attachments(mixed);
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].name.as_str(), found[0].bytes.as_slice()),
            ("a.pdf", &[0u8, 1, 2][..])
        );
        let smime = b"Subject: s\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n";
        assert!(is_opaque_smime(smime));
        let found = attachments(smime);
        assert_eq!(
            (found[0].name.as_str(), found[0].bytes.as_slice()),
            ("smime.p7m", &[0u8, 1, 2][..])
        );
        assert_eq!(
            header_fields(b"A: 1\r\n 2\r\nB: 3\r\n\r\nbody"),
            vec![("A".into(), "1 2".into()), ("B".into(), "3".into())]
        );
    }
}
