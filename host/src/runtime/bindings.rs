//! The host side of the `airlock:provider/provider` world: the one `bindgen!` of the host.
#![allow(missing_docs, missing_debug_implementations, clippy::all)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "provider",
    imports: {
        "airlock:provider/credentials": async,
        default: tracing,
    },
    exports: { default: async },
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
    },
});

pub use self::airlock::provider::types as wit;
