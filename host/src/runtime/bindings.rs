//! The host side of the `airlock:provider/provider` world: the one `bindgen!` of the host.
#![allow(missing_docs, missing_debug_implementations, clippy::all)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "provider",
    // No `tracing` on imports: it would log credentials, cache values and guest log text.
    imports: {
        "airlock:provider/credentials": async,
    },
    exports: { default: async },
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
    },
});

pub use self::airlock::provider::types as wit;
