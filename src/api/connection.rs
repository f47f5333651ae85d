//! VendorConnection (namespaced) and ClusterVendorConnection (cluster-scoped): how to reach one
//! vendor endpoint. Both share [`VendorEndpoint`]; the cluster kind adds which namespaces may use it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ConnectionSecretKeyRef, ConnectionSecretRef, SyncStatus};

/// The vendor systems credsync talks to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Vendor {
    SuperOffice,
    OracleCrmOnDemand,
    ApexErp,
    HelloId,
}

impl Vendor {
    /// The field name of the vendor's block in specs; also its label in metrics.
    pub fn field(self) -> &'static str {
        match self {
            Vendor::SuperOffice => "superOffice",
            Vendor::OracleCrmOnDemand => "oracleCrmOnDemand",
            Vendor::ApexErp => "apexErp",
            Vendor::HelloId => "helloId",
        }
    }
}

impl std::fmt::Display for Vendor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.field())
    }
}

/// Which SuperOffice API to call.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema, Default)]
pub enum SuperOfficeApi {
    /// NetServer SOAP, Remote/Services84/User.svc.
    Soap,
    /// WebAPI REST, /api/v1/Agents/User/... (the default).
    #[default]
    Rest,
}

/// SOAP version for the SuperOffice SOAP API.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema, Default)]
pub enum SoapVersion {
    /// SOAP 1.1 with a SOAPAction header, as the WSDL's binding (the default).
    #[default]
    #[serde(rename = "1.1")]
    V11,
    /// SOAP 1.2 (application/soap+xml), as the published samples.
    #[serde(rename = "1.2")]
    V12,
}

/// How credsync authenticates to SuperOffice: exactly one of the three.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "[has(self.ticketSecretRef), has(self.basicSecretRef), has(self.bearerSecretRef)].filter(x, x).size() == 1",
    "message": "set exactly one of ticketSecretRef, basicSecretRef, bearerSecretRef"
}]))]
pub struct SuperOfficeAuth {
    /// A NetServer ticket (SOAP Credentials/Ticket header, or REST `Authorization: SOTicket`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_secret_ref: Option<ConnectionSecretKeyRef>,
    /// A Secret with keys `username` and `password` for HTTP Basic (REST only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_secret_ref: Option<ConnectionSecretRef>,
    /// A bearer token (REST `Authorization: Bearer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_secret_ref: Option<ConnectionSecretKeyRef>,
}

/// A SuperOffice installation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuperOfficeEndpoint {
    /// Base URL of the installation, e.g. https://online.superoffice.com/Cust12345.
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,
    /// Soap or Rest (default Rest).
    #[serde(default)]
    pub api: SuperOfficeApi,
    /// "1.1" (default) or "1.2"; only used with api Soap.
    #[serde(default)]
    pub soap_version: SoapVersion,
    /// Application token (SOAP ApplicationToken header, REST SO-AppToken); needed for Online.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_token_secret_ref: Option<ConnectionSecretKeyRef>,
    /// How to authenticate.
    pub auth: SuperOfficeAuth,
}

/// An Oracle CRM On Demand tenant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OracleCrmOnDemandEndpoint {
    /// Base URL, e.g. https://secure-ausomxabc.crmondemand.com.
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,
    /// A Secret with keys `username` and `password`, sent as a WS-Security UsernameToken.
    pub credentials_secret_ref: ConnectionSecretRef,
}

/// Body format for the Apex ERP ServiceStack API.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema, Default)]
pub enum ApexFormat {
    #[default]
    Json,
    Xml,
}

/// How credsync authenticates to Apex ERP: exactly one of the two.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "[has(self.basicSecretRef), has(self.bearerSecretRef)].filter(x, x).size() == 1",
    "message": "set exactly one of basicSecretRef, bearerSecretRef"
}]))]
pub struct ApexAuth {
    /// A Secret with keys `username` and `password` for HTTP Basic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_secret_ref: Option<ConnectionSecretRef>,
    /// A bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_secret_ref: Option<ConnectionSecretKeyRef>,
}

/// An Apex ERP ServiceStack host.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApexErpEndpoint {
    /// Base URL of the ServiceStack host.
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,
    /// Json (default) or Xml bodies.
    #[serde(default)]
    pub format: ApexFormat,
    /// How to authenticate.
    pub auth: ApexAuth,
}

/// A HelloID tenant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelloIdEndpoint {
    /// Base URL, e.g. https://example.helloid.com.
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,
    /// A Secret with keys `key` and `secret` (the API key and secret), sent as HTTP Basic.
    pub api_key_secret_ref: ConnectionSecretRef,
}

/// TLS settings. Certificate verification is never off.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct TlsConfig {
    /// PEM CA bundle to trust in addition to the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<ConnectionSecretKeyRef>,
}

/// One vendor endpoint: exactly one vendor block, plus limits shared by every resource using it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "[has(self.superOffice), has(self.oracleCrmOnDemand), has(self.apexErp), has(self.helloId)].filter(x, x).size() == 1",
    "message": "set exactly one vendor block: superOffice, oracleCrmOnDemand, apexErp or helloId"
}]))]
pub struct VendorEndpoint {
    /// SuperOffice (CRM) NetServer SOAP or WebAPI REST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub super_office: Option<SuperOfficeEndpoint>,
    /// Oracle CRM On Demand Web Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oracle_crm_on_demand: Option<OracleCrmOnDemandEndpoint>,
    /// Apex ERP ServiceStack API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apex_erp: Option<ApexErpEndpoint>,
    /// HelloID (SSO).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hello_id: Option<HelloIdEndpoint>,
    /// TLS settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Timeout of one vendor request, in seconds (default 30).
    #[serde(default = "default_timeout_seconds")]
    #[schemars(range(min = 1, max = 600))]
    pub timeout_seconds: u32,
    /// Requests in flight at once to this endpoint, over all resources using it (default 4).
    #[serde(default = "default_max_concurrent_requests")]
    #[schemars(range(min = 1, max = 256))]
    pub max_concurrent_requests: u32,
    /// Requests per second to this endpoint, over all resources using it (default per vendor:
    /// Oracle 20, others 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub requests_per_second: Option<u32>,
    /// What resources using this connection may target in the vendor (records, privileged
    /// settings). Without it any record may be targeted, and privileged settings (Apex
    /// `isSysAdmin`) are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenancy: Option<super::tenancy::TenancyPolicy>,
}

