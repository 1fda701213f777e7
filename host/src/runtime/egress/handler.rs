//! Airlock's own `wasi:http/outgoing-handler`.
//!
//! wasmtime-wasi-http's `handle` spawns the send as a task of its own (and a second one for
//! the connection) and hands the guest a pending future; the guest then blocks on its
//! pollable. On a multi-threaded runtime each spawn pushes the task waiting in the worker's
//! LIFO slot (the connection task, just woken) onto the shared queue and wakes the other
//! worker, which steals it: measured from a runtime task, a loopback round trip cost 71 µs
//! instead of 16 µs. Providers are blocking clients that wait for each response right away,
//! so this `handle` is async and sends on the calling task: the guest's call returns when the response head (and, for
//! small bodies, the whole body — see `hooks::PREFETCH_BYTES`) has arrived, with the
//! future already resolved. The request still goes through [`EgressHooks`]: grants, address
//! policy, size bounds and timeouts are unchanged. The `wasi:http/types` interface is
//! wasmtime-wasi-http's.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;

use futures::{FutureExt, StreamExt};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::runtime::AbortOnDropJoinHandle;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Method, Scheme};
use wasmtime_wasi_http::p2::bindings::{LinkOptions, http as wasi_http};
use wasmtime_wasi_http::p2::types::{
    HostFutureIncomingResponse, HostOutgoingRequest, HostOutgoingResponse,
};
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttp, WasiHttpHooks, WasiHttpView};

use crate::runtime::sandbox::Sandbox;

/// The interface this module implements, at the version of the vendored `wit/deps`.
/// Components importing an older 0.2 patch version link against it too.
const OUTGOING_HANDLER: &str = "wasi:http/outgoing-handler@0.2.12";

/// The `wasi:http/types` interface, whose body constructors Airlock wraps.
const TYPES: &str = "wasi:http/types@0.2.12";

/// Adds `wasi:http/types` (wasmtime-wasi-http's, with bodies counted) and Airlock's
/// `outgoing-handler`.
pub(crate) fn add_to_linker(linker: &mut Linker<Sandbox>) -> wasmtime::Result<()> {
    let options = LinkOptions::default();
    wasi_http::types::add_to_linker::<Sandbox, WasiHttp>(
        linker,
        &(&options).into(),
        <Sandbox as WasiHttpView>::http,
    )?;
    // A body buffers what the guest writes in host memory until its request is sent, so
    // the bodies a call holds unsent are counted (see `hooks::MAX_UNSENT_BODIES`). An
    // outgoing response is never sent (providers serve nothing): its body counts for the
    // rest of the call.
    linker.allow_shadowing(true);
    let mut types = linker.instance(TYPES)?;
    types.func_wrap(
        "[method]outgoing-request.body",
        |mut store, (request,): (Resource<HostOutgoingRequest>,)| {
            let sandbox = store.data_mut();
            if !sandbox.egress.reserve_body() {
                return Ok((Err(()),));
            }
            let body = wasi_http::types::HostOutgoingRequest::body(&mut sandbox.http(), request)?;
            if body.is_err() {
                drop(store.data().egress.body_sent());
            }
            Ok((body,))
        },
    )?;
    types.func_wrap(
        "[method]outgoing-response.body",
        |mut store, (response,): (Resource<HostOutgoingResponse>,)| {
            let sandbox = store.data_mut();
            if !sandbox.egress.reserve_body() {
                return Ok((Err(()),));
            }
            let body = wasi_http::types::HostOutgoingResponse::body(&mut sandbox.http(), response)?;
            if body.is_err() {
                drop(store.data().egress.body_sent());
            }
            Ok((body,))
        },
    )?;
    linker.allow_shadowing(false);
    linker.instance(OUTGOING_HANDLER)?.func_wrap_async(
        "handle",
        |mut store,
         (request, options): (
            Resource<HostOutgoingRequest>,
            Option<Resource<RequestOptions>>,
        )| {
            Box::new(async move {
                let sandbox = store.data_mut();
                // Its body, if any, stops counting as unsent once the send is done.
                let sent = sandbox
                    .table
                    .get(&request)
                    .is_ok_and(|r| r.body.is_some())
                    .then(|| sandbox.egress.body_sent());
                let (request, options) = match to_http(sandbox, request, options)? {
                    Ok(parts) => parts,
                    Err(code) => return Ok((Err(code),)),
                };
                // A guest that finished its body before `handle` (the SDK does; so does
                // any request without a body) is sent right here. One still writing its
                // body after `handle` gets the spawned send wasi-http guests expect.
                let (request, complete) = body_if_complete(request);
                let send =
                    sandbox
                        .egress
                        .send_request(request, options, Box::new(async { Ok(()) }));
                let response = if complete {
                    let response = finish(Pin::from(send).await);
                    drop(sent);
                    HostFutureIncomingResponse::Ready(response)
                } else {
                    HostFutureIncomingResponse::Pending(wasmtime_wasi::runtime::spawn(async move {
                        let response = finish(Pin::from(send).await);
                        drop(sent);
                        response
                    }))
                };
                let future = store.data_mut().table.push(response)?;
                Ok((Ok(future),))
            })
        },
    )?;
    Ok(())
}

