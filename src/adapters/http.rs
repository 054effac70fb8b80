//! One HTTP client per process, for ServiceNow and the AWS APIs alike: one TLS configuration,
//! one root store loaded once, one connection pool, one crypto library (ring). A cold start
//! pays for every root store it parses and every crypto library it starts; this way it pays
//! for one, from one file.
//!
//! Roots come from `SSL_CERT_FILE` when it is set (the way to trust a private CA, say the
//! one of a proxy in front of the instance: the file must then hold every CA the function
//! needs), else from the system's bundle file, else from wherever the platform keeps them.

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::sync::Arc;
use std::time::Duration;

/// Where Linux distributions keep the bundle of trusted roots; the first is Amazon Linux
/// 2023's, Lambda's `provided.al2023`. Reading one file avoids walking a directory of
/// hundreds (`/etc/ssl/certs`), which is what loading "the platform's roots" does.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// A path below whatever path `base` itself has (an instance or API behind a proxy prefix).
/// `base` was checked to be an http(s) URL when the secret was read.
pub fn url_below(base: &reqwest::Url, path: &[&str]) -> reqwest::Url {
    let mut url = base.clone();
    url.path_segments_mut()
        .expect("an http(s) URL has a path")
        .pop_if_empty()
        .extend(path);
    url
}

/// `Retry-After` in seconds; neither ServiceNow nor iLert sends the HTTP-date form.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        // A server's number is no reason to wait beyond SQS's longest hiding, nor to overflow.
        .map(|seconds| Duration::from_secs(seconds.min(LONGEST_RETRY_AFTER_SECONDS)))
}

/// The longest `Retry-After` honoured: twelve hours, SQS's longest visibility timeout.
const LONGEST_RETRY_AFTER_SECONDS: u64 = 12 * 3600;

/// The process's HTTP client: TLS through the roots loaded once, bounded waits, and a small
/// pool so warm invocations reuse their connections. A request that hangs is cut off well
/// inside the invocation's 5 s budget, so one more try fits.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("ilert-servicenow/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(3))
        // Dropped when idle longer than load balancers keep them, so a thawed environment
        // does not write into a dead connection.
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(2)
        // Neither ServiceNow's Table API nor AWS redirects; a redirect means a login page or
        // a wrong URL, and is reported as such rather than followed.
        .redirect(reqwest::redirect::Policy::none())
        .tls_backend_preconfigured(tls_config())
        .build()
        .expect("a client with static settings builds")
}

/// TLS 1.2 and 1.3 with ring, trusting the roots found by [`root_certificates`].
fn tls_config() -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let (source, certificates) = root_certificates();
    let (trusted, unusable) = roots.add_parsable_certificates(certificates);
    tracing::debug!(source, trusted, unusable, "root certificates loaded");
    if trusted == 0 {
        tracing::warn!(
            source,
            "no root certificate could be loaded: every TLS connection will fail"
        );
    }
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// The roots to trust, and where they came from.
fn root_certificates() -> (String, Vec<CertificateDer<'static>>) {
    let named = |variable: &str| std::env::var_os(variable).filter(|value| !value.is_empty());
    if let Some(file) = named("SSL_CERT_FILE") {
        let file = std::path::PathBuf::from(file);
        return (file.display().to_string(), read_bundle(&file));
    }
    // A certificate directory asked for by name is honoured as OpenSSL would.
    if named("SSL_CERT_DIR").is_none() {
        if let Some(bundle) = SYSTEM_BUNDLES
            .iter()
            .map(std::path::Path::new)
            .find(|path| path.is_file())
        {
            return (bundle.display().to_string(), read_bundle(bundle));
        }
    }
    let found = rustls_native_certs::load_native_certs();
    ("the platform's certificate store".into(), found.certs)
}

fn read_bundle(path: &std::path::Path) -> Vec<CertificateDer<'static>> {
    match CertificateDer::pem_file_iter(path) {
        Ok(certificates) => certificates.filter_map(Result::ok).collect(),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot read the root certificates");
            Vec::new()
        }
    }
}

/// The same client as the AWS SDK's HTTP client, so Secrets Manager and SQS share its TLS,
/// roots and pool.
pub fn for_aws(client: reqwest::Client) -> SharedHttpClient {
    SharedHttpClient::new(AwsHttpClient { client })
}

#[derive(Debug, Clone)]
struct AwsHttpClient {
    client: reqwest::Client,
}

impl HttpClient for AwsHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(AwsConnector {
            client: self.client.clone(),
            read_timeout: settings.read_timeout(),
        })
    }
}

#[derive(Debug)]
struct AwsConnector {
    client: reqwest::Client,
    read_timeout: Option<Duration>,
}

impl HttpConnector for AwsConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|error| ConnectorError::user(error.into()))?;
            let (parts, body) = request.into_parts();
            // The SDK's requests to Secrets Manager and SQS are small and in memory.
            let body = body.bytes().map(<[u8]>::to_vec).ok_or_else(|| {
                ConnectorError::user("a streaming request body is not supported".into())
            })?;
            let mut sending = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body);
            if let Some(timeout) = read_timeout {
                sending = sending.timeout(timeout);
            }
            let response = sending.send().await.map_err(connector_error)?;
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response.bytes().await.map_err(connector_error)?;
            // As a body the SDK reads, not one it holds: the SDK logs a response it holds
            // (at trace level), and this one is a secret.
            let body = SdkBody::from_body_1_x(http_body_util::Full::new(bytes));
            let mut answer = http::Response::new(body);
            *answer.status_mut() = status;
            *answer.headers_mut() = headers;
            HttpResponse::try_from(answer)
                .map_err(|error| ConnectorError::other(error.into(), None))
        })
    }
}

/// The SDK retries what it is told is a timeout or an I/O failure.
fn connector_error(error: reqwest::Error) -> ConnectorError {
    if error.is_timeout() {
        ConnectorError::timeout(error.into())
    } else if error.is_connect() || error.is_request() || error.is_body() {
        ConnectorError::io(error.into())
    } else {
        ConnectorError::other(error.into(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_cert_file_names_the_only_roots_trusted() {
        // The only test that sets the variable, so the process's environment is not raced.
        let file = std::env::temp_dir().join(format!("ilert-roots-{}.pem", std::process::id()));
        std::fs::write(&file, simulator::TestCa::new().ca_pem()).unwrap();
        std::env::set_var("SSL_CERT_FILE", &file);
        let (source, certificates) = root_certificates();
        std::env::remove_var("SSL_CERT_FILE");
        let _ = std::fs::remove_file(&file);
        assert_eq!(source, file.display().to_string());
        assert_eq!(certificates.len(), 1);
    }
}
