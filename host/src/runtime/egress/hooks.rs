//! The wasi-http hook: the only door from a guest to the network.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
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
/// Bytes of one write into an outgoing body: what `blocking-write-and-flush` takes, so the
/// body channel holds its bound in chunks of this size, not in wasi-http's 1 MiB ones.
const BODY_CHUNK_BYTES: usize = 4096;
/// Outgoing bodies one call may hold before they are sent: each buffers up to the request
/// bound (plus three chunks) in host memory the guest's own limit does not count. One is
/// what a provider needs; a request is sent before the next is built.
pub const MAX_UNSENT_BODIES: usize = 4;
/// Refusals one call keeps (for its error) and logs; later ones are counted only.
const MAX_REFUSALS: usize = 16;
/// The longest host name quoted in a refusal: the longest a DNS name can be.
const MAX_QUOTED_HOST: usize = 253;

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
    /// Outgoing bodies created and not yet sent (see [`MAX_UNSENT_BODIES`]).
    unsent_bodies: Arc<AtomicUsize>,
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
            unsent_bodies: Arc::default(),
        }
    }

    /// Counts a new outgoing body, or refuses it when the call already holds
    /// [`MAX_UNSENT_BODIES`] bodies not yet sent.
    pub(crate) fn reserve_body(&mut self) -> bool {
        let taken = self
            .unsent_bodies
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_UNSENT_BODIES).then_some(n + 1)
            })
            .is_ok();
        if !taken {
            record(
                &self.refusals,
                format!(
                    "an outgoing body was refused: {MAX_UNSENT_BODIES} bodies not yet sent \
                     already hold up to {} bytes each; send each request before building the next",
                    self.max_request_bytes
                ),
            );
        }
        taken
    }

    /// Gives back a body counted by [`EgressHooks::reserve_body`] when the returned guard
    /// goes: once its request is sent (or the body was never made).
    pub(crate) fn body_sent(&self) -> BodySent {
        BodySent(self.unsent_bodies.clone())
    }

    /// What the host refused during this call, in order.
    pub fn refusals(&self) -> Vec<String> {
        self.refusals.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// Releases one unsent body when dropped.
#[derive(Debug)]
pub(crate) struct BodySent(Arc<AtomicUsize>);

impl Drop for BodySent {
    fn drop(&mut self) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}

/// Keeps a refusal, up to [`MAX_REFUSALS`] per call: a guest making millions of refused
/// requests must not flood the operator's log. The message is built by the caller from
/// bounded parts (see [`quoted_host`]). It is not logged here: it quotes a guest-chosen
/// host, which may spell one of the call's secrets, so the runtime logs the kept refusals
/// through the call's redactor once the call ends.
fn record(refusals: &Mutex<Vec<String>>, message: String) {
    let Ok(mut r) = refusals.lock() else {
        return;
    };
    if r.len() < MAX_REFUSALS {
        r.push(message);
    }
}

/// A guest-chosen host as quoted in refusals: at most [`MAX_QUOTED_HOST`] bytes.
fn quoted_host(host: &str) -> &str {
    let mut end = host.len().min(MAX_QUOTED_HOST);
    while !host.is_char_boundary(end) {
        end -= 1;
    }
    &host[..end]
}

impl WasiHttpHooks for EgressHooks {
    // A guest may write its whole request body before `handle` (the SDK does, so the host
    // can send on the guest's own task): the body channel holds up to the request bound
    // in the 4 KiB writes `blocking-write-and-flush` allows, plus the finishing slot.
    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        usize::try_from(self.max_request_bytes / BODY_CHUNK_BYTES as u64 + 2).unwrap_or(usize::MAX)
    }

    // Chunks as large as wasi-http's default (1 MiB) would let one body buffer the request
    // bound times 256.
    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        BODY_CHUNK_BYTES
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
            "{}://{}:{}",
            quoted_host(&scheme),
            quoted_host(&host),
            port.map_or("?".into(), |p| p.to_string())
        );
        // Only origin-form targets: a path such as `http://other.example/` would make the
        // request line absolute-form, which a proxy on the granted host forwards anywhere;
        // `*` and `?query` are not paths either. The http crate refuses the first today;
        // this does not rely on it.
        if uri
            .path_and_query()
            .is_some_and(|p| !p.as_str().starts_with('/'))
        {
            record(
                &self.refusals,
                format!(
                    "request to {target} refused: its path does not start with '/' \
                     (only origin-form request targets are sent)"
                ),
            );
            return Box::new(async { Err(HttpError::HttpRequestUriInvalid) });
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(patterns: &[&str]) -> EgressHooks {
        let patterns: Arc<[HostPattern]> = patterns
            .iter()
            .map(|p| HostPattern::parse(p).expect("pattern"))
            .collect();
        EgressHooks::new(
            "p".into(),
            patterns,
            None,
            1 << 20,
            1 << 20,
            Duration::from_secs(30),
            Arc::default(),
        )
    }

    fn request(uri: http::Uri) -> http::Request<WasiBody> {
        let body = http_body_util::Empty::<Bytes>::new()
            .map_err(|never: std::convert::Infallible| match never {})
            .boxed_unsync();
        http::Request::builder()
            .uri(uri)
            .body(body)
            .expect("request")
    }

    fn send(hooks: &mut EgressHooks, uri: http::Uri) -> Result<(), HttpError> {
        let sent = hooks.send_request(request(uri), None, Box::new(async { Ok(()) }));
        futures::executor::block_on(Box::into_pin(sent)).map(|_| ())
    }

    /// What `tracing` writes while `f` runs on this thread.
    fn logged(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("buffer").extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            // Another test's thread may have cached the callsite as uninteresting.
            tracing::callsite::rebuild_interest_cache();
            f()
        });
        let text = buffer.0.lock().expect("buffer").clone();
        String::from_utf8_lossy(&text).into_owned()
    }

    #[test]
    fn a_request_whose_path_is_not_origin_form_is_refused() {
        let mut hooks = hooks(&["http://proxy.example:3128"]);
        for target in ["*", "?url=http://169.254.169.254/latest/meta-data"] {
            let mut parts = http::uri::Parts::default();
            parts.scheme = Some(http::uri::Scheme::HTTP);
            parts.authority = Some("proxy.example:3128".parse().expect("authority"));
            parts.path_and_query = Some(target.parse().expect("the http crate takes it"));
            let uri = http::Uri::from_parts(parts).expect("the http crate takes it");
            assert!(
                matches!(send(&mut hooks, uri), Err(HttpError::HttpRequestUriInvalid)),
                "{target}"
            );
        }
        let refusals = hooks.refusals();
        assert_eq!(refusals.len(), 2);
        assert!(
            refusals[0].contains("its path does not start with '/'"),
            "{refusals:?}"
        );
    }

    #[test]
    fn refusals_are_kept_up_to_the_cap_with_hosts_cut_short_and_not_logged_unredacted() {
        let mut hooks = hooks(&[]);
        let long_host = format!("{}.example", "a".repeat(60_000));
        let text = logged(|| {
            for _ in 0..1000 {
                let uri: http::Uri = format!("http://{long_host}/").parse().expect("uri");
                assert!(send(&mut hooks, uri).is_err());
            }
        });
        // The runtime logs them, redacted, when the call ends.
        assert_eq!(text, "", "the hooks log a guest-chosen host");
        let refusals = hooks.refusals();
        assert_eq!(refusals.len(), MAX_REFUSALS);
        assert!(refusals[0].contains(&"a".repeat(MAX_QUOTED_HOST)));
        assert!(!refusals[0].contains(&"a".repeat(MAX_QUOTED_HOST + 1)));
    }
}
