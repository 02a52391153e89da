//! Wire types of IceWarp's admin API: the XML envelopes of `icewarp-api.openapi.json` (shared
//! reference), built and read with quick-xml.
//!
//! A request is `<iq sid=".."><query xmlns="admin:iq:rpc"><commandname>..</commandname>
//! <commandparams>..</commandparams></query></iq>` (no `sid` on `authenticate`, no other
//! attribute: the specification's request schemas name only `sid`). A reply is either
//! `<iq type="result" sid=".."><query><result>..</result></query></iq>` or the error envelope
//! `<iq type="error"><query><error uid=".."/></query></iq>`.

use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};
use quick_xml::{Reader, Writer};

/// Every element path (below `<iq>`) this client reads from a reply, by command. A test checks
/// each against the command's response schema in the specification; the readers below use
/// only these.
pub const PARSED_PATHS: &[(&str, &str)] = &[
    ("authenticate", "query/result"),
    (
        "getserverproperties",
        "query/result/item/apiproperty/propname",
    ),
    (
        "getserverproperties",
        "query/result/item/propertyval/classname",
    ),
    ("getserverproperties", "query/result/item/propertyval/val"),
    (
        "getserverproperties",
        "query/result/item/propertyval/val/item",
    ),
    ("getdomainsinfolist", "query/result/item/name"),
    ("getdomainsinfolist", "query/result/item/domaintype"),
    ("createdomain", "query/result"),
    ("getaccountsinfolist", "query/result/item/email"),
    ("getaccountsinfolist", "query/result/item/accounttype"),
    ("getaccountmemberinfolist", "query/result/item/val"),
    ("addaccountmembers", "query/result"),
    ("createaccount", "query/result"),
    (
        "getaccountproperties",
        "query/result/item/apiproperty/propname",
    ),
    (
        "getaccountproperties",
        "query/result/item/propertyval/classname",
    ),
    ("getaccountproperties", "query/result/item/propertyval/val"),
    (
        "getaccountproperties",
        "query/result/item/propertyval/val/item",
    ),
    ("setaccountproperties", "query/result"),
    (
        "getdomainproperties",
        "query/result/item/apiproperty/propname",
    ),
    (
        "getdomainproperties",
        "query/result/item/propertyval/classname",
    ),
    ("getdomainproperties", "query/result/item/propertyval/val"),
    ("getaccountfolderlist", "query/result/subfolders/item/name"),
    (
        "getaccountfolderlist",
        "query/result/subfolders/item/foldertype",
    ),
    (
        "getaccountfolderlist",
        "query/result/subfolders/item/defaulttype",
    ),
    ("expireaccountpassword", "query/result"),
    ("logout", "query/result"),
];

/// A parameter of a request: a text element or an element of elements.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(&'static str, String),
    Group(&'static str, Vec<Param>),
}

impl Param {
    pub fn text(name: &'static str, value: impl Into<String>) -> Param {
        Param::Text(name, value.into())
    }

    /// `<item><apiproperty><propname>name</propname></apiproperty><propertyval>
    /// <classname>tpropertystring</classname><val>value</val></propertyval></item>`: one entry
    /// of `accountproperties` or `propertyvaluelist`.
    pub fn string_property(name: &str, value: impl Into<String>) -> Param {
        Param::Group(
            "item",
            vec![
                Param::Group("apiproperty", vec![Param::text("propname", name)]),
                Param::Group(
                    "propertyval",
                    vec![
                        Param::text("classname", "tpropertystring"),
                        Param::text("val", value),
                    ],
                ),
            ],
        )
    }

    /// `<item><propname>name</propname></item>`: one entry of a property name list.
    pub fn property_name(name: &str) -> Param {
        Param::Group("item", vec![Param::text("propname", name)])
    }
}

/// One API request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Lower-case command name, as IceWarp's own clients send it.
    pub command: &'static str,
    pub params: Vec<Param>,
}

impl Request {
    pub fn new(command: &'static str, params: Vec<Param>) -> Request {
        Request { command, params }
    }

    /// The envelope, with `sid` when there is a session.
    pub fn to_xml(&self, sid: Option<&str>) -> String {
        let mut w = Writer::new(Vec::new());
        let mut iq = BytesStart::new("iq");
        if let Some(sid) = sid {
            iq.push_attribute(("sid", sid));
        }
        let mut query = BytesStart::new("query");
        query.push_attribute(("xmlns", "admin:iq:rpc"));
        let params = Param::Group("commandparams", self.params.clone());
        // Writing into a Vec cannot fail.
        let _ = w.write_event(Event::Start(iq));
        let _ = w.write_event(Event::Start(query));
        write_param(&mut w, &Param::text("commandname", self.command));
        write_param(&mut w, &params);
        let _ = w.write_event(Event::End(BytesEnd::new("query")));
        let _ = w.write_event(Event::End(BytesEnd::new("iq")));
        String::from_utf8_lossy(&w.into_inner()).into_owned()
    }
}

