//! The wasi-http hook: the only door from a guest to the network.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use super::connector::{AddressRefused, EgressClient};
use super::pattern::{HostPattern, default_port};
use crate::runtime::deadline::Deadlines;

/// Responses up to this size with a declared length are read whole by the host.
const PREFETCH_BYTES: u64 = 64 << 10;

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>;

/// Per-call egress state of one sandbox: the provider's grant, the store's pooled client
/// and the list of refusals made during the call, which the runtime adds to the call's
/// error so the user reads *why* a request failed.
pub struct EgressHooks {
    provider: Arc<str>,
    patterns: Arc<[HostPattern]>,
    client: Option<EgressClient>,
    max_request_bytes: u64,
    max_response_bytes: u64,
    call_timeout: Duration,
    deadlines: Arc<Deadlines>,
    refusals: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for EgressHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressHooks")
            .field("provider", &self.provider)
            .field("patterns", &self.patterns)
            .finish_non_exhaustive()
    }
}

impl EgressHooks {
    /// Hooks for one call. `client` is `None` when the grant names no host at all.
    pub fn new(
        provider: Arc<str>,
        patterns: Arc<[HostPattern]>,
        client: Option<EgressClient>,
        max_request_bytes: u64,
        max_response_bytes: u64,
        call_timeout: Duration,
        deadlines: Arc<Deadlines>,
    ) -> Self {
        EgressHooks {
            provider,
            patterns,
            client,
            max_request_bytes,
            max_response_bytes,
            call_timeout,
            deadlines,
            refusals: Arc::default(),
        }
    }

