//! RFC 5322 messages with CRLF line endings: plain, multipart/alternative, and
//! multipart/mixed with a base64 attachment; non-ASCII subjects as RFC 2047 encoded words.

use base64::Engine as _;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, RngCore};
use time::OffsetDateTime;

/// What one generated message contains.
pub struct MessageParts<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    pub date: OffsetDateTime,
    pub message_id: Option<&'a str>,
    pub body_len: usize,
    /// Size of a binary attachment, if any.
    pub attachment: Option<usize>,
}

const WORDS: [&str; 16] = [
    "the",
    "migration",
    "mailbox",
    "schedule",
    "budget",
    "team",
    "review",
    "Grüße",
    "report",
    "next",
    "week",
    "please",
    "thanks",
    "update",
    "draft",
    "numbers",
];

fn encoded_word(text: &str) -> String {
    if text.is_ascii() {
        text.to_string()
    } else {
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
        )
    }
}

fn address(mailbox: &str) -> String {
    // "Display Name <addr>": encode the display name if it is not ASCII.
    match mailbox.split_once(" <") {
        Some((name, rest)) if !name.is_ascii() => format!("{} <{rest}", encoded_word(name)),
        _ => mailbox.to_string(),
    }
}

fn text(rng: &mut StdRng, len: usize) -> String {
    let mut out = String::with_capacity(len + 80);
    let mut line = 0;
    while out.len() < len {
        let w = WORDS[rng.random_range(0..WORDS.len())];
        out.push_str(w);
        line += w.len() + 1;
        if line > 70 {
            out.push_str("\r\n");
            line = 0;
        } else {
            out.push(' ');
        }
    }
    out.push_str("\r\n");
    out
}

fn rfc2822(date: OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] +0000"
    );
    date.format(&format).unwrap_or_default()
}

/// Builds one message. Deterministic for a given `rng` state.
pub fn build_message(rng: &mut StdRng, parts: &MessageParts<'_>) -> Bytes {
    let date = rfc2822(parts.date);
    let mut m = String::with_capacity(parts.body_len * 2 + 1024);
    m.push_str(&format!(
        "Received: from mail.fabrikam.com (10.1.2.3) by EXCH01.contoso.com\r\n\twith Microsoft SMTP Server; {date}\r\n"
    ));
    m.push_str(&format!("From: {}\r\n", address(parts.from)));
    m.push_str(&format!("To: {}\r\n", address(parts.to)));
    m.push_str(&format!("Subject: {}\r\n", encoded_word(parts.subject)));
    m.push_str(&format!("Date: {date}\r\n"));
    if let Some(id) = parts.message_id {
        m.push_str(&format!("Message-ID: {id}\r\n"));
    }
    m.push_str("MIME-Version: 1.0\r\n");
    let plain = text(rng, parts.body_len);
    let boundary = format!("b1_{:016x}", rng.random::<u64>());
    match parts.attachment {
        None if rng.random_range(0..2) == 0 => {
            m.push_str("Content-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
            m.push_str(&plain);
        }
        None => {
            m.push_str(&format!(
                "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n"
            ));
            m.push_str(&format!("--{boundary}\r\nContent-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{plain}"));
            m.push_str(&format!("--{boundary}\r\nContent-Type: text/html; charset=\"utf-8\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n<html><body><p>{}</p></body></html>\r\n", plain.replace("\r\n", "<br>\r\n")));
            m.push_str(&format!("--{boundary}--\r\n"));
        }
        Some(size) => {
            let mut data = vec![0u8; size];
            rng.fill_bytes(&mut data);
            let encoded = base64::engine::general_purpose::STANDARD.encode(&data);
            m.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
            ));
            m.push_str(&format!("--{boundary}\r\nContent-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{plain}"));
            m.push_str(&format!("--{boundary}\r\nContent-Type: application/octet-stream; name=\"data.bin\"\r\nContent-Disposition: attachment; filename=\"data.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"));
            for chunk in encoded.as_bytes().chunks(76) {
                m.push_str(std::str::from_utf8(chunk).unwrap_or_default());
                m.push_str("\r\n");
            }
            m.push_str(&format!("--{boundary}--\r\n"));
        }
    }
    Bytes::from(m)
}