fn write_param(w: &mut Writer<Vec<u8>>, p: &Param) {
    let name = match p {
        Param::Text(n, _) | Param::Group(n, _) => *n,
    };
    let _ = w.write_event(Event::Start(BytesStart::new(name)));
    match p {
        Param::Text(_, value) => {
            let _ = w.write_event(Event::Text(BytesText::new(value)));
        }
        Param::Group(_, children) => children.iter().for_each(|c| write_param(w, c)),
    }
    let _ = w.write_event(Event::End(BytesEnd::new(name)));
}

/// An element of a reply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Element {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    /// The elements at `path` (names separated by `/`, case-insensitive) below this one.
    pub fn select<'a>(&'a self, path: &str) -> Vec<&'a Element> {
        let mut level = vec![self];
        for step in path.split('/') {
            level = level
                .into_iter()
                .flat_map(|e| e.children.iter())
                .filter(|c| c.name.eq_ignore_ascii_case(step))
                .collect();
        }
        level
    }

    /// The trimmed text of the first element at `path`.
    pub fn value(&self, path: &str) -> Option<&str> {
        self.select(path).first().map(|e| e.text.trim())
    }

    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The deepest nesting a reply may have (the documented envelopes are under ten levels deep):
/// elements are read recursively, and a hostile reply nested without end must not overflow
/// the stack.
pub const MAX_DEPTH: usize = 64;

/// Reads a whole document into its root element; deeper than [`MAX_DEPTH`] is an error.
pub fn parse_document(xml: &str) -> Result<Element, String> {
    let mut reader = Reader::from_str(xml);
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(start) => return read_element(&mut reader, &start, false, 1),
            Event::Empty(start) => return read_element(&mut reader, &start, true, 1),
            Event::Eof => return Err("empty document".into()),
            _ => {}
        }
    }
}

fn read_element(
    reader: &mut Reader<&[u8]>,
    start: &BytesStart,
    empty: bool,
    depth: usize,
) -> Result<Element, String> {
    if depth > MAX_DEPTH {
        return Err(format!("elements nested deeper than {MAX_DEPTH} levels"));
    }
    let mut element = Element {
        name: start.name().as_ref().to_string(),
        ..Element::default()
    };
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| e.to_string())?;
        let value = attribute
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| e.to_string())?;
        element
            .attributes
            .push((attribute.key.as_ref().to_string(), value.into_owned()));
    }
    if empty {
        return Ok(element);
    }
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(child) => {
                let child = read_element(reader, &child, false, depth + 1)?;
                element.children.push(child);
            }
            Event::Empty(child) => {
                let child = read_element(reader, &child, true, depth + 1)?;
                element.children.push(child);
            }
            Event::Text(t) => element.text.push_str(&t.xml10_content()),
            Event::CData(t) => element.text.push_str(&t.xml10_content()),
            Event::GeneralRef(r) => match r.resolve_char_ref() {
                Ok(Some(c)) => element.text.push(c),
                _ => element.text.push_str(
                    quick_xml::escape::resolve_predefined_entity(&r.into_inner())
                        .ok_or("unknown entity")?,
                ),
            },
            Event::End(_) => return Ok(element),
            Event::Eof => return Err(format!("<{}> is not closed", element.name)),
            _ => {}
        }
    }
}

/// What a reply says.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `type="result"`: the session id, if any, and the `<result>` element.
    Result {
        sid: Option<String>,
        result: Element,
        root: Element,
    },
    /// `type="error"` with its `uid`.
    Error(String),
}

impl Reply {
    pub fn parse(xml: &str) -> Result<Reply, String> {
        let root = parse_document(xml)?;
        if !root.name.eq_ignore_ascii_case("iq") {
            return Err(format!("the root element is <{}>, not <iq>", root.name));
        }
        if root.attribute("type") == Some("error") {
            let uid = root
                .select("query/error")
                .first()
                .and_then(|e| e.attribute("uid"))
                .unwrap_or("unknown")
                .to_string();
            return Ok(Reply::Error(uid));
        }
        let result = root
            .select("query/result")
            .first()
            .map(|e| (*e).clone())
            .ok_or("no query/result")?;
        Ok(Reply::Result {
            sid: root.attribute("sid").map(str::to_string),
            result,
            root,
        })
    }
}

