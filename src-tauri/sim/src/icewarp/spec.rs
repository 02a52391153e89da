//! The IceWarp admin API's own specification (`icewarp-api.openapi.json`, an OpenAPI 3.0 export
//! of all 174 commands, from GitHub `tofuSCHNITZEL/icewarp-api/API_doc.json`; see the shared
//! reference `icewarp.md`), and a validator of XML envelopes against it.
//!
//! The validator covers the subset of OpenAPI the specification uses for envelopes: `type`
//! (`object`, `string`, `integer`), `properties`, `xml.attribute` and `xml.name`. It is strict:
//! an element or attribute the command's schema does not name is a violation, an `integer`
//! must hold an integer, a `string` must not hold elements. Nothing is required (the
//! specification marks nothing `required`), and an element may repeat (lists are repeated
//! `<item>`s, which the specification writes as one object).
//!
//! One rule reads the specification as its authors meant it: a `propertyval` is a
//! `TPropertyVal`, "fully abstract class, parent of all properties returned in getproperty
//! and similar" (the `TPropertyVal` schema). The generator of the specification shows one
//! subclass per command as an example, so a `propertyval` is checked against every
//! `propertyval` shape of the specification whose `classname` matches its own; a class the
//! specification defines (such as `TPropertyNoValue`) with no shape of its own may carry only
//! its `classname`.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

use super::xml::Node;

const SPEC_JSON: &str = include_str!("icewarp-api.openapi.json");

/// Elements of `query/result` that IceWarp's replies carry beyond the specification, by
/// command, each from a published reply: `offset` and `overallcount` of
/// `getaccountsinfolist` (IceWarp.Net's `GetAccountsInfoList.xml` fixture).
pub const REPLY_EXTRAS: &[(&str, &str)] = &[
    ("getaccountsinfolist", "offset"),
    ("getaccountsinfolist", "overallcount"),
];

/// The parsed specification: request and response schemas by lower-case command name.
#[derive(Debug)]
pub struct ApiSpec {
    inputs: HashMap<String, Value>,
    outputs: HashMap<String, Value>,
    /// Every `propertyval` shape in the specification, by lower-case `classname`.
    property_values: HashMap<String, Vec<Value>>,
    /// Lower-case names of every component schema (classes such as `tpropertynovalue`).
    classes: Vec<String>,
}

/// The bundled specification, parsed once.
pub fn api_spec() -> &'static ApiSpec {
    static SPEC: OnceLock<ApiSpec> = OnceLock::new();
    SPEC.get_or_init(|| ApiSpec::parse(SPEC_JSON))
}

impl ApiSpec {
    fn parse(json: &str) -> ApiSpec {
        let doc: Value = serde_json::from_str(json).unwrap_or(Value::Null);
        let schemas = doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut spec = ApiSpec {
            inputs: HashMap::new(),
            outputs: HashMap::new(),
            property_values: HashMap::new(),
            classes: schemas.keys().map(|k| k.to_ascii_lowercase()).collect(),
        };
        let paths = doc.get("paths").and_then(Value::as_object);
        for path in paths.into_iter().flat_map(|p| p.keys()) {
            let command = path.trim_start_matches('/');
            let lower = command.to_ascii_lowercase();
            if let Some(s) = schemas.get(&format!("{command}Input")) {
                spec.inputs.insert(lower.clone(), s.clone());
            }
            if let Some(s) = schemas.get(&format!("{command}Output")) {
                spec.outputs.insert(lower, s.clone());
            }
        }
        for schema in schemas.values() {
            collect_property_values(schema, &mut spec.property_values);
        }
        spec
    }

    /// Number of commands with a request schema (174 in the bundled file).
    pub fn command_count(&self) -> usize {
        self.inputs.len()
    }

    pub fn has_command(&self, command: &str) -> bool {
        self.inputs.contains_key(&command.to_ascii_lowercase())
    }

    /// Checks a request envelope against its command's request schema. Returns the command
    /// name (lower case) and the violations (empty when valid).
    pub fn validate_request(&self, root: &Node) -> (Option<String>, Vec<String>) {
        let Some(command) = root
            .text_at("query/commandname")
            .map(str::to_ascii_lowercase)
        else {
            return (None, vec!["no query/commandname".into()]);
        };
        let Some(schema) = self.inputs.get(&command) else {
            return (
                Some(command.clone()),
                vec![format!("command {command} is not in the specification")],
            );
        };
        let mut violations = Vec::new();
        self.check_root(root, schema, &mut violations);
        (Some(command), violations)
    }

