//! IMAP4rev1 wire types (RFC 3501 §7, §9) and a parser for the subset of server responses the
//! writer reads: status responses with their codes (CAPABILITY, APPENDUID, UIDVALIDITY, ...),
//! CAPABILITY, LIST, NAMESPACE, SEARCH, STATUS and FETCH.
//!
//! The connection reads one whole response at a time, literals included (`{n}\r\n` followed by
//! `n` bytes, §4.3), and hands the bytes to [`parse_response`]. Anything the writer does not use
//! is kept as [`Untagged::Other`], so an unexpected response never breaks a command.

use std::collections::BTreeSet;

/// One server response (RFC 3501 §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `+ text`: the server is ready for a literal or a SASL exchange (§7.5).
    Continuation(Vec<u8>),
    /// `* ...`
    Untagged(Untagged),
    /// `<tag> OK|NO|BAD [code] text`: the end of a command.
    Tagged { tag: String, status: StatusResponse },
}

/// The status of a status response (§7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
    PreAuth,
    Bye,
}

/// `OK|NO|BAD|PREAUTH|BYE [code] text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusResponse {
    pub status: Status,
    pub code: Option<Code>,
    pub text: String,
}

impl StatusResponse {
    /// The human-readable text with the response code, as the server sent it (for errors).
    pub fn describe(&self) -> String {
        match &self.code {
            Some(code) => format!("[{}] {}", code.name(), self.text),
            None => self.text.clone(),
        }
    }
}

/// Response codes (RFC 3501 §7.1, RFC 4315 UIDPLUS, RFC 5530 response codes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    Capability(Capabilities),
    /// `APPENDUID <uidvalidity> <uid>` (RFC 4315 §3).
    AppendUid {
        uid_validity: u32,
        uid: u32,
    },
    /// `APPENDUID <uidvalidity> <uid-set>` after a MULTIAPPEND (RFC 4315 §3, RFC 3502): the
    /// set expanded, in the order the messages were appended.
    AppendUids {
        uid_validity: u32,
        uids: Vec<u32>,
    },
    UidValidity(u32),
    /// `COPYUID <uidvalidity> <source set> <dest set>` (RFC 4315 §3), after COPY or MOVE
    /// (RFC 6851 §4.3); the sets expanded, in the same order.
    CopyUid {
        uid_validity: u32,
        source: Vec<u32>,
        dest: Vec<u32>,
    },
    TryCreate,
    /// Any other code, by its name in upper case (`AUTHENTICATIONFAILED`, `OVERQUOTA`, ...).
    Other(String),
}

impl Code {
    pub fn name(&self) -> &str {
        match self {
            Code::Capability(_) => "CAPABILITY",
            Code::AppendUid { .. } | Code::AppendUids { .. } => "APPENDUID",
            Code::UidValidity(_) => "UIDVALIDITY",
            Code::CopyUid { .. } => "COPYUID",
            Code::TryCreate => "TRYCREATE",
            Code::Other(name) => name,
        }
    }
}

/// The untagged responses the writer understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Untagged {
    Status(StatusResponse),
    Capability(Capabilities),
    List(ListEntry),
    /// The personal namespaces: (prefix, separator) (RFC 2342).
    Namespace(Vec<(String, Option<char>)>),
    /// `SEARCH` numbers (UIDs for UID SEARCH).
    Search(Vec<u32>),
    /// `STATUS mailbox (UIDVALIDITY n ...)`: only UIDVALIDITY is kept.
    MailboxStatus {
        mailbox: String,
        uid_validity: Option<u32>,
    },
    Fetch(FetchData),
    /// `n EXISTS`
    Exists(u32),
    Other(Vec<u8>),
}

/// The capabilities a server announced, upper-cased.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities(pub BTreeSet<String>);

impl Capabilities {
    pub fn has(&self, name: &str) -> bool {
        self.0.contains(&name.to_ascii_uppercase())
    }

    /// `AUTH=<mechanism>` is offered.
    pub fn has_auth(&self, mechanism: &str) -> bool {
        self.has(&format!("AUTH={mechanism}"))
    }

    fn from_atoms<'a>(atoms: impl IntoIterator<Item = &'a Value>) -> Self {
        Capabilities(
            atoms
                .into_iter()
                .filter_map(Value::as_text)
                .map(|s| s.to_ascii_uppercase())
                .collect(),
        )
    }
}