    /// What the host refused during this call, in order.
    pub fn refusals(&self) -> Vec<String> {
        self.refusals.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

fn record(refusals: &Mutex<Vec<String>>, message: String) {
    tracing::warn!(target: "airlock::egress", "{message}");
    if let Ok(mut r) = refusals.lock()
        && r.len() < 16
    {
        r.push(message);
    }
}

impl WasiHttpHooks for EgressHooks {
    // A guest may write its whole request body before `handle` (the SDK does, so the host
    // can send on the guest's own task): the body channel holds up to the request bound
    // in the 4 KiB writes `blocking-write-and-flush` allows, plus the finishing slot.
    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        usize::try_from(self.max_request_bytes / 4096 + 2).unwrap_or(usize::MAX)
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> SendFuture {
        let uri = request.uri().clone();
        let scheme = uri.scheme_str().unwrap_or("").to_ascii_lowercase();
        let host = uri
            .host()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = uri.port_u16().or_else(|| default_port(&scheme));
        let target = format!(
            "{scheme}://{host}:{}",
            port.map_or("?".into(), |p| p.to_string())
        );
        let granted = port.and_then(|port| {
            self.patterns
                .iter()
                .find(|p| p.matches(&scheme, &host, port))
        });
        crate::metrics::global().egress(&self.provider, granted.map(|p| p as _));
        let client = match (&self.client, granted) {
            (Some(client), Some(_)) => client.clone(),
            _ => {
                record(
                    &self.refusals,
                    format!(
                        "outbound host {target} is not granted to provider {}",
                        self.provider
                    ),
                );
                return Box::new(async { Err(HttpError::HttpRequestDenied) });
            }
        };
        let refusals = self.refusals.clone();
        let granted = (self.provider.clone(), granted.map(ToString::to_string));
        let deadlines = self.deadlines.clone();
        let max_request = self.max_request_bytes;
        let max_response = self.max_response_bytes;
        // The call's own deadline (armed before the call began) bounds every request; a
        // timer of its own only for a guest that asked for a shorter first-byte timeout.
        let first_byte = options
            .and_then(|o| o.first_byte_timeout)
            .filter(|t| *t < self.call_timeout);
        Box::new(async move {
            let (parts, body) = request.into_parts();
            let body = if http_body::Body::is_end_stream(&body) {
                Bytes::new()
            } else {
                collect_request(body, max_request, &target, &refusals).await?
            };
            let request = http::Request::from_parts(parts, Full::new(body));
            let sent = match first_byte {
                Some(limit) => match deadlines.timeout(limit, client.send(request)).await {
                    Ok(sent) => sent,
                    Err(_) => {
                        record(
                            &refusals,
                            format!("{target} did not answer within {limit:?}"),
                        );
                        return Err(HttpError::HttpResponseTimeout);
                    }
                },
                None => client.send(request).await,
            };
            let response = sent
                .map_err(|e| client_error(&e, &target, &refusals))
                .inspect_err(|e| {
                    crate::metrics::global().egress_refused(&granted.0, &granted.1, e)
                })?;
            let declared = response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if let Some(len) = declared
                && len > max_response
            {
                record(
                    &refusals,
                    format!(
                        "response from {target} is {len} bytes, over the {max_response}-byte limit"
                    ),
                );
                return Err(HttpError::HttpResponseBodySize(Some(len)));
            }
            // A small body of declared length is read here, on the task already sending the
            // request, so the guest finds it complete instead of waiting on the connection.
            if declared.is_some_and(|len| len <= PREFETCH_BYTES) {
                let (parts, body) = response.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map_err(|_| HttpError::HttpResponseIncomplete)?
                    .to_bytes();
                let body = Full::new(bytes)
                    .map_err(|never: std::convert::Infallible| match never {})
                    .boxed_unsync();
                return Ok((
                    http::Response::from_parts(parts, body),
                    Box::new(async { Ok(()) }) as IoFuture,
                ));
            }
            let limit_refusals = refusals.clone();
            let response = response.map(move |body| {
                Limited::new(body, usize::try_from(max_response).unwrap_or(usize::MAX))
                    .map_err(move |e| {
                        if e.downcast_ref::<LengthLimitError>().is_some() {
                            record(
                                &limit_refusals,
                                format!(
                                    "response from {target} exceeded the {max_response}-byte limit"
                                ),
                            );
                            HttpError::HttpResponseBodySize(None)
                        } else {
                            HttpError::HttpProtocolError
                        }
                    })
                    .boxed_unsync()
            });
            Ok((response, Box::new(async { Ok(()) }) as IoFuture))
        })
    }
}

/// Reads a guest's request body, refusing one over `max_request` bytes.
async fn collect_request(
    body: WasiBody,
    max_request: u64,
    target: &str,
    refusals: &Mutex<Vec<String>>,
) -> Result<Bytes, HttpError> {
    Ok(
        Limited::new(body, usize::try_from(max_request).unwrap_or(usize::MAX))
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<LengthLimitError>().is_some() {
                    record(
                        refusals,
                        format!("request body to {target} exceeds {max_request} bytes"),
                    );
                    HttpError::HttpRequestBodySize(None)
                } else {
                    HttpError::InternalError(Some(e.to_string()))
                }
            })?
            .to_bytes(),
    )
}

/// Maps a client error to the wasi:http error code, recording address refusals.
fn client_error(
    error: &hyper_util::client::legacy::Error,
    target: &str,
    refusals: &Mutex<Vec<String>>,
) -> HttpError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<AddressRefused>() {
            record(refusals, format!("egress to {target} refused: {refused}"));
            return HttpError::DestinationIpProhibited;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            // The connector wraps the refusal in an io::Error, whose `source()` skips it.
            if let Some(refused) = io
                .get_ref()
                .and_then(|i| i.downcast_ref::<AddressRefused>())
            {
                record(refusals, format!("egress to {target} refused: {refused}"));
                return HttpError::DestinationIpProhibited;
            }
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => HttpError::ConnectionRefused,
                std::io::ErrorKind::TimedOut => HttpError::ConnectionTimeout,
                std::io::ErrorKind::NotFound => HttpError::DnsError {
                    rcode: Some(io.to_string()),
                    info_code: None,
                },
                _ if io.get_ref().is_some_and(|i| i.is::<rustls::Error>()) => {
                    HttpError::TlsCertificateError
                }
                _ => HttpError::InternalError(Some(io.to_string())),
            };
        }
        source = e.source();
    }
    if error.is_connect() {
        HttpError::ConnectionRefused
    } else {
        HttpError::HttpProtocolError
    }
}
