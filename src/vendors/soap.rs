//! Shared SOAP handling: envelopes for SOAP 1.1 and 1.2, the HTTP binding of each, and fault
//! parsing. Vendors add only their own header and body elements and their fault codes.
//!
//! A SOAP service speaks in envelopes, errors included; a 404/405 that is not an envelope comes
//! from the web server in front of it (wrong path, service not deployed), so it is reported as
//! `VendorRouteNotFound`, never as a vendor's "not found". WS-Addressing's ActionNotSupported
//! fault (WCF's answer to an operation the service does not have) is the SOAP form of the same.

use http::StatusCode;
use url::Url;

use super::VendorError;
use super::http::{HttpResponse, VendorHttp, classify_status, cut};
use super::xml::{self, Element, XmlWriter};
use crate::api::SoapVersion;

pub const SOAP11_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const SOAP12_ENV: &str = "http://www.w3.org/2003/05/soap-envelope";

impl SoapVersion {
    /// The envelope namespace.
    pub fn envelope_ns(self) -> &'static str {
        match self {
            SoapVersion::V11 => SOAP11_ENV,
            SoapVersion::V12 => SOAP12_ENV,
        }
    }
}

/// A SOAP envelope under construction: `prefix` is the envelope prefix (e.g. `soap`),
/// `namespaces` further xmlns declarations on the Envelope element.
pub struct Envelope {
    writer: XmlWriter,
    prefix: String,
}

impl Envelope {
    pub fn new(version: SoapVersion, prefix: &str, namespaces: &[(&str, &str)]) -> Self {
        let mut writer = XmlWriter::new();
        let env_attr = format!("xmlns:{prefix}");
        let mut attrs: Vec<(&str, &str)> = vec![(env_attr.as_str(), version.envelope_ns())];
        attrs.extend_from_slice(namespaces);
        writer.start(&format!("{prefix}:Envelope"), &attrs);
        Envelope {
            writer,
            prefix: prefix.to_string(),
        }
    }

    /// Write the Header element with what `f` writes inside it.
    pub fn header(mut self, f: impl FnOnce(&mut XmlWriter)) -> Self {
        let name = format!("{}:Header", self.prefix);
        self.writer.start(&name, &[]);
        f(&mut self.writer);
        self.writer.end(&name);
        self
    }

    /// Write the Body element with what `f` writes inside it, and finish the document.
    pub fn body(mut self, f: impl FnOnce(&mut XmlWriter)) -> Vec<u8> {
        let name = format!("{}:Body", self.prefix);
        self.writer.start(&name, &[]);
        f(&mut self.writer);
        self.writer.end(&name);
        self.writer.end(&format!("{}:Envelope", self.prefix));
        self.writer.finish()
    }
}

/// A SOAP fault, in either version's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoapFault {
    /// faultcode (1.1) or Code/Value (1.2), prefix removed, e.g. `Client` or `Sender`.
    pub code: String,
    /// faultstring (1.1) or Reason/Text (1.2).
    pub reason: String,
    /// Code/Subcode/Value (1.2), prefix removed; WCF puts ActionNotSupported there.
    pub subcode: Option<String>,
    /// The detail element, for vendor-specific codes.
    pub detail: Option<Element>,
    /// The envelope's Header, for out-of-band error details (SuperOffice's ExceptionInfo).
    pub header: Option<Element>,
    pub http_status: StatusCode,
}

/// The reason of an error for an operation or endpoint the vendor does not have.
pub const ROUTE_NOT_FOUND: &str = "VendorRouteNotFound";

impl SoapFault {
    /// Whether the service said it has no such operation: WS-Addressing's ActionNotSupported
    /// (as faultcode or 1.2 subcode), or WCF's ContractFilter mismatch text.
    pub fn is_action_not_supported(&self) -> bool {
        self.code == "ActionNotSupported"
            || self.subcode.as_deref() == Some("ActionNotSupported")
            || self.reason.contains("ContractFilter mismatch")
    }

