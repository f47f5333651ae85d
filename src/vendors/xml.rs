//! Hardened XML for vendor traffic: a small namespace-aware tree parsed with quick-xml under
//! limits (no DOCTYPE, bounded depth and element count; bodies are size-capped before they get
//! here), and a writer that escapes every value through quick-xml, never by string pasting.

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

/// Deepest element nesting accepted in a vendor response.
pub const MAX_DEPTH: usize = 32;
/// Most elements accepted in a vendor response.
pub const MAX_ELEMENTS: usize = 20_000;

/// Why a response could not be read as XML.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    #[error("response declares a DOCTYPE, which credsync refuses")]
    Doctype,
    #[error("response nests elements deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("response has more than {MAX_ELEMENTS} elements")]
    TooLarge,
    #[error("response is not well-formed XML: {0}")]
    Malformed(String),
    #[error("response has no root element")]
    Empty,
}

/// One element: namespace URI, local name, attributes (local name, value), children, text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub namespace: Option<String>,
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    /// The first child with this local name, in any namespace.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// All children with this local name.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Follow a path of local names from this element.
    pub fn path(&self, names: &[&str]) -> Option<&Element> {
        names.iter().try_fold(self, |el, name| el.child(name))
    }

    /// Text of the child with this local name, trimmed.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }

    /// Attribute value by local name.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Depth-first search for the first element with this local name (self included).
    pub fn find(&self, name: &str) -> Option<&Element> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }
}

fn malformed(e: impl std::fmt::Display) -> XmlError {
    XmlError::Malformed(crate::vendors::http::cut(&e.to_string()))
}

/// Parse a whole document into its root element.
pub fn parse(bytes: &[u8]) -> Result<Element, XmlError> {
    let text = std::str::from_utf8(bytes).map_err(malformed)?;
    let mut reader = NsReader::from_str(text);
    reader.config_mut().trim_text(false);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    loop {
        let (ns, event) = reader.read_resolved_event().map_err(malformed)?;
        let namespace = match ns {
            ResolveResult::Bound(n) => Some(String::from_utf8_lossy(n.as_ref()).into_owned()),
            ResolveResult::Unbound => None,
            ResolveResult::Unknown(p) => {
                return Err(XmlError::Malformed(format!(
                    "undeclared namespace prefix {:?}",
                    String::from_utf8_lossy(&p)
                )));
            }
        };
        match event {
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Start(start) | Event::Empty(start) if root.is_some() => {
                let _ = start;
                return Err(XmlError::Malformed("content after the root element".into()));
            }
            Event::Start(start) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(XmlError::TooLarge);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                stack.push(element(namespace, &start)?);
            }
            Event::Empty(start) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(XmlError::TooLarge);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                let el = element(namespace, &start)?;
                close(&mut stack, &mut root, el);
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| XmlError::Malformed("unbalanced end tag".into()))?;
                close(&mut stack, &mut root, el);
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.decode().map_err(malformed)?);
                } else if !t.decode().map_err(malformed)?.trim().is_empty() {
                    return Err(XmlError::Malformed("text outside the root element".into()));
                }
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&c.decode().map_err(malformed)?);
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(malformed)? {
                    Some(ch) => ch.to_string(),
                    None => {
                        let name = r.decode().map_err(malformed)?;
                        quick_xml::escape::resolve_xml_entity(&name)
                            .ok_or_else(|| XmlError::Malformed(format!("unknown entity &{name};")))?
                            .to_string()
                    }
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Malformed(
            "document ends inside an element".into(),
        ));
    }
    root.ok_or(XmlError::Empty)
}

fn element(namespace: Option<String>, start: &BytesStart<'_>) -> Result<Element, XmlError> {
    let mut attributes = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(malformed)?;
        let key = attr.key;
        if key.as_namespace_binding().is_some() {
            continue;
        }
        let value = attr.unescape_value().map_err(malformed)?.into_owned();
        attributes.push((
            String::from_utf8_lossy(key.local_name().as_ref()).into_owned(),
            value,
        ));
    }
    Ok(Element {
        namespace,
        name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
        attributes,
        children: Vec::new(),
        text: String::new(),
    })
}

