//! Placeholder until the wire client lands.

use std::sync::Arc;

use super::ConnectError;
use super::http::VendorHttp;
use crate::api::SuperOfficeEndpoint;
use crate::secrets::ConnectionSecrets;

#[derive(Debug)]
pub struct SuperOfficeClient {
    pub http: Arc<VendorHttp>,
}

impl SuperOfficeClient {
    pub async fn connect(
        _endpoint: &SuperOfficeEndpoint,
        _http: Arc<VendorHttp>,
        _secrets: &ConnectionSecrets<'_>,
    ) -> Result<Self, ConnectError> {
        Err(ConnectError::Invalid("this vendor is not wired yet".into()))
    }
}