/// The `(name, value)` pairs of a property list reply (`getserverproperties`,
/// `getaccountproperties`). A `tpropertynovalue` (no value, or no right to read it) gives
/// `None`; a string list gives its items joined by `;`.
pub fn property_values(root: &Element) -> Vec<(String, Option<String>)> {
    root.select("query/result/item")
        .into_iter()
        .filter_map(|item| {
            let name = item.value("apiproperty/propname")?.to_string();
            let class = item.value("propertyval/classname").unwrap_or("");
            let value = if class.eq_ignore_ascii_case("tpropertynovalue") {
                None
            } else {
                let val = item.select("propertyval/val");
                let val = val.first()?;
                Some(if val.children.is_empty() {
                    val.text.trim().to_string()
                } else {
                    val.children
                        .iter()
                        .map(|i| i.text.trim())
                        .collect::<Vec<_>>()
                        .join(";")
                })
            };
            Some((name, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: elements were read by unbounded recursion, so a reply nested 100,000
    /// levels deep overflowed the stack and aborted the process.
    #[test]
    fn a_reply_nested_without_end_is_refused_not_a_stack_overflow() {
        let depth = 100_000;
        let xml = format!(
            "<iq type=\"result\">{}{}</iq>",
            "<a>".repeat(depth),
            "</a>".repeat(depth)
        );
        let err = Reply::parse(&xml).unwrap_err();
        assert_eq!(err, "elements nested deeper than 64 levels");
        let ok = format!(
            "<iq><query><result>{}x{}</result></query></iq>",
            "<a>".repeat(60),
            "</a>".repeat(60)
        );
        assert!(Reply::parse(&ok).is_ok());
    }

    #[test]
    fn requests_escape_values_and_carry_only_sid() {
        let r = Request::new(
            "createaccount",
            vec![
                Param::text("domainstr", "a&b.com"),
                Param::Group(
                    "accountproperties",
                    vec![Param::string_property("u_password", "<x>\"&'")],
                ),
            ],
        );
        let xml = r.to_xml(Some("S1"));
        assert!(xml.starts_with("<iq sid=\"S1\"><query xmlns=\"admin:iq:rpc\"><commandname>createaccount</commandname>"), "{xml}");
        let back = parse_document(&xml).unwrap();
        assert_eq!(back.value("query/commandparams/domainstr"), Some("a&b.com"));
        assert_eq!(
            back.value("query/commandparams/accountproperties/item/propertyval/val"),
            Some("<x>\"&'")
        );
        assert!(!Request::new("authenticate", vec![])
            .to_xml(None)
            .contains("sid"));
    }

    #[test]
    fn replies_of_a_real_server_parse_with_extras_ignored() {
        // IceWarp.Net's fixtures: lists carry offset/overallcount, properties TPropertyString.
        let list = "<iq type=\"result\" sid=\"2016\">\n <query xmlns=\"admin:iq:rpc\">\n <result>\n\
                    <item><name>Test</name><email>test@testing.co.uk</email><accounttype>0</accounttype>\
                    </item><offset>0</offset><overallcount>1</overallcount></result></query></iq>";
        let Reply::Result { sid, root, .. } = Reply::parse(list).unwrap() else {
            panic!()
        };
        assert_eq!(sid.as_deref(), Some("2016"));
        let emails: Vec<_> = root
            .select("query/result/item/email")
            .iter()
            .map(|e| e.text.clone())
            .collect();
        assert_eq!(emails, ["test@testing.co.uk"]);
        let props = "<iq type=\"result\"><query><result><item><apiproperty><propname>u_alias</propname>\
                     </apiproperty><propertyval><classname>TPropertyString</classname><val>a;b</val>\
                     </propertyval></item><item><apiproperty><propname>x</propname></apiproperty>\
                     <propertyval><classname>tpropertynovalue</classname></propertyval></item><item>\
                     <apiproperty><propname>l</propname></apiproperty><propertyval><classname>\
                     tpropertystringlist</classname><val><item>p</item><item>q</item></val>\
                     </propertyval></item></result></query></iq>";
        let Reply::Result { root, .. } = Reply::parse(props).unwrap() else {
            panic!()
        };
        assert_eq!(
            property_values(&root),
            [
                ("u_alias".into(), Some("a;b".into())),
                ("x".into(), None),
                ("l".into(), Some("p;q".into()))
            ]
        );
        let error = "<iq type=\"error\"><query><error uid=\"iq_root_tag_invalid\"/></query></iq>";
        assert_eq!(
            Reply::parse(error).unwrap(),
            Reply::Error("iq_root_tag_invalid".into())
        );
        assert!(Reply::parse("<html><body>502</body></html>").is_err());
    }
}