    /// Default classification: the caller's fault needs a person, the server's may pass.
    pub fn into_error(self) -> VendorError {
        let message = format!(
            "vendor returned a SOAP fault ({}): {}",
            self.code,
            cut(&self.reason)
        );
        match self.code.as_str() {
            "Server" | "Receiver" => VendorError::transient("VendorFault", message),
            _ => VendorError::permanent("VendorFault", message),
        }
    }
}

/// A SOAP response: the Body's first element, the Body's headers' parent (for out-of-band
/// status such as SuperOffice's ExceptionInfo), or a fault.
#[derive(Debug)]
pub enum SoapOutcome {
    Body {
        header: Option<Element>,
        payload: Option<Element>,
    },
    Fault(SoapFault),
}

/// POST an envelope with the binding of `version` and read the answer.
pub async fn call(
    http: &VendorHttp,
    operation: &'static str,
    url: Url,
    version: SoapVersion,
    action: &str,
    envelope: Vec<u8>,
    extra_headers: &[(&str, &str)],
) -> Result<SoapOutcome, VendorError> {
    let mut request = http.client().post(url);
    request = match version {
        SoapVersion::V11 => request
            .header(http::header::CONTENT_TYPE, "text/xml; charset=utf-8")
            .header("SOAPAction", format!("\"{action}\"")),
        SoapVersion::V12 => request.header(
            http::header::CONTENT_TYPE,
            format!("application/soap+xml; charset=utf-8; action=\"{action}\""),
        ),
    };
    for (k, v) in extra_headers {
        request = request.header(*k, *v);
    }
    let response = http.send(operation, request.body(envelope)).await?;
    read_response(&response)
}

/// Interpret a SOAP response: a fault wins over the HTTP status; a body without an envelope is
/// judged by the status.
pub fn read_response(response: &HttpResponse) -> Result<SoapOutcome, VendorError> {
    let root = match xml::parse(&response.body) {
        Ok(root) if root.name == "Envelope" => root,
        Ok(_) | Err(_) if matches!(response.status.as_u16(), 404 | 405) => {
            return Err(VendorError::permanent(
                ROUTE_NOT_FOUND,
                format!(
                    "vendor answered HTTP {} without a SOAP envelope: there is no SOAP service at this path",
                    response.status.as_u16()
                ),
            ));
        }
        Ok(_) | Err(_) if !response.status.is_success() => {
            return Err(classify_status(response, None));
        }
        Ok(other) => {
            return Err(VendorError::transient(
                "VendorBadResponse",
                format!(
                    "vendor answered with <{}> instead of a SOAP envelope",
                    cut(&other.name)
                ),
            ));
        }
        Err(e) => return Err(VendorError::transient("VendorBadResponse", e.to_string())),
    };
    let version_ns = root.namespace.as_deref();
    if version_ns != Some(SOAP11_ENV) && version_ns != Some(SOAP12_ENV) {
        return Err(VendorError::transient(
            "VendorBadResponse",
            "vendor answered with an Envelope in an unknown namespace",
        ));
    }
    let body = root
        .child("Body")
        .ok_or_else(|| VendorError::transient("VendorBadResponse", "SOAP response has no Body"))?;
    if let Some(fault) = body.child("Fault") {
        let mut fault = parse_fault(fault, response.status);
        fault.header = root.child("Header").cloned();
        return Ok(SoapOutcome::Fault(fault));
    }
    if !response.status.is_success() {
        return Err(classify_status(response, None));
    }
    Ok(SoapOutcome::Body {
        header: root.child("Header").cloned(),
        payload: body.children.first().cloned(),
    })
}

