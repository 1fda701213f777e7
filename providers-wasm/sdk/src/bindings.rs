//! The generated bindings of the `airlock:provider/provider` world. Providers normally use
//! the re-exports at the crate root; this module is public for the export macro.
#![allow(unsafe_code, missing_docs, missing_debug_implementations, clippy::all)]

wit_bindgen::generate!({
    path: "../../wit",
    world: "provider",
    with: {
        "wasi:http/outgoing-handler@0.2.12": wasip2::http::outgoing_handler,
        "wasi:http/types@0.2.12": wasip2::http::types,
        "wasi:io/error@0.2.12": wasip2::io::error,
        "wasi:io/poll@0.2.12": wasip2::io::poll,
        "wasi:io/streams@0.2.12": wasip2::io::streams,
        "wasi:clocks/monotonic-clock@0.2.12": wasip2::clocks::monotonic_clock,
    },
    pub_export_macro: true,
    export_macro_name: "__export_provider_world",
    default_bindings_module: "airlock_provider_sdk::bindings",
});
