//! Placeholder until the wire client lands.

use std::sync::Arc;

use super::ConnectError;
use super::http::VendorHttp;
use crate::api::ApexErpEndpoint;
use crate::secrets::ConnectionSecrets;

#[derive(Debug)]
pub struct ApexClient {
    pub http: Arc<VendorHttp>,
}

impl ApexClient {
    pub async fn connect(
        _endpoint: &ApexErpEndpoint,
        _http: Arc<VendorHttp>,
        _secrets: &ConnectionSecrets<'_>,
    ) -> Result<Self, ConnectError> {
        Err(ConnectError::Invalid("this vendor is not wired yet".into()))
    }
}