/// One `LIST` line (§7.2.2, RFC 6154 special-use attributes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// Attributes as sent (`\HasNoChildren`, `\Sent`, ...).
    pub attributes: Vec<String>,
    /// The hierarchy separator; `None` for a flat server (`NIL`).
    pub separator: Option<char>,
    /// The mailbox name as on the wire (modified UTF-7).
    pub name: String,
}

impl ListEntry {
    pub fn has_attribute(&self, attribute: &str) -> bool {
        self.attributes
            .iter()
            .any(|a| a.eq_ignore_ascii_case(attribute))
    }
}

/// The items of one `FETCH` response the writer asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchData {
    pub seq: u32,
    pub uid: Option<u32>,
    pub size: Option<u64>,
    /// `INTERNALDATE` as sent (`dd-Mon-yyyy hh:mm:ss +zzzz`).
    pub internal_date: Option<String>,
    pub flags: Option<Vec<String>>,
    /// `BODY[]` (the whole message).
    pub body: Option<Vec<u8>>,
    /// `BODY[HEADER]`
    pub header: Option<Vec<u8>>,
    /// `BODY[HEADER.FIELDS (...)]`: the fields asked for, as the server sent them.
    pub header_fields: Option<Vec<u8>>,
}

/// The parse failed: the response is not IMAP as this parser knows it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected IMAP response: {reason} in {excerpt:?}")]
pub struct ParseError {
    pub reason: String,
    /// The first bytes of the response, lossily decoded (never a command of ours).
    pub excerpt: String,
}

/// A generic value of a response: enough of RFC 3501's grammar for the responses above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// An atom, number or flag; a section such as `BODY[HEADER]` stays one atom.
    Atom(Vec<u8>),
    /// A quoted string or a literal.
    Str(Vec<u8>),
    Nil,
    List(Vec<Value>),
}