type Sent = Result<(http::Response<WasiBody>, IoFuture), wasmtime_wasi_http::Error>;
type IoFuture = Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>;
type Response =
    Result<(http::Response<WasiBody>, AbortOnDropJoinHandle<()>), wasmtime_wasi_http::Error>;

/// The response with the task handle wasi-http keeps alive while its body is read.
///
/// The hooks' connection future is a no-op (the pooled client drives its connections), so
/// no task is needed; but the type wants a handle, and spawning one per request on the
/// operator's runtime is what cost most (see the module docs). Handles of empty tasks are
/// made in batches instead, on a small runtime of their own, so making them never touches
/// the workers' queues.
fn finish(sent: Sent) -> Response {
    sent.map(|(response, io)| {
        drop(io);
        (response, idle_worker())
    })
}

/// Empty tasks spawned at once per refill of a thread's stock of handles.
const WORKER_BATCH: usize = 256;

thread_local! {
    static IDLE_WORKERS: RefCell<Vec<AbortOnDropJoinHandle<()>>> = const { RefCell::new(Vec::new()) };
}

/// The runtime that runs the empty tasks: one thread, asleep between batches.
static HANDLE_RUNTIME: LazyLock<Option<tokio::runtime::Handle>> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread().build().ok()?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name("airlock-wasi-handles".into())
        .spawn(move || runtime.block_on(std::future::pending::<()>()))
        .ok()?;
    Some(handle)
});

/// A handle of an empty task, from this thread's stock.
fn idle_worker() -> AbortOnDropJoinHandle<()> {
    IDLE_WORKERS.with_borrow_mut(|stock| {
        if stock.is_empty()
            && let Some(side) = HANDLE_RUNTIME.as_ref()
        {
            stock.extend((0..WORKER_BATCH).map(|_| side.spawn(async {}).into()));
        }
        stock
            .pop()
            .unwrap_or_else(|| wasmtime_wasi::runtime::spawn(async {}))
    })
}

/// Takes every body frame that is already there. When the body is complete, the request
/// carries it whole and `true`; otherwise the frames read so far are put back in front of
/// the rest and `false`.
fn body_if_complete(request: http::Request<WasiBody>) -> (http::Request<WasiBody>, bool) {
    let (parts, mut body) = request.into_parts();
    if http_body::Body::is_end_stream(&body) {
        return (http::Request::from_parts(parts, body), true);
    }
    let mut frames = Vec::new();
    loop {
        match body.frame().now_or_never() {
            Some(Some(Ok(frame))) => frames.push(frame),
            Some(Some(Err(e))) => {
                // Hand the error on in place of the body; the send reports it.
                let failed = http_body_util::StreamBody::new(futures::stream::iter([Err(e)]));
                return (
                    http::Request::from_parts(parts, failed.boxed_unsync()),
                    true,
                );
            }
            Some(None) => {
                let whole = http_body_util::StreamBody::new(futures::stream::iter(
                    frames.into_iter().map(Ok),
                ));
                return (http::Request::from_parts(parts, whole.boxed_unsync()), true);
            }
            None => {
                let read = futures::stream::iter(frames.into_iter().map(Ok));
                let rest = http_body_util::BodyStream::new(body);
                let body = http_body_util::StreamBody::new(read.chain(rest));
                return (http::Request::from_parts(parts, body.boxed_unsync()), false);
            }
        }
    }
}

type Prepared = (http::Request<WasiBody>, Option<RequestOptions>);