fn parse_fault(fault: &Element, http_status: StatusCode) -> SoapFault {
    let strip = |code: &str| code.rsplit(':').next().unwrap_or(code).trim().to_string();
    // SOAP 1.1: faultcode/faultstring/detail; SOAP 1.2: Code/Value, Reason/Text, Detail.
    let code = fault
        .child_text("faultcode")
        .map(strip)
        .or_else(|| fault.path(&["Code", "Value"]).map(|v| strip(&v.text)))
        .unwrap_or_default();
    let reason = fault
        .child_text("faultstring")
        .or_else(|| fault.path(&["Reason", "Text"]).map(|t| t.text.trim()))
        .unwrap_or_default()
        .to_string();
    let subcode = fault
        .path(&["Code", "Subcode", "Value"])
        .map(|v| strip(&v.text));
    let detail = fault
        .child("detail")
        .or_else(|| fault.child("Detail"))
        .cloned();
    SoapFault {
        code,
        reason,
        subcode,
        detail,
        header: None,
        http_status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::HeaderMap;

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status: StatusCode::from_u16(status).expect("status"),
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn reads_soap11_and_soap12_faults() {
        let f11 = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>bad</faultstring><detail><x>1</x></detail></s:Fault></s:Body></s:Envelope>"#;
        match read_response(&response(500, f11)) {
            Ok(SoapOutcome::Fault(f)) => {
                assert_eq!(f.code, "Client");
                assert_eq!(f.reason, "bad");
                assert!(f.detail.is_some());
                assert!(!f.into_error().is_transient());
            }
            other => panic!("{other:?}"),
        }
        let f12 = r#"<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><e:Fault><e:Code><e:Value>e:Receiver</e:Value></e:Code><e:Reason><e:Text xml:lang="en">down</e:Text></e:Reason></e:Fault></e:Body></e:Envelope>"#;
        match read_response(&response(500, f12)) {
            Ok(SoapOutcome::Fault(f)) => {
                assert_eq!((f.code.as_str(), f.reason.as_str()), ("Receiver", "down"));
                assert!(f.into_error().is_transient());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn non_envelopes_are_judged_by_status() {
        assert!(matches!(
            read_response(&response(503, "<html>busy</html>")),
            Err(VendorError::Transient { .. })
        ));
        assert!(matches!(
            read_response(&response(200, "garbage")),
            Err(VendorError::Transient {
                reason: "VendorBadResponse",
                ..
            })
        ));
        for status in [404, 405] {
            assert!(matches!(
                read_response(&response(status, "<html><body>Not Found</body></html>")),
                Err(VendorError::Permanent {
                    reason: ROUTE_NOT_FOUND,
                    ..
                })
            ));
        }
        assert!(matches!(
            read_response(&response(401, "")),
            Err(VendorError::Permanent {
                reason: "VendorUnauthorized",
                ..
            })
        ));
    }

    #[test]
    fn action_not_supported_in_either_version() {
        let f11 = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode xmlns:a="http://schemas.microsoft.com/ws/2005/05/addressing/none">a:ActionNotSupported</faultcode><faultstring>The message with Action 'x' cannot be processed at the receiver, due to a ContractFilter mismatch at the EndpointDispatcher.</faultstring></s:Fault></s:Body></s:Envelope>"#;
        let f12 = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://www.w3.org/2005/08/addressing"><s:Header><a:Action>http://www.w3.org/2005/08/addressing/fault</a:Action></s:Header><s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>a:ActionNotSupported</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en">no such action</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>"#;
        for body in [f11, f12] {
            match read_response(&response(500, body)) {
                Ok(SoapOutcome::Fault(f)) => assert!(f.is_action_not_supported(), "{f:?}"),
                other => panic!("{other:?}"),
            }
        }
        let plain = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>bad</faultstring></s:Fault></s:Body></s:Envelope>"#;
        match read_response(&response(500, plain)) {
            Ok(SoapOutcome::Fault(f)) => assert!(!f.is_action_not_supported()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn envelope_has_header_then_body() {
        let doc = Envelope::new(SoapVersion::V11, "soap", &[("xmlns:x", "urn:x")])
            .header(|w| {
                w.text_element("x:H", &[], "h&");
            })
            .body(|w| {
                w.text_element("x:B", &[], "<b>");
            });
        let root = xml::parse(&doc).expect("parse");
        assert_eq!(root.namespace.as_deref(), Some(SOAP11_ENV));
        assert_eq!(root.children[0].name, "Header");
        assert_eq!(
            root.path(&["Body", "B"]).map(|b| b.text.as_str()),
            Some("<b>")
        );
    }
}