    /// Checks a result envelope (`type="result"`) against the command's response schema.
    /// Elements of `query/result` listed in [`REPLY_EXTRAS`] for the command are allowed.
    pub fn validate_response(&self, command: &str, root: &Node) -> Vec<String> {
        let command = command.to_ascii_lowercase();
        let Some(schema) = self.outputs.get(&command) else {
            return vec![format!("command {command} has no response schema")];
        };
        let mut root = root.clone();
        if let Some(result) = root
            .children
            .iter_mut()
            .find(|c| c.name.eq_ignore_ascii_case("query"))
            .and_then(|q| {
                q.children
                    .iter_mut()
                    .find(|c| c.name.eq_ignore_ascii_case("result"))
            })
        {
            result.children.retain(|c| {
                !REPLY_EXTRAS
                    .iter()
                    .any(|(cmd, name)| *cmd == command && c.name.eq_ignore_ascii_case(name))
            });
        }
        let mut violations = Vec::new();
        self.check_root(&root, schema, &mut violations);
        violations
    }

    /// True when the response schema of `command` has an element at `path` (names separated
    /// by `/`, starting below `<iq>`, e.g. `query/result/item/name`), reading `propertyval`
    /// as any of its specified classes.
    pub fn response_has_path(&self, command: &str, path: &str) -> bool {
        let Some(schema) = self.outputs.get(&command.to_ascii_lowercase()) else {
            return false;
        };
        let steps: Vec<&str> = path.split('/').collect();
        self.schema_has_path(schema, &steps)
    }

    fn schema_has_path(&self, schema: &Value, steps: &[&str]) -> bool {
        let Some((first, rest)) = steps.split_first() else {
            return true;
        };
        if first.eq_ignore_ascii_case("propertyval") && property(schema, first).is_some() {
            return self
                .property_values
                .values()
                .flatten()
                .any(|v| self.schema_has_path(v, rest));
        }
        match property(schema, first) {
            Some(child) if !is_attribute(child) => self.schema_has_path(child, rest),
            _ => false,
        }
    }

    fn check_root(&self, root: &Node, schema: &Value, out: &mut Vec<String>) {
        let name = schema
            .pointer("/xml/name")
            .and_then(Value::as_str)
            .unwrap_or("iq");
        if !root.name.eq_ignore_ascii_case(name) {
            out.push(format!(
                "root element is <{}>, expected <{name}>",
                root.name
            ));
        }
        self.check(root, schema, &root.name, out);
    }

    fn check(&self, node: &Node, schema: &Value, at: &str, out: &mut Vec<String>) {
        let kind = schema
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("object");
        match kind {
            "object" => {
                for (key, _) in &node.attrs {
                    match property(schema, key) {
                        Some(p) if is_attribute(p) => {}
                        _ => out.push(format!("{at}: attribute {key} is not specified")),
                    }
                }
                if !node.text.trim().is_empty() {
                    out.push(format!("{at}: text in an object"));
                }
                for child in &node.children {
                    let path = format!("{at}/{}", child.name);
                    if child.name.eq_ignore_ascii_case("propertyval")
                        && property(schema, &child.name).is_some()
                    {
                        self.check_property_value(child, &path, out);
                        continue;
                    }
                    match property(schema, &child.name) {
                        Some(p) if !is_attribute(p) => self.check(child, p, &path, out),
                        _ => out.push(format!("{path}: element is not specified")),
                    }
                }
            }
            "integer" => {
                if !node.children.is_empty() || !node.attrs.is_empty() {
                    out.push(format!("{at}: an integer holds elements or attributes"));
                }
                if node.text.trim().parse::<i64>().is_err() {
                    out.push(format!("{at}: '{}' is not an integer", node.text.trim()));
                }
            }
            _ => {
                if !node.children.is_empty() || !node.attrs.is_empty() {
                    out.push(format!("{at}: a {kind} holds elements or attributes"));
                }
            }
        }
    }