/// Turns the guest's `outgoing-request` into an `http::Request`, as wasmtime-wasi-http's
/// `handle` does: an inner `Err` is an error code for the guest, an outer one a trap.
fn to_http(
    sandbox: &mut Sandbox,
    request: Resource<HostOutgoingRequest>,
    options: Option<Resource<RequestOptions>>,
) -> wasmtime::Result<Result<Prepared, ErrorCode>> {
    let options = match options {
        Some(options) => Some(sandbox.table.delete(options)?),
        None => None,
    };
    let request = sandbox.table.delete(request)?;

    // Framing depends on exactly one well-formed Content-Length; a request without a body
    // must not claim one (wasmtime-wasi-http checks the same before the wire).
    let declared = match content_length(&request.headers) {
        Ok(declared) => declared,
        Err(message) => return Ok(Err(ErrorCode::InternalError(Some(message)))),
    };
    if request.body.is_none() && declared.is_some_and(|n| n != 0) {
        return Ok(Err(ErrorCode::HttpRequestBodySize(Some(0))));
    }

    let method = match &request.method {
        Method::Get => http::Method::GET,
        Method::Head => http::Method::HEAD,
        Method::Post => http::Method::POST,
        Method::Put => http::Method::PUT,
        Method::Delete => http::Method::DELETE,
        Method::Connect => http::Method::CONNECT,
        Method::Options => http::Method::OPTIONS,
        Method::Trace => http::Method::TRACE,
        Method::Patch => http::Method::PATCH,
        Method::Other(m) => match http::Method::from_bytes(m.as_bytes()) {
            Ok(m) => m,
            Err(_) => return Ok(Err(ErrorCode::HttpRequestMethodInvalid)),
        },
    };
    let scheme = match &request.scheme {
        Some(Scheme::Http) => http::uri::Scheme::HTTP,
        Some(Scheme::Https) => http::uri::Scheme::HTTPS,
        Some(Scheme::Other(s)) => match http::uri::Scheme::try_from(s.as_str()) {
            Ok(s) => s,
            Err(_) => return Ok(Err(ErrorCode::HttpProtocolError)),
        },
        None => match sandbox.egress.default_scheme() {
            Some(s) => s,
            None => return Ok(Err(ErrorCode::HttpProtocolError)),
        },
    };
    if !sandbox.egress.is_supported_scheme(&scheme) {
        return Ok(Err(ErrorCode::HttpProtocolError));
    }
    let authority = request.authority.clone().unwrap_or_default();
    let mut uri = http::Uri::builder()
        .scheme(scheme)
        .authority(authority.as_str());
    if let Some(path) = &request.path_with_query {
        uri = uri.path_and_query(path.as_str());
    }
    let uri = match uri.build() {
        Ok(uri) => uri,
        Err(e) => return Ok(Err(wasmtime_wasi_http::p2::http_request_error(e))),
    };

    let mut builder = http::Request::builder().method(method).uri(uri);
    if sandbox.egress.set_host_header() {
        builder = builder.header(http::header::HOST, authority.as_str());
    }
    for (name, value) in request.headers.iter() {
        builder = builder.header(name, value);
    }
    let body: WasiBody = match request.body {
        Some(body) => body,
        None => Empty::<Bytes>::new()
            .map_err(|never: std::convert::Infallible| match never {})
            .boxed_unsync(),
    };
    match builder.body(body) {
        Ok(request) => Ok(Ok((request, options))),
        Err(e) => Ok(Err(ErrorCode::InternalError(Some(e.to_string())))),
    }
}

/// The request's Content-Length: none, or exactly one value of decimal digits.
fn content_length(headers: &http::HeaderMap) -> Result<Option<u64>, String> {
    let mut values = headers.get_all(http::header::CONTENT_LENGTH).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("multiple content-length header values".into());
    }
    let text = value
        .to_str()
        .map_err(|_| "content-length is not text".to_string())?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid content-length {text:?}"));
    }
    text.parse()
        .map(Some)
        .map_err(|_| format!("content-length {text} is too large"))
}

#[cfg(test)]
mod tests {
    use super::content_length;

    fn headers(values: &[&str]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for v in values {
            h.append(http::header::CONTENT_LENGTH, v.parse().expect("value"));
        }
        h
    }

    #[test]
    fn content_length_accepts_one_decimal_value_only() {
        assert_eq!(content_length(&headers(&[])), Ok(None));
        assert_eq!(content_length(&headers(&["42"])), Ok(Some(42)));
        assert!(content_length(&headers(&["+42"])).is_err());
        assert!(content_length(&headers(&[""])).is_err());
        assert!(content_length(&headers(&["1", "1"])).is_err());
        assert!(content_length(&headers(&["99999999999999999999999"])).is_err());
    }
}
