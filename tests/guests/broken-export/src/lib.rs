//! A component that exports `airlock:provider/secrets@0.0.1` with one function instead of
//! the contract's `airlock:provider/secrets@0.1.0`: what a provider built against a stale
//! copy of the WIT looks like. The runtime must refuse it at load, naming the export.

// The generated glue and its export are the only unsafe code here.
#[allow(unsafe_code, missing_debug_implementations, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        inline: r#"
            package airlock:provider@0.0.1;

            interface secrets {
                get: func(key: string) -> option<string>;
            }

            world stale {
                export secrets;
            }
        "#,
        world: "stale",
    });

    use super::Stale;
    export!(Stale with_types_in self);
}

struct Stale;

impl bindings::exports::airlock::provider::secrets::Guest for Stale {
    fn get(key: String) -> Option<String> {
        Some(key)
    }
}
