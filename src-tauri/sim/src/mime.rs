//! Generated RFC 5322 messages with CRLF line endings: `text/plain`, `multipart/alternative`
//! (plain + HTML), and `multipart/mixed` with base64 attachments; non-ASCII subjects, display
//! names and file names encoded as RFC 2047 encoded words / RFC 2231 parameters.
//!
//! A generated message is stored as a small [`Recipe`] and its bytes are produced on demand,
//! always identical for the same recipe, so a tenant of thousands of mailboxes stays small in
//! memory. [`Mime`] wraps either a recipe or fixed bytes (messages added by tests).

use std::fmt;
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use time::{OffsetDateTime, UtcOffset};

/// The body structure of a generated message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One `text/plain` part.
    Plain,
    /// `multipart/alternative`: text and HTML.
    Alternative,
    /// `multipart/mixed`: a `multipart/alternative` body and base64 attachments.
    Mixed,
}

/// Everything needed to produce one message's bytes again, identically.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    /// Seeds the body text, boundaries and attachment bytes.
    pub seed: u64,
    /// `Display Name <address>`; a non-ASCII display name is encoded.
    pub from: String,
    pub to: String,
    pub cc: Option<String>,
    pub subject: String,
    /// The `Date:` header (the sender's clock, with its UTC offset).
    pub date: OffsetDateTime,
    /// When the server received it: the `Received:` header, if `received_header`.
    pub received: OffsetDateTime,
    pub received_header: bool,
    /// With angle brackets, e.g. `<abc@contoso.com>`; `None`: no Message-ID header.
    pub message_id: Option<String>,
    pub shape: Shape,
    /// Approximate length of the text body in bytes.
    pub body_len: usize,
    /// File names and sizes (raw, before base64) of the attachments (`Shape::Mixed`).
    pub attachments: Vec<(String, usize)>,
    /// `Importance: high` / `low` header when not normal.
    pub importance: String,
}

/// A message's MIME bytes: fixed, or produced from a [`Recipe`] on demand.
///
/// Contract: every call returns identical bytes. [`Mime::bytes`] and [`Mime::len`] do not
/// keep the bytes; `as_ref`/`Deref` keep them (cached) so they can hand out a reference.
#[derive(Clone)]
pub struct Mime {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Fixed(Bytes),
    Recipe {
        recipe: Arc<Recipe>,
        cache: Arc<OnceLock<Bytes>>,
    },
}

impl Mime {
    /// A message generated on demand from `recipe`.
    pub fn from_recipe(recipe: Recipe) -> Self {
        Mime {
            inner: Inner::Recipe {
                recipe: Arc::new(recipe),
                cache: Arc::new(OnceLock::new()),
            },
        }
    }

    /// The bytes (generated if needed; not kept unless already cached).
    pub fn bytes(&self) -> Bytes {
        match &self.inner {
            Inner::Fixed(b) => b.clone(),
            Inner::Recipe { recipe, cache } => match cache.get() {
                Some(b) => b.clone(),
                None => build(recipe),
            },
        }
    }

    /// The size in bytes.
    pub fn len(&self) -> usize {
        match &self.inner {
            Inner::Fixed(b) => b.len(),
            Inner::Recipe { cache, .. } => match cache.get() {
                Some(b) => b.len(),
                None => self.bytes().len(),
            },
        }
    }

    /// Whether the message has no bytes (never true for generated ones).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The recipe, for generated messages.
    pub fn recipe(&self) -> Option<&Recipe> {
        match &self.inner {
            Inner::Fixed(_) => None,
            Inner::Recipe { recipe, .. } => Some(recipe),
        }
    }

    /// Whether this message's bytes are held in memory (fixed, or generated and cached).
    #[cfg(test)]
    pub(crate) fn holds_bytes(&self) -> bool {
        match &self.inner {
            Inner::Fixed(_) => true,
            Inner::Recipe { cache, .. } => cache.get().is_some(),
        }
    }

    fn cached(&self) -> &Bytes {
        match &self.inner {
            Inner::Fixed(b) => b,
            Inner::Recipe { recipe, cache } => cache.get_or_init(|| build(recipe)),
        }
    }
}

impl From<Bytes> for Mime {
    fn from(b: Bytes) -> Self {
        Mime {
            inner: Inner::Fixed(b),
        }
    }
}

impl From<Vec<u8>> for Mime {
    fn from(b: Vec<u8>) -> Self {
        Bytes::from(b).into()
    }
}

impl From<&Mime> for Bytes {
    fn from(m: &Mime) -> Self {
        m.bytes()
    }
}

impl AsRef<[u8]> for Mime {
    fn as_ref(&self) -> &[u8] {
        self.cached()
    }
}

impl std::ops::Deref for Mime {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.cached()
    }
}

impl PartialEq for Mime {
    fn eq(&self, other: &Self) -> bool {
        match (&self.inner, &other.inner) {
            (Inner::Recipe { recipe: a, .. }, Inner::Recipe { recipe: b, .. }) => a == b,
            _ => self.bytes() == other.bytes(),
        }
    }
}

