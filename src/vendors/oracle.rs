//! Placeholder until the wire client lands.

use std::sync::Arc;

use super::ConnectError;
use super::http::VendorHttp;
use crate::api::OracleCrmOnDemandEndpoint;
use crate::secrets::ConnectionSecrets;

#[derive(Debug)]
pub struct OracleClient {
    pub http: Arc<VendorHttp>,
}

impl OracleClient {
    pub async fn connect(
        _endpoint: &OracleCrmOnDemandEndpoint,
        _http: Arc<VendorHttp>,
        _secrets: &ConnectionSecrets<'_>,
    ) -> Result<Self, ConnectError> {
        Err(ConnectError::Invalid("this vendor is not wired yet".into()))
    }
}
