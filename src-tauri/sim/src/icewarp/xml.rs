//! The element tree the emulator reads requests into and writes responses from: elements,
//! attributes and text, which is all the IceWarp API envelopes use (no namespaces beyond the
//! `xmlns` attribute, no mixed content).

use quick_xml::events::Event;
use quick_xml::Reader;

/// One XML element.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Node {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
    /// The element's own text, unescaped (whitespace-only text between elements is dropped).
    pub text: String,
}

impl Node {
    pub fn new(name: &str) -> Node {
        Node {
            name: name.to_string(),
            ..Node::default()
        }
    }

    /// `<name>text</name>`.
    pub fn leaf(name: &str, text: impl Into<String>) -> Node {
        Node {
            name: name.to_string(),
            text: text.into(),
            ..Node::default()
        }
    }

    pub fn with_attr(mut self, key: &str, value: impl Into<String>) -> Node {
        self.attrs.push((key.to_string(), value.into()));
        self
    }

    pub fn with(mut self, child: Node) -> Node {
        self.children.push(child);
        self
    }

    pub fn with_all(mut self, children: impl IntoIterator<Item = Node>) -> Node {
        self.children.extend(children);
        self
    }

    /// The first child named `name` (case-insensitive, as IceWarp treats names).
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Every child named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children
            .iter()
            .filter(move |c| c.name.eq_ignore_ascii_case(name))
    }

    /// The text of the descendant at `path` (child names separated by `/`), trimmed.
    pub fn text_at(&self, path: &str) -> Option<&str> {
        let mut node = self;
        for step in path.split('/') {
            node = node.child(step)?;
        }
        Some(node.text.trim())
    }

    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Parses a document into its root element.
    pub fn parse(xml: &str) -> Result<Node, String> {
        let mut reader = Reader::from_str(xml);
        let mut stack: Vec<Node> = Vec::new();
        loop {
            let event = reader
                .read_event()
                .map_err(|e| format!("malformed XML at byte {}: {e}", reader.buffer_position()))?;
            match event {
                Event::Start(start) => stack.push(open(&start)?),
                Event::Empty(start) => {
                    let node = open(&start)?;
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(node),
                        None => return finish(reader, node),
                    }
                }
                Event::End(_) => {
                    let Some(mut node) = stack.pop() else {
                        return Err("unexpected closing tag".into());
                    };
                    if node.text.trim().is_empty() {
                        node.text.clear();
                    }
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(node),
                        None => return finish(reader, node),
                    }
                }
                Event::Text(t) => push_text(&mut stack, &t.xml10_content()),
                Event::CData(t) => push_text(&mut stack, &t.xml10_content()),
                Event::GeneralRef(r) => {
                    let resolved = match r.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        _ => quick_xml::escape::resolve_predefined_entity(&r.into_inner())
                            .ok_or("unknown entity reference")?
                            .to_string(),
                    };
                    push_text(&mut stack, &resolved);
                }
                Event::Eof => return Err("the document ends before its root element closes".into()),
                Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
            }
        }
    }

    /// The element as XML text, with `<?xml?>` declaration left out.
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        out.push('<');
        out.push_str(&self.name);
        for (k, v) in &self.attrs {
            out.push_str(&format!(
                " {k}=\"{}\"",
                quick_xml::escape::escape(v.as_str())
            ));
        }
        if self.children.is_empty() && self.text.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        out.push_str(&quick_xml::escape::escape(self.text.as_str()));
        for c in &self.children {
            c.write(out);
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }
}

fn open(start: &quick_xml::events::BytesStart) -> Result<Node, String> {
    let mut node = Node::new(start.name().as_ref());
    for attr in start.attributes() {
        let attr = attr.map_err(|e| format!("bad attribute: {e}"))?;
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| format!("bad attribute value: {e}"))?;
        node.attrs
            .push((attr.key.as_ref().to_string(), value.into_owned()));
    }
    Ok(node)
}

fn push_text(stack: &mut [Node], text: &str) {
    if let Some(top) = stack.last_mut() {
        top.text.push_str(text);
    }
}

fn finish(mut reader: Reader<&[u8]>, root: Node) -> Result<Node, String> {
    loop {
        match reader.read_event() {
            Ok(Event::Eof) => return Ok(root),
            Ok(Event::Text(t)) if t.xml10_content().trim().is_empty() => {}
            Ok(Event::Comment(_)) | Ok(Event::PI(_)) => {}
            Ok(_) => return Err("content after the root element".into()),
            Err(e) => return Err(format!("malformed XML after the root element: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_writes_back_with_escapes() {
        let doc = "<?xml version=\"1.0\"?>\n<iq sid=\"a&amp;b\"><query xmlns=\"admin:iq:rpc\">\
                   <commandname>x</commandname><v>1 &lt; 2 &#x41;</v><e/></query></iq>";
        let root = Node::parse(doc).unwrap();
        assert_eq!(root.attr("sid"), Some("a&b"));
        assert_eq!(root.text_at("query/v"), Some("1 < 2 A"));
        assert!(root.child("query").unwrap().child("e").is_some());
        let again = Node::parse(&root.to_xml()).unwrap();
        assert_eq!(again, root);
        assert!(Node::parse("<iq><query></iq>").is_err());
        assert!(Node::parse("<iq/><iq/>").is_err());
    }
}