impl fmt::Debug for Mime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Fixed(b) => write!(f, "Mime({} bytes)", b.len()),
            Inner::Recipe { recipe, .. } => write!(f, "Mime(recipe seed {})", recipe.seed),
        }
    }
}

const WORDS: [&str; 24] = [
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
    "für",
    "meeting",
    "会議",
    "customer",
    "invoice",
    "déjà",
    "and",
    "we",
];

/// RFC 2047 B-encoded words for non-ASCII text, each at most 75 characters and never
/// splitting a UTF-8 sequence (RFC 2047 §2, §5), joined by folding whitespace.
pub fn encode_words(text: &str) -> String {
    if text.is_ascii() {
        return text.to_string();
    }
    // "=?UTF-8?B?" + "?=" is 12 characters; 42 bytes of UTF-8 are 56 base64 characters, so a
    // word is at most 68 characters and a header line ("Subject: " + word) stays within 78.
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        if chunk.len() + c.len_utf8() > 42 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|w| {
            format!(
                "=?UTF-8?B?{}?=",
                base64::engine::general_purpose::STANDARD.encode(w.as_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join("\r\n ")
}

fn address(mailbox: &str) -> String {
    match mailbox.split_once(" <") {
        Some((name, rest)) if !name.is_ascii() => format!("{} <{rest}", encode_words(name)),
        Some((name, rest)) if name.contains([',', '.', '@']) => format!("\"{name}\" <{rest}"),
        _ => mailbox.to_string(),
    }
}

/// Text of about `len` bytes in lines of at most ~78 characters, CRLF-terminated.
fn text(rng: &mut StdRng, len: usize) -> String {
    let mut out = String::with_capacity(len + 80);
    let mut line = 0;
    while out.len() < len {
        let w = WORDS[rng.random_range(0..WORDS.len())];
        out.push_str(w);
        line += w.len() + 1;
        if line > 66 {
            out.push_str("\r\n");
            line = 0;
        } else {
            out.push(' ');
        }
    }
    out.push_str("\r\n");
    out
}

/// RFC 5322 §3.3 date-time, in the offset the date carries.
pub fn rfc5322_date(date: OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day padding:none] [month repr:short] [year] [hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute]"
    );
    date.format(&format).unwrap_or_default()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The text body a recipe produces (the same text as the `text/plain` part).
pub fn body_text(recipe: &Recipe) -> String {
    let mut rng = StdRng::seed_from_u64(recipe.seed);
    text(&mut rng, recipe.body_len)
}

/// Produces a recipe's bytes. Pure: the same recipe gives the same bytes.
pub fn build(recipe: &Recipe) -> Bytes {
    let mut rng = StdRng::seed_from_u64(recipe.seed);
    let plain = text(&mut rng, recipe.body_len);
    let attachment_total: usize = recipe.attachments.iter().map(|a| a.1).sum();
    let mut m = String::with_capacity(recipe.body_len * 3 + attachment_total * 4 / 3 + 2048);
    if recipe.received_header {
        let received = rfc5322_date(recipe.received.to_offset(UtcOffset::UTC));
        m.push_str(&format!(
            "Received: from EU2PR01MB1234.eurprd01.prod.outlook.com (2603:10a6:10:1::12)\r\n by \
             AM0PR01MB5678.eurprd01.prod.outlook.com with HTTPS;\r\n {received}\r\n"
        ));
        m.push_str(&format!(
            "Received: from mail.fabrikam.com (203.0.113.25) by\r\n \
             EU2PR01MB1234.mail.protection.outlook.com (10.152.16.90) with Microsoft SMTP\r\n \
             Server id 15.20.7000.1;\r\n {received}\r\n"
        ));
    }
    m.push_str(&format!("From: {}\r\n", address(&recipe.from)));
    m.push_str(&format!("To: {}\r\n", address(&recipe.to)));
    if let Some(cc) = &recipe.cc {
        m.push_str(&format!("Cc: {}\r\n", address(cc)));
    }
    m.push_str(&format!("Subject: {}\r\n", encode_words(&recipe.subject)));
    m.push_str(&format!("Date: {}\r\n", rfc5322_date(recipe.date)));
    if let Some(id) = &recipe.message_id {
        m.push_str(&format!("Message-ID: {id}\r\n"));
    }
    match recipe.importance.as_str() {
        "high" => m.push_str("Importance: high\r\nX-Priority: 1\r\n"),
        "low" => m.push_str("Importance: low\r\nX-Priority: 5\r\n"),
        _ => {}
    }
    m.push_str("Content-Language: en-US\r\nMIME-Version: 1.0\r\n");
    let outer = format!("_000_{:016X}_", rng.random::<u64>());
    let inner = format!("_001_{:016X}_", rng.random::<u64>());
    let alternative = |m: &mut String, boundary: &str| {
        m.push_str(&format!(
            "Content-Type: multipart/alternative;\r\n\tboundary=\"{boundary}\"\r\n\r\n"
        ));
        m.push_str(&format!(
            "--{boundary}\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n\
             Content-Transfer-Encoding: 8bit\r\n\r\n{plain}\r\n"
        ));
        m.push_str(&format!(
            "--{boundary}\r\nContent-Type: text/html; charset=\"utf-8\"\r\n\
             Content-Transfer-Encoding: 8bit\r\n\r\n<html><head>\r\n<meta http-equiv=\"Content-Type\" \
             content=\"text/html; charset=utf-8\">\r\n</head>\r\n<body>\r\n<div>{}</div>\r\n</body>\r\n</html>\r\n\r\n",
            html_escape(&plain).replace("\r\n", "<br>\r\n")
        ));
        m.push_str(&format!("--{boundary}--\r\n"));
    };
    match recipe.shape {
        Shape::Plain => {
            m.push_str(
                "Content-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
            );
            m.push_str(&plain);
        }
        Shape::Alternative => alternative(&mut m, &outer),
        Shape::Mixed => {
            m.push_str(&format!(
                "Content-Type: multipart/mixed;\r\n\tboundary=\"{outer}\"\r\n\r\n"
            ));
            m.push_str(&format!("--{outer}\r\n"));
            alternative(&mut m, &inner);
            m.push_str("\r\n");
            for (name, size) in &recipe.attachments {
                let mut data = vec![0u8; *size];
                rng.fill_bytes(&mut data);
                let encoded = base64::engine::general_purpose::STANDARD.encode(&data);
                let (kind, param) = content_type_of(name);
                m.push_str(&format!(
                    "--{outer}\r\nContent-Type: {kind};\r\n\t{param}\r\n"
                ));
                m.push_str(&format!(
                    "Content-Disposition: attachment;\r\n\t{}; size={size}\r\n\
                     Content-Transfer-Encoding: base64\r\n\r\n",
                    filename_param(name)
                ));
                for line in encoded.as_bytes().chunks(76) {
                    // base64 output is ASCII.
                    m.push_str(std::str::from_utf8(line).unwrap_or_default());
                    m.push_str("\r\n");
                }
                m.push_str("\r\n");
            }
            m.push_str(&format!("--{outer}--\r\n"));
        }
    }
    Bytes::from(m)
}

fn content_type_of(name: &str) -> (&'static str, String) {
    let kind = match name.rsplit('.').next().unwrap_or("") {
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" => "image/jpeg",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        _ => "application/octet-stream",
    };
    let param = if name.is_ascii() {
        format!("name=\"{name}\"")
    } else {
        format!("name=\"{}\"", encode_words(name).replace("\r\n ", ""))
    };
    (kind, param)
}

/// `filename="..."` for ASCII, RFC 2231 `filename*=utf-8''...` otherwise.
fn filename_param(name: &str) -> String {
    if name.is_ascii() {
        return format!("filename=\"{name}\"");
    }
    let mut out = String::from("filename*=utf-8''");
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(shape: Shape) -> Recipe {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        Recipe {
            seed: 7,
            from: "Zoë Müller <zoe@fabrikam.com>".into(),
            to: "Adele Vance <adele.vance@contoso.com>".into(),
            cc: None,
            subject:
                "Angebot für Projekt Ä — ein sehr langer Betreff, der gefaltet werden muss 日本語"
                    .into(),
            date: at.to_offset(UtcOffset::from_hms(1, 0, 0).unwrap()),
            received: at,
            received_header: true,
            message_id: Some("<x@fabrikam.com>".into()),
            shape,
            body_len: 3000,
            attachments: vec![("Rechnung März.pdf".into(), 5000)],
            importance: "high".into(),
        }
    }

    #[test]
    fn messages_use_crlf_only_and_encode_non_ascii_headers() {
        for shape in [Shape::Plain, Shape::Alternative, Shape::Mixed] {
            let bytes = build(&recipe(shape));
            let (head, _) = bytes
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|i| bytes.split_at(i))
                .unwrap();
            assert!(head.is_ascii(), "headers are 7-bit");
            for (i, b) in bytes.iter().enumerate() {
                if *b == b'\n' {
                    assert_eq!(bytes[i - 1], b'\r', "bare LF at {i}");
                }
            }
            let head = std::str::from_utf8(head).unwrap();
            assert!(head.contains("Subject: =?UTF-8?B?"));
            assert!(head.lines().all(|l| l.len() <= 78), "{head}");
            assert!(head.contains("Date: Tue, 14 Nov 2023 23:13:20 +0100"));
        }
    }

    #[test]
    fn a_recipe_gives_identical_bytes_every_time() {
        let mime = Mime::from_recipe(recipe(Shape::Mixed));
        let first = mime.bytes();
        assert_eq!(first, mime.bytes());
        assert_eq!(&first[..], mime.as_ref());
        assert_eq!(mime.len(), first.len());
        assert!(first.len() > 5000 * 4 / 3);
    }
}
