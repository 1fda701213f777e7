//! The operator's log filter: the user's directives, minus what could carry secret bytes.
//!
//! wasmtime's generated bindings for the WASI interfaces trace every import call with its
//! arguments and results at TRACE level: HTTP header values (an `Authorization` header),
//! stream reads and writes (request and response bodies). A guest's own log lines go out
//! through [`crate::runtime`], redacted; these would go around it. So they are dropped
//! whatever the directives say, even `trace`.

use tracing::Metadata;
use tracing::Subscriber;
use tracing_subscriber::filter::{EnvFilter, FilterExt, filter_fn};
use tracing_subscriber::layer::Filter;
use tracing_subscriber::registry::LookupSpan;

/// Modules whose events carry the values passed across the sandbox boundary.
const BOUNDARY_TRACES: &[&str] = &[
    "wasmtime_wasi::p2::bindings",
    "wasmtime_wasi_http::p2::bindings",
    "wasmtime_wasi_io::bindings",
    "airlock::runtime::bindings",
];

/// Whether `metadata` is an event or span of the generated bindings.
pub fn crosses_the_sandbox(metadata: &Metadata<'_>) -> bool {
    BOUNDARY_TRACES
        .iter()
        .any(|prefix| metadata.target().starts_with(prefix))
}

/// A filter for `directives` (tracing's `EnvFilter` syntax) that never lets the bindings'
/// traces through.
pub fn filter<S>(directives: &str) -> impl Filter<S> + Send + Sync + 'static
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    EnvFilter::new(directives).and(filter_fn(|metadata| !crosses_the_sandbox(metadata)))
}