fn default_timeout_seconds() -> u32 {
    30
}
fn default_max_concurrent_requests() -> u32 {
    4
}

/// A connection's one vendor block, as one value: the vendor enum view of the spec. What differs
/// by vendor is asked of the vendor's module through [`VendorBlock::module`] (in
/// `vendors`), an exhaustive match like [`VendorBlock::vendor`], so a new vendor is a compile
/// error until it is handled there.
#[derive(Clone, Copy, Debug)]
pub enum VendorBlock<'a> {
    SuperOffice(&'a SuperOfficeEndpoint),
    OracleCrmOnDemand(&'a OracleCrmOnDemandEndpoint),
    ApexErp(&'a ApexErpEndpoint),
    HelloId(&'a HelloIdEndpoint),
}

impl VendorBlock<'_> {
    pub fn vendor(self) -> Vendor {
        match self {
            VendorBlock::SuperOffice(_) => Vendor::SuperOffice,
            VendorBlock::OracleCrmOnDemand(_) => Vendor::OracleCrmOnDemand,
            VendorBlock::ApexErp(_) => Vendor::ApexErp,
            VendorBlock::HelloId(_) => Vendor::HelloId,
        }
    }
}

impl VendorEndpoint {
    /// The vendor block that is set (the CRD's CEL rule makes it exactly one); None otherwise.
    /// The only place that reads the optional blocks. The spec is taken apart field by field,
    /// so a new field is a compile error here until it is said whether it is a vendor block.
    pub fn block(&self) -> Option<VendorBlock<'_>> {
        let VendorEndpoint {
            super_office,
            oracle_crm_on_demand,
            apex_erp,
            hello_id,
            tls: _,
            timeout_seconds: _,
            max_concurrent_requests: _,
            requests_per_second: _,
            tenancy: _,
        } = self;
        let mut set = [
            super_office.as_ref().map(VendorBlock::SuperOffice),
            oracle_crm_on_demand
                .as_ref()
                .map(VendorBlock::OracleCrmOnDemand),
            apex_erp.as_ref().map(VendorBlock::ApexErp),
            hello_id.as_ref().map(VendorBlock::HelloId),
        ]
        .into_iter()
        .flatten();
        match (set.next(), set.next()) {
            (Some(block), None) => Some(block),
            _ => None,
        }
    }

    /// The vendor whose block is set.
    pub fn vendor(&self) -> Option<Vendor> {
        self.block().map(VendorBlock::vendor)
    }
}

/// Status of a connection: whether its configuration is usable.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionStatus {
    #[serde(flatten)]
    pub sync: SyncStatus,
    /// The vendor this connection reaches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<Vendor>,
    /// What the vendor turned out to serve of the operations its documents leave open, as
    /// learned from its answers (see docs/vendors/). Empty until first learned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<CapabilityStatus>,
}

/// One vendor operation as this connection's vendor serves it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapabilityStatus {
    /// The operation, as named in the vendor request metrics (e.g. ListIdentities).
    pub operation: String,
    /// Whether the vendor serves it; when not, credsync falls back (see message).
    pub supported: bool,
    /// The form of the operation the vendor serves, where there are several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// What the vendor answered and what credsync does instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// How to reach one vendor endpoint, for resources in this namespace.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "credsync.io",
    version = "v1alpha1",
    kind = "VendorConnection",
    namespaced,
    status = "ConnectionStatus",
    shortname = "vconn",
    category = "credsync",
    doc = "How to reach one vendor endpoint (SuperOffice, Oracle CRM On Demand, Apex ERP or HelloID), for resources of this namespace.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Connection",
        type_ = "string",
        description = "The vendor this connection reaches",
        json_path = ".status.vendor"
    ),
    printcolumn(
        name = "Last-Synced",
        type_ = "date",
        json_path = ".status.lastSyncedTime"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct VendorConnectionSpec {
    #[serde(flatten)]
    pub endpoint: VendorEndpoint,
}

/// Which namespaces may use a ClusterVendorConnection: those listed, and those the selector matches.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AllowedNamespaces {
    /// Namespaces allowed by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Namespaces allowed by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
}

/// How to reach one vendor endpoint, for resources in the namespaces it allows.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "credsync.io",
    version = "v1alpha1",
    kind = "ClusterVendorConnection",
    status = "ConnectionStatus",
    shortname = "cvconn",
    category = "credsync",
    doc = "How to reach one vendor endpoint, shared by the namespaces it allows. Its Secret references name their namespace; the operator reads them, never the tenants.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Connection",
        type_ = "string",
        description = "The vendor this connection reaches",
        json_path = ".status.vendor"
    ),
    printcolumn(
        name = "Last-Synced",
        type_ = "date",
        json_path = ".status.lastSyncedTime"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterVendorConnectionSpec {
    #[serde(flatten)]
    pub endpoint: VendorEndpoint,
    /// Namespaces whose resources may use this connection. None are allowed when empty.
    #[serde(default)]
    pub allowed_namespaces: AllowedNamespaces,
}