impl Value {
    fn as_text(&self) -> Option<&str> {
        match self {
            Value::Atom(b) | Value::Str(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    fn as_number<T: std::str::FromStr>(&self) -> Option<T> {
        match self {
            Value::Atom(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }

    fn is_atom(&self, name: &str) -> bool {
        matches!(self, Value::Atom(b) if b.eq_ignore_ascii_case(name.as_bytes()))
    }

    fn into_bytes(self) -> Option<Vec<u8>> {
        match self {
            Value::Atom(b) | Value::Str(b) => Some(b),
            _ => None,
        }
    }
}

/// Expands a UID set such as `3:5,9` (RFC 4315 §4 `uid-set`); `None` if malformed or larger
/// than 100,000 UIDs.
fn uid_set(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let (a, b) = match part.split_once(':') {
            Some((a, b)) => (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?),
            None => {
                let n = part.parse::<u32>().ok()?;
                (n, n)
            }
        };
        // RFC 4315: `b:a` means the same range as `a:b`; the order of the dest set follows.
        let range: Box<dyn Iterator<Item = u32>> = if a <= b {
            Box::new(a..=b)
        } else {
            Box::new((b..=a).rev())
        };
        for uid in range {
            if out.len() >= 100_000 {
                return None;
            }
            out.push(uid);
        }
    }
    Some(out)
}

/// Parses one complete response (the line, literals inlined, with its final CRLF or not).
pub fn parse_response(raw: &[u8]) -> Result<Response, ParseError> {
    let raw = raw
        .strip_suffix(b"\r\n")
        .or_else(|| raw.strip_suffix(b"\n"))
        .unwrap_or(raw);
    let mut p = Parser { buf: raw, pos: 0 };
    if let Some(rest) = raw.strip_prefix(b"+") {
        let text = rest.strip_prefix(b" ").unwrap_or(rest);
        return Ok(Response::Continuation(text.to_vec()));
    }
    let tag = p.word();
    p.space()?;
    if tag == b"*" {
        return p.untagged().map(Response::Untagged);
    }
    let tag = String::from_utf8_lossy(tag).into_owned();
    if tag.is_empty() {
        return Err(p.error("empty tag"));
    }
    let status = p.status_response()?;
    Ok(Response::Tagged { tag, status })
}

struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn error(&self, reason: &str) -> ParseError {
        let end = self.buf.len().min(120);
        ParseError {
            reason: format!("{reason} at byte {}", self.pos),
            excerpt: String::from_utf8_lossy(&self.buf[..end]).into_owned(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Bytes up to the next space (or the end).
    fn word(&mut self) -> &'a [u8] {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b == b' ' {
                break;
            }
            self.pos += 1;
        }
        &self.buf[start..self.pos]
    }

    fn space(&mut self) -> Result<(), ParseError> {
        if self.peek() == Some(b' ') {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error("expected a space"))
        }
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    fn rest(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.pos.min(self.buf.len())..];
        self.pos = self.buf.len();
        rest
    }

    /// `[code] text` after the status word (§7.1 resp-text).
    fn status_response(&mut self) -> Result<StatusResponse, ParseError> {
        let word = self.word();
        let status = match word.to_ascii_uppercase().as_slice() {
            b"OK" => Status::Ok,
            b"NO" => Status::No,
            b"BAD" => Status::Bad,
            b"PREAUTH" => Status::PreAuth,
            b"BYE" => Status::Bye,
            _ => return Err(self.error("unknown status")),
        };
        self.skip_spaces();
        let code = if self.peek() == Some(b'[') {
            self.pos += 1;
            Some(self.code()?)
        } else {
            None
        };
        self.skip_spaces();
        let text = String::from_utf8_lossy(self.rest()).into_owned();
        Ok(StatusResponse { status, code, text })
    }

    /// The inside of `[...]`, consuming the `]`.
    fn code(&mut self) -> Result<Code, ParseError> {
        let start = self.pos;
        let end = self.buf[start..]
            .iter()
            .position(|&b| b == b']')
            .map(|i| start + i)
            .ok_or_else(|| self.error("unterminated response code"))?;
        let inner = &self.buf[start..end];
        self.pos = end + 1;
        let mut words = inner
            .split(|&b| b == b' ')
            .filter(|w| !w.is_empty())
            .map(|w| String::from_utf8_lossy(w).into_owned());
        let name = words.next().unwrap_or_default().to_ascii_uppercase();
        let args: Vec<String> = words.collect();
        let num = |i: usize| args.get(i).and_then(|a| a.parse::<u32>().ok());
        Ok(match name.as_str() {
            "CAPABILITY" => Code::Capability(Capabilities(
                args.iter().map(|a| a.to_ascii_uppercase()).collect(),
            )),
            "APPENDUID" => match (num(0), num(1)) {
                (Some(uid_validity), Some(uid)) => Code::AppendUid { uid_validity, uid },
                (Some(uid_validity), None) => match args.get(1).and_then(|a| uid_set(a)) {
                    Some(uids) => Code::AppendUids { uid_validity, uids },
                    None => Code::Other(name),
                },
                _ => Code::Other(name),
            },
            "UIDVALIDITY" => match num(0) {
                Some(v) => Code::UidValidity(v),
                None => Code::Other(name),
            },
            "COPYUID" => match (
                num(0),
                args.get(1).and_then(|a| uid_set(a)),
                args.get(2).and_then(|a| uid_set(a)),
            ) {
                (Some(uid_validity), Some(source), Some(dest)) if source.len() == dest.len() => {
                    Code::CopyUid {
                        uid_validity,
                        source,
                        dest,
                    }
                }
                _ => Code::Other(name),
            },
            "TRYCREATE" => Code::TryCreate,
            _ => Code::Other(name),
        })
    }

    fn untagged(&mut self) -> Result<Untagged, ParseError> {
        let save = self.pos;
        let first = self.word().to_ascii_uppercase();
        match first.as_slice() {
            b"OK" | b"NO" | b"BAD" | b"PREAUTH" | b"BYE" => {
                self.pos = save;
                return self.status_response().map(Untagged::Status);
            }
            b"CAPABILITY" => {
                let values = self.values_to_end()?;
                return Ok(Untagged::Capability(Capabilities::from_atoms(&values)));
            }
            b"LIST" | b"LSUB" => return self.list(),
            b"NAMESPACE" => return self.namespace(),
            b"SEARCH" => {
                let values = self.values_to_end()?;
                let numbers = values.iter().filter_map(Value::as_number).collect();
                return Ok(Untagged::Search(numbers));
            }
            b"STATUS" => return self.mailbox_status(),
            _ => {}
        }
        if let Ok(number) = std::str::from_utf8(&first).unwrap_or("").parse::<u32>() {
            self.skip_spaces();
            let kind = self.word().to_ascii_uppercase();
            match kind.as_slice() {
                b"EXISTS" => return Ok(Untagged::Exists(number)),
                b"FETCH" => return self.fetch(number),
                _ => {}
            }
        }
        Ok(Untagged::Other(self.buf.to_vec()))
    }

    fn values_to_end(&mut self) -> Result<Vec<Value>, ParseError> {
        let mut values = Vec::new();
        loop {
            self.skip_spaces();
            if self.at_end() {
                return Ok(values);
            }
            values.push(self.value()?);
        }
    }

    fn list(&mut self) -> Result<Untagged, ParseError> {
        self.skip_spaces();
        let attributes = match self.value()? {
            Value::List(items) => items
                .iter()
                .filter_map(Value::as_text)
                .map(str::to_string)
                .collect(),
            _ => return Err(self.error("LIST attributes are not a list")),
        };
        self.skip_spaces();
        let separator = match self.value()? {
            Value::Nil => None,
            Value::Str(s) => String::from_utf8_lossy(&s).chars().next(),
            _ => return Err(self.error("LIST separator")),
        };
        self.skip_spaces();
        let name = self
            .value()?
            .into_bytes()
            .ok_or_else(|| self.error("LIST mailbox name"))?;
        // Extended data (RFC 5258 §9 mbox-list-extended) may follow; it is not needed.
        Ok(Untagged::List(ListEntry {
            attributes,
            separator,
            name: String::from_utf8_lossy(&name).into_owned(),
        }))
    }

    fn namespace(&mut self) -> Result<Untagged, ParseError> {
        self.skip_spaces();
        let personal = match self.value()? {
            Value::List(items) => items
                .into_iter()
                .filter_map(|item| match item {
                    Value::List(mut parts) if parts.len() >= 2 => {
                        let sep = match parts.remove(1) {
                            Value::Str(s) => String::from_utf8_lossy(&s).chars().next(),
                            _ => None,
                        };
                        let prefix = parts.remove(0).into_bytes()?;
                        Some((String::from_utf8_lossy(&prefix).into_owned(), sep))
                    }
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        // The other users' and shared namespaces follow; the writer does not use them.
        self.rest();
        Ok(Untagged::Namespace(personal))
    }

    fn mailbox_status(&mut self) -> Result<Untagged, ParseError> {
        self.skip_spaces();
        let mailbox = self
            .value()?
            .into_bytes()
            .ok_or_else(|| self.error("STATUS mailbox"))?;
        self.skip_spaces();
        let mut uid_validity = None;
        if let Value::List(items) = self.value()? {
            for pair in items.chunks(2) {
                if let [key, value] = pair {
                    if key.is_atom("UIDVALIDITY") {
                        uid_validity = value.as_number();
                    }
                }
            }
        }
        Ok(Untagged::MailboxStatus {
            mailbox: String::from_utf8_lossy(&mailbox).into_owned(),
            uid_validity,
        })
    }

    fn fetch(&mut self, seq: u32) -> Result<Untagged, ParseError> {
        self.skip_spaces();
        let items = match self.value()? {
            Value::List(items) => items,
            _ => return Err(self.error("FETCH items are not a list")),
        };
        let mut data = FetchData {
            seq,
            ..FetchData::default()
        };
        let mut items = items.into_iter();
        while let (Some(key), Some(value)) = (items.next(), items.next()) {
            let Value::Atom(key) = key else {
                return Err(self.error("FETCH item name"));
            };
            let key = key.to_ascii_uppercase();
            match key.as_slice() {
                b"UID" => data.uid = value.as_number(),
                b"RFC822.SIZE" => data.size = value.as_number(),
                b"INTERNALDATE" => {
                    data.internal_date = value.as_text().map(str::to_string);
                }
                b"FLAGS" => {
                    if let Value::List(flags) = &value {
                        data.flags = Some(
                            flags
                                .iter()
                                .filter_map(Value::as_text)
                                .map(str::to_string)
                                .collect(),
                        );
                    }
                }
                b"BODY[]" | b"BINARY[]" => {
                    data.body = Some(match value {
                        Value::Nil => Vec::new(),
                        other => other.into_bytes().unwrap_or_default(),
                    })
                }
                b"BODY[HEADER]" => {
                    data.header = Some(match value {
                        Value::Nil => Vec::new(),
                        other => other.into_bytes().unwrap_or_default(),
                    })
                }
                k if k.starts_with(b"BODY[HEADER.FIELDS ") => {
                    data.header_fields = Some(match value {
                        Value::Nil => Vec::new(),
                        other => other.into_bytes().unwrap_or_default(),
                    })
                }
                _ => {}
            }
        }
        Ok(Untagged::Fetch(data))
    }

    /// One value: `(list)`, `"quoted"`, `{n}\r\n<literal>`, `NIL`, or an atom (which keeps
    /// `[...]` sections and `<partial>` whole: `BODY[HEADER.FIELDS (A B)]<0>`).
    fn value(&mut self) -> Result<Value, ParseError> {
        match self.peek() {
            None => Err(self.error("unexpected end")),
            Some(b'(') => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_spaces();
                    match self.peek() {
                        Some(b')') => {
                            self.pos += 1;
                            return Ok(Value::List(items));
                        }
                        None => return Err(self.error("unterminated list")),
                        _ => items.push(self.value()?),
                    }
                }
            }
            Some(b'"') => {
                self.pos += 1;
                let mut out = Vec::new();
                loop {
                    match self.peek() {
                        None => return Err(self.error("unterminated quoted string")),
                        Some(b'"') => {
                            self.pos += 1;
                            return Ok(Value::Str(out));
                        }
                        Some(b'\\') => {
                            self.pos += 1;
                            let escaped = self
                                .peek()
                                .ok_or_else(|| self.error("unterminated quoted string"))?;
                            out.push(escaped);
                            self.pos += 1;
                        }
                        Some(b) => {
                            out.push(b);
                            self.pos += 1;
                        }
                    }
                }
            }
            Some(b'{') | Some(b'~') if self.is_literal_start() => {
                if self.peek() == Some(b'~') {
                    self.pos += 1; // literal8 (RFC 3516)
                }
                self.pos += 1;
                let close = self.buf[self.pos..]
                    .iter()
                    .position(|&b| b == b'}')
                    .ok_or_else(|| self.error("unterminated literal length"))?;
                let digits = &self.buf[self.pos..self.pos + close];
                let len: usize = std::str::from_utf8(digits)
                    .ok()
                    .and_then(|d| d.trim_end_matches('+').parse().ok())
                    .ok_or_else(|| self.error("bad literal length"))?;
                self.pos += close + 1;
                if self.buf[self.pos..].starts_with(b"\r\n") {
                    self.pos += 2;
                } else if self.buf[self.pos..].starts_with(b"\n") {
                    self.pos += 1;
                } else {
                    return Err(self.error("literal length not followed by CRLF"));
                }
                let end = self
                    .pos
                    .checked_add(len)
                    .filter(|&e| e <= self.buf.len())
                    .ok_or_else(|| self.error("literal longer than the response"))?;
                let bytes = self.buf[self.pos..end].to_vec();
                self.pos = end;
                Ok(Value::Str(bytes))
            }
            Some(_) => {
                let start = self.pos;
                let mut depth = 0usize;
                while let Some(b) = self.peek() {
                    match b {
                        b'[' => depth += 1,
                        b']' => depth = depth.saturating_sub(1),
                        b' ' | b')' | b'(' if depth == 0 => break,
                        b if b < 0x20 || b == 0x7f => {
                            return Err(self.error("control character in an atom"))
                        }
                        _ => {}
                    }
                    self.pos += 1;
                }
                // A `<partial>` origin after a section belongs to the atom too.
                let atom = &self.buf[start..self.pos];
                if atom.eq_ignore_ascii_case(b"NIL") {
                    Ok(Value::Nil)
                } else if atom.is_empty() {
                    Err(self.error("empty atom"))
                } else {
                    Ok(Value::Atom(atom.to_vec()))
                }
            }
        }
    }

    fn is_literal_start(&self) -> bool {
        let rest = &self.buf[self.pos..];
        let rest = rest.strip_prefix(b"~").unwrap_or(rest);
        rest.starts_with(b"{")
            && rest[1..]
                .iter()
                .take_while(|&&b| b != b'}')
                .all(|b| b.is_ascii_digit() || *b == b'+')
    }
}

/// Where a command argument's bytes go: as an atom, a quoted string, or a literal (§4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// Sent as is (command names, numbers, flag lists, already quoted text).
    Raw(String),
    /// An `astring`: sent quoted when it can be, otherwise as a literal.
    Str(Vec<u8>),
    /// A password or other secret: like `Str`, and never logged.
    Secret(Vec<u8>),
}

impl Arg {
    pub fn raw(s: impl Into<String>) -> Self {
        Arg::Raw(s.into())
    }

    pub fn string(s: impl AsRef<[u8]>) -> Self {
        Arg::Str(s.as_ref().to_vec())
    }
}

/// True when `bytes` can be sent as a quoted string (§9 `quoted`: 7-bit, no CR, LF or NUL).
pub fn quotable(bytes: &[u8]) -> bool {
    bytes.len() <= 1024
        && bytes
            .iter()
            .all(|&b| b != 0 && b != b'\r' && b != b'\n' && b < 0x80)
}

/// `"..."` with `\` and `"` escaped; the caller checked [`quotable`].
pub fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &b in bytes {
        if b == b'"' || b == b'\\' {
            out.push('\\');
        }
        out.push(b as char);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn untagged(raw: &str) -> Untagged {
        match parse_response(raw.as_bytes()).unwrap() {
            Response::Untagged(u) => u,
            other => panic!("not untagged: {other:?}"),
        }
    }

    #[test]
    fn status_responses_with_codes() {
        let r = parse_response(b"A3 OK [APPENDUID 1795503603 17] Append completed.\r\n").unwrap();
        assert_eq!(
            r,
            Response::Tagged {
                tag: "A3".into(),
                status: StatusResponse {
                    status: Status::Ok,
                    code: Some(Code::AppendUid {
                        uid_validity: 1795503603,
                        uid: 17
                    }),
                    text: "Append completed.".into()
                }
            }
        );
        let r = parse_response(b"A4 OK [APPENDUID 7 3:5,9] Append completed.\r\n").unwrap();
        let Response::Tagged { status, .. } = r else {
            panic!("{r:?}")
        };
        assert_eq!(
            status.code,
            Some(Code::AppendUids {
                uid_validity: 7,
                uids: vec![3, 4, 5, 9]
            })
        );
        let r = parse_response(b"A1 NO [AUTHENTICATIONFAILED] Authentication failed.").unwrap();
        let Response::Tagged { status, .. } = r else {
            panic!()
        };
        assert_eq!(status.status, Status::No);
        assert_eq!(
            status.describe(),
            "[AUTHENTICATIONFAILED] Authentication failed."
        );
        let Untagged::Status(s) =
            untagged("* OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN] Dovecot ready.")
        else {
            panic!()
        };
        let Some(Code::Capability(caps)) = s.code else {
            panic!()
        };
        assert!(caps.has("literal+") && caps.has_auth("PLAIN") && !caps.has("UIDPLUS"));
        assert_eq!(
            parse_response(b"+ ready").unwrap(),
            Response::Continuation(b"ready".to_vec())
        );
        assert_eq!(
            parse_response(b"+").unwrap(),
            Response::Continuation(Vec::new())
        );
        let Untagged::Status(moved) = untagged("* OK [COPYUID 7 3:5,9 20:23] Moved UIDs.") else {
            panic!()
        };
        assert_eq!(
            moved.code,
            Some(Code::CopyUid {
                uid_validity: 7,
                source: vec![3, 4, 5, 9],
                dest: vec![20, 21, 22, 23]
            })
        );
        let Untagged::Status(odd) = untagged("* OK [COPYUID 7 3:5 20] x") else {
            panic!()
        };
        assert_eq!(odd.code, Some(Code::Other("COPYUID".into())));
        assert!(matches!(
            untagged("* BYE shutting down"),
            Untagged::Status(StatusResponse {
                status: Status::Bye,
                ..
            })
        ));
    }

    #[test]
    fn list_lines_quoted_literal_and_nil_separator() {
        assert_eq!(
            untagged(r#"* LIST (\HasNoChildren \Sent) "/" Sent"#),
            Untagged::List(ListEntry {
                attributes: vec!["\\HasNoChildren".into(), "\\Sent".into()],
                separator: Some('/'),
                name: "Sent".into()
            })
        );
        assert_eq!(
            untagged("* LIST () \".\" \"a\\\\b \\\"q\\\"\""),
            Untagged::List(ListEntry {
                attributes: vec![],
                separator: Some('.'),
                name: "a\\b \"q\"".into()
            })
        );
        assert_eq!(
            untagged("* LIST (\\Noselect) NIL {5}\r\nx y z"),
            Untagged::List(ListEntry {
                attributes: vec!["\\Noselect".into()],
                separator: None,
                name: "x y z".into()
            })
        );
        // RFC 5258 extended data after the name is ignored.
        let Untagged::List(e) =
            untagged(r#"* LIST (\Subscribed) "/" Foo ("CHILDINFO" ("SUBSCRIBED"))"#)
        else {
            panic!()
        };
        assert_eq!(e.name, "Foo");
        assert!(e.has_attribute("\\subscribed"));
    }

    #[test]
    fn fetch_with_literals_sections_and_flags() {
        let raw = b"* 1 FETCH (UID 7 RFC822.SIZE 42 INTERNALDATE \"24-Nov-2025 05:58:06 +0000\" FLAGS (\\Seen $Forwarded foo) BODY[HEADER] {8}\r\nA: b\r\n\r\n BODY[] {3}\r\n\xff)()\r\n";
        let Response::Untagged(Untagged::Fetch(f)) = parse_response(raw).unwrap() else {
            panic!()
        };
        assert_eq!(f.seq, 1);
        assert_eq!(f.uid, Some(7));
        assert_eq!(f.size, Some(42));
        assert_eq!(
            f.internal_date.as_deref(),
            Some("24-Nov-2025 05:58:06 +0000")
        );
        assert_eq!(
            f.flags,
            Some(vec!["\\Seen".into(), "$Forwarded".into(), "foo".into()])
        );
        assert_eq!(f.header.as_deref(), Some(&b"A: b\r\n\r\n"[..]));
        assert_eq!(f.body.as_deref(), Some(&b"\xff)("[..]));
        let raw = b"* 2 FETCH (UID 9 BODY[HEADER.FIELDS (MESSAGE-ID)] {21}\r\nMessage-ID: <\xe9@x>\r\n\r\n)\r\n";
        let Response::Untagged(Untagged::Fetch(f)) = parse_response(raw).unwrap() else {
            panic!()
        };
        assert_eq!(f.uid, Some(9));
        assert_eq!(
            f.header_fields.as_deref(),
            Some(&b"Message-ID: <\xe9@x>\r\n\r\n"[..])
        );
    }

    #[test]
    fn search_namespace_status_exists() {
        assert_eq!(
            untagged("* SEARCH 3 9 12"),
            Untagged::Search(vec![3, 9, 12])
        );
        assert_eq!(untagged("* SEARCH"), Untagged::Search(vec![]));
        assert_eq!(
            untagged(r##"* NAMESPACE (("INBOX." ".")) NIL (("#shared." "."))"##),
            Untagged::Namespace(vec![("INBOX.".into(), Some('.'))])
        );
        assert_eq!(
            untagged("* STATUS \"a b\" (MESSAGES 2 UIDVALIDITY 99)"),
            Untagged::MailboxStatus {
                mailbox: "a b".into(),
                uid_validity: Some(99)
            }
        );
        assert_eq!(untagged("* 4 EXISTS"), Untagged::Exists(4));
        assert!(matches!(untagged("* 2 RECENT"), Untagged::Other(_)));
        assert!(matches!(
            untagged("* FLAGS (\\Seen \\Answered)"),
            Untagged::Other(_)
        ));
    }

    #[test]
    fn malformed_responses_are_errors_not_panics() {
        for raw in [
            &b"A1 MAYBE fine"[..],
            b"* LIST (\\X \"/\" foo",
            b"* LIST () \"/\" {10}\r\nshort",
            b"* 1 FETCH (BODY[] {x}\r\n)",
            b"* 1 FETCH (UID \"unterminated)",
            b"",
        ] {
            assert!(parse_response(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn quoting() {
        assert!(quotable(b"<a@b>"));
        assert!(!quotable("ä".as_bytes()));
        assert!(!quotable(b"a\r\nb"));
        assert_eq!(quote(br#"a"b\c"#), r#""a\"b\\c""#);
    }
}