fn close(stack: &mut [Element], root: &mut Option<Element>, el: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None => *root = Some(el),
    }
}

/// Builds an XML document; every text and attribute value is escaped by quick-xml.
pub struct XmlWriter {
    writer: quick_xml::Writer<Vec<u8>>,
}

impl Default for XmlWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl XmlWriter {
    /// A document with an `<?xml version="1.0" encoding="utf-8"?>` declaration.
    pub fn new() -> Self {
        let mut writer = quick_xml::Writer::new(Vec::with_capacity(1024));
        // Writing into a Vec cannot fail.
        let _ = writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)));
        XmlWriter { writer }
    }

    /// A document without an XML declaration (ServiceStack bodies).
    pub fn bare() -> Self {
        XmlWriter {
            writer: quick_xml::Writer::new(Vec::with_capacity(1024)),
        }
    }

    /// Open an element.
    pub fn start(&mut self, name: &str, attributes: &[(&str, &str)]) -> &mut Self {
        let mut start = BytesStart::new(name);
        for (k, v) in attributes {
            start.push_attribute((*k, *v));
        }
        let _ = self.writer.write_event(Event::Start(start));
        self
    }

    /// Close an element.
    pub fn end(&mut self, name: &str) -> &mut Self {
        let _ = self.writer.write_event(Event::End(BytesEnd::new(name)));
        self
    }

    /// `<name attrs>value</name>`, value escaped.
    pub fn text_element(
        &mut self,
        name: &str,
        attributes: &[(&str, &str)],
        value: &str,
    ) -> &mut Self {
        self.start(name, attributes);
        let _ = self.writer.write_event(Event::Text(BytesText::new(value)));
        self.end(name)
    }

    /// `<name attrs />`.
    pub fn empty(&mut self, name: &str, attributes: &[(&str, &str)]) -> &mut Self {
        let mut start = BytesStart::new(name);
        for (k, v) in attributes {
            start.push_attribute((*k, *v));
        }
        let _ = self.writer.write_event(Event::Empty(start));
        self
    }

    /// `<name>value</name>` when there is a value, `<name />` when there is none.
    pub fn optional(&mut self, name: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.text_element(name, &[], v),
            None => self.empty(name, &[]),
        }
    }

    /// The document's bytes.
    pub fn finish(self) -> Vec<u8> {
        self.writer.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_namespaces_entities_and_cdata() {
        let doc = br#"<?xml version="1.0"?><a:Root xmlns:a="urn:x"><a:V k="1&amp;2">x &lt; y &#233;<![CDATA[<z>]]></a:V><W/></a:Root>"#;
        let root = parse(doc).expect("parse");
        assert_eq!(root.namespace.as_deref(), Some("urn:x"));
        let v = root.child("V").expect("V");
        assert_eq!(v.text, "x < y é<z>");
        assert_eq!(v.attribute("k"), Some("1&2"));
        assert!(root.child("W").is_some());
    }

    #[test]
    fn refuses_doctype_depth_and_garbage() {
        assert_eq!(
            parse(br#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>"#),
            Err(XmlError::Doctype)
        );
        let deep = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(parse(deep.as_bytes()), Err(XmlError::TooDeep));
        assert!(matches!(parse(b"<a><b></a>"), Err(XmlError::Malformed(_))));
        assert!(matches!(
            parse(b"not xml"),
            Err(XmlError::Malformed(_) | XmlError::Empty)
        ));
        assert!(matches!(
            parse(b"<a>&unknown;</a>"),
            Err(XmlError::Malformed(_))
        ));
        assert!(matches!(parse(b"<p:a/>"), Err(XmlError::Malformed(_))));
    }

    #[test]
    fn writer_escapes_values() {
        let mut w = XmlWriter::bare();
        w.text_element("v", &[("a", "\"<&>'")], "<&>'\"ü");
        let out = String::from_utf8(w.finish()).expect("utf8");
        let root = parse(out.as_bytes()).expect("round trip");
        assert_eq!(root.text, "<&>'\"ü");
        assert_eq!(root.attribute("a"), Some("\"<&>'"));
    }
}
