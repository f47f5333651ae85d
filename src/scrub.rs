//! Vendor error texts reach conditions, events and logs, and a hostile or careless vendor may
//! echo what it received: the resource's secret values, or the connection's own credentials.
//! [`Redactions`] removes every value in the forms a vendor could echo it (as sent, XML- or
//! JSON-escaped, URL-encoded, base64, an HTTP Basic `user:password`), and the start of a value
//! where a text was cut (`…`, see [`crate::vendors::http::cut`]) wherever that cut sits, so no
//! prefix of a value survives a cut followed by a hint of ours.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[redacted]";
/// Values shorter than this are not scrubbed: they would blank out ordinary words.
const MIN_CHARS: usize = 3;
/// The shortest start of a value taken for that value where a text was cut.
const MIN_PREFIX_CHARS: usize = 3;

/// Every form of a set of secret values that a vendor could echo.
pub struct Redactions {
    /// Longest first, so a form is removed before any shorter form inside it.
    needles: Vec<Zeroizing<String>>,
}

impl std::fmt::Debug for Redactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactions({} forms)", self.needles.len())
    }
}

impl Redactions {
    pub fn new<'a>(values: impl IntoIterator<Item = &'a SecretString>) -> Self {
        let mut needles: Vec<Zeroizing<String>> = Vec::new();
        for value in values {
            let value = value.expose_secret();
            if value.chars().count() < MIN_CHARS {
                continue;
            }
            for form in forms(value) {
                if !form.is_empty() && !needles.iter().any(|n| **n == *form) {
                    needles.push(form);
                }
            }
        }
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        Redactions { needles }
    }

    /// `text` without any form of any value.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), REDACTED);
            }
        }
        self.scrub_cut_starts(out)
    }

    /// Before each `…` (where a text was cut), the start of a value is redacted too.
    fn scrub_cut_starts(&self, text: String) -> String {
        if !text.contains('…') {
            return text;
        }
        let mut out = String::with_capacity(text.len());
        let mut pieces = text.split('…').peekable();
        while let Some(piece) = pieces.next() {
            let cut_here = pieces.peek().is_some();
            let start = if cut_here {
                self.needles
                    .iter()
                    .filter_map(|needle| longest_cut_start(piece, needle))
                    .max()
                    .map_or(piece.len(), |len| piece.len() - len)
            } else {
                piece.len()
            };
            out.push_str(&piece[..start]);
            if start < piece.len() {
                out.push_str(REDACTED);
            }
            if cut_here {
                out.push('…');
            }
        }
        out
    }
}

/// The length in bytes of the longest start of `needle` (at least [`MIN_PREFIX_CHARS`]
/// characters, short of the whole) that `text` ends with.
fn longest_cut_start(text: &str, needle: &str) -> Option<usize> {
    let starts: Vec<usize> = needle
        .char_indices()
        .map(|(i, _)| i)
        .skip(MIN_PREFIX_CHARS)
        .collect();
    starts
        .into_iter()
        .rev()
        .find(|&i| text.ends_with(&needle[..i]))
}

/// The forms of one value a vendor might echo.
fn forms(value: &str) -> Vec<Zeroizing<String>> {
    let mut forms = vec![
        Zeroizing::new(value.to_string()),
        // What `cut` makes of control characters.
        Zeroizing::new(
            value
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        ),
        Zeroizing::new(quick_xml::escape::escape(value).into_owned()),
        Zeroizing::new(quick_xml::escape::partial_escape(value).into_owned()),
        Zeroizing::new(quick_xml::escape::minimal_escape(value).into_owned()),
        Zeroizing::new(html_numeric(value)),
        Zeroizing::new(json_escaped(value)),
        Zeroizing::new(json_ascii(value, false)),
        Zeroizing::new(json_ascii(value, true)),
        Zeroizing::new(json_escaped(value).replace('/', "\\/")),
        Zeroizing::new(format!("{value:?}").trim_matches('"').to_string()),
        Zeroizing::new(url::form_urlencoded::byte_serialize(value.as_bytes()).collect()),
        Zeroizing::new(percent_encoded(value, false)),
        Zeroizing::new(percent_encoded(value, true)),
    ];
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        forms.push(Zeroizing::new(engine.encode(value)));
    }
    forms
}

fn json_escaped(value: &str) -> String {
    let quoted = serde_json::to_string(value).unwrap_or_default();
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or_default()
        .to_string()
}

/// JSON as .NET and other ASCII-only writers produce it: non-ASCII and HTML-sensitive
/// characters as `\uXXXX`.
fn json_ascii(value: &str, upper: bool) -> String {
    let mut out = String::new();
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_ascii() && !c.is_ascii_control() && !"<>&'+`".contains(c) => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    if upper {
                        out.push_str(&format!("\\u{unit:04X}"));
                    } else {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
            }
        }
    }
    out
}

fn html_numeric(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        match c {
            '&' | '<' | '>' | '"' | '\'' => out.push_str(&format!("&#{};", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

fn percent_encoded(value: &str, lower: bool) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else if lower {
            out.push_str(&format!("%{byte:02x}"));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENTINEL: &str = "S3nt&<>\"\\é-ñ/x+y z";

    fn redactions(values: &[&str]) -> Redactions {
        let values: Vec<SecretString> = values.iter().map(|v| SecretString::from(*v)).collect();
        Redactions::new(&values)
    }

    #[test]
    fn every_echoed_form_is_removed() {
        let r = redactions(&[SENTINEL]);
        let basic = STANDARD.encode(format!("user:{SENTINEL}"));
        let pair = redactions(&[SENTINEL, &format!("user:{SENTINEL}")]);
        for echoed in [
            SENTINEL.to_string(),
            quick_xml::escape::escape(SENTINEL).into_owned(),
            json_escaped(SENTINEL),
            json_ascii(SENTINEL, false),
            url::form_urlencoded::byte_serialize(SENTINEL.as_bytes()).collect(),
            percent_encoded(SENTINEL, false),
            STANDARD.encode(SENTINEL),
            format!("{SENTINEL:?}"),
            html_numeric(SENTINEL),
        ] {
            let text = format!("vendor said: {echoed} (check it)");
            let out = r.scrub(&text);
            assert!(out.contains(REDACTED), "{echoed} -> {out}");
            assert!(!out.contains("S3nt"), "{echoed} -> {out}");
        }
        let out = pair.scrub(&format!("Authorization: Basic {basic}"));
        assert_eq!(out, format!("Authorization: Basic {REDACTED}"));
    }

    #[test]
    fn a_cut_value_loses_its_start_wherever_the_cut_sits() {
        let r = redactions(&["S3ntinel-xyz"]);
        assert_eq!(r.scrub("bad S3ntinel-xyz here"), "bad [redacted] here");
        assert_eq!(
            r.scrub("echo: {\"Value\":\"S3ntin…"),
            "echo: {\"Value\":\"[redacted]…"
        );
        // A hint of ours after the cut.
        assert_eq!(
            r.scrub("HTTP 401: {\"Value\":\"S3ntin… (check the connection's credentials Secret)"),
            "HTTP 401: {\"Value\":\"[redacted]… (check the connection's credentials Secret)"
        );
        assert_eq!(r.scrub("nothing… here"), "nothing… here");
        assert_eq!(r.scrub("nothing"), "nothing");
    }

    #[test]
    fn short_values_and_debug_reveal_nothing() {
        let r = redactions(&["ab", "S3ntinel-xyz"]);
        assert_eq!(r.scrub("ab cd"), "ab cd");
        assert!(!format!("{r:?}").contains("S3nt"));
    }
}