    fn check_property_value(&self, node: &Node, at: &str, out: &mut Vec<String>) {
        let class = node.text_at("classname").unwrap_or("").to_ascii_lowercase();
        let Some(shapes) = self.property_values.get(&class) else {
            let bare = node
                .children
                .iter()
                .all(|c| c.name.eq_ignore_ascii_case("classname"));
            if !(bare && self.classes.contains(&class)) {
                out.push(format!(
                    "{at}: property class '{class}' has no shape in the specification"
                ));
            }
            return;
        };
        let mut best: Option<Vec<String>> = None;
        for shape in shapes {
            let mut found = Vec::new();
            self.check(node, shape, at, &mut found);
            if found.is_empty() {
                return;
            }
            if best.as_ref().is_none_or(|b| found.len() < b.len()) {
                best = Some(found);
            }
        }
        out.extend(best.unwrap_or_default());
    }
}

fn property<'a>(schema: &'a Value, name: &str) -> Option<&'a Value> {
    schema
        .get("properties")
        .and_then(Value::as_object)?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn is_attribute(schema: &Value) -> bool {
    schema.pointer("/xml/attribute").and_then(Value::as_bool) == Some(true)
}

fn collect_property_values(schema: &Value, into: &mut HashMap<String, Vec<Value>>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (key, child) in props {
        if key == "propertyval" {
            let class = child
                .pointer("/properties/classname/example")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_ascii_lowercase();
            let shapes = into.entry(class).or_default();
            if !shapes.contains(child) {
                shapes.push(child.clone());
            }
        }
        collect_property_values(child, into);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &str) -> Node {
        Node::parse(body).unwrap()
    }

    #[test]
    fn the_bundled_specification_has_all_commands() {
        assert_eq!(api_spec().command_count(), 174);
        assert!(api_spec().has_command("CreateAccount"));
    }

    #[test]
    fn a_specified_request_validates_and_strays_are_named() {
        let ok = request(
            "<iq sid=\"s\"><query xmlns=\"admin:iq:rpc\"><commandname>createaccount</commandname>\
             <commandparams><domainstr>a.com</domainstr><accountproperties><item>\
             <apiproperty><propname>u_mailbox</propname></apiproperty>\
             <propertyval><classname>tpropertystring</classname><val>jo</val></propertyval>\
             </item><item><apiproperty><propname>u_type</propname></apiproperty>\
             <propertyval><classname>tpropertystring</classname><val>0</val></propertyval>\
             </item></accountproperties></commandparams></query></iq>",
        );
        let (command, violations) = api_spec().validate_request(&ok);
        assert_eq!(command.as_deref(), Some("createaccount"));
        assert!(violations.is_empty(), "{violations:?}");

        let stray = request(
            "<iq sid=\"s\" type=\"set\"><query xmlns=\"admin:iq:rpc\"><commandname>getdomainsinfolist\
             </commandname><commandparams><offset>x</offset><limit>3</limit></commandparams></query></iq>",
        );
        let (_, violations) = api_spec().validate_request(&stray);
        assert_eq!(violations.len(), 3, "{violations:?}");
        assert!(violations.iter().any(|v| v.contains("attribute type")));
        assert!(violations
            .iter()
            .any(|v| v.contains("'x' is not an integer")));
        assert!(violations.iter().any(|v| v.contains("limit")));
    }

    #[test]
    fn property_values_follow_their_class() {
        let with = |val: &str| {
            request(&format!(
                "<iq sid=\"s\"><query xmlns=\"admin:iq:rpc\"><commandname>setaccountproperties\
                 </commandname><commandparams><accountemail>a@b.c</accountemail><propertyvaluelist>\
                 <item><apiproperty><propname>u_alias</propname></apiproperty>{val}</item>\
                 </propertyvaluelist></commandparams></query></iq>"
            ))
        };
        let string =
            with("<propertyval><classname>TPropertyString</classname><val>a;b</val></propertyval>");
        assert!(api_spec().validate_request(&string).1.is_empty());
        let name =
            with("<propertyval><classname>taccountname</classname><name>A</name></propertyval>");
        assert!(!api_spec().validate_request(&name).1.is_empty());
        let unknown = with("<propertyval><classname>tnosuchclass</classname></propertyval>");
        assert!(!api_spec().validate_request(&unknown).1.is_empty());
    }

    #[test]
    fn response_paths_are_looked_up() {
        let s = api_spec();
        assert!(s.response_has_path("getdomainsinfolist", "query/result/item/name"));
        assert!(!s.response_has_path("getdomainsinfolist", "query/result/overallcount"));
        assert!(s.response_has_path("getaccountproperties", "query/result/item/propertyval/val"));
        assert!(s.response_has_path(
            "getaccountfolderlist",
            "query/result/subfolders/item/defaulttype"
        ));
    }
}
