//! Tera as a WebAssembly component. The host runs every tera render inside wasmtime with a
//! fuel, memory and stack budget, because tera itself has none: a self-recursive macro
//! overflows the stack (a native stack overflow aborts the whole process), `range` with
//! `step_by=0` panics, and `set_global s = s ~ s` or nested loops exhaust memory or CPU.
//! In here each of those is a trap that ends this one render.

use std::collections::HashMap;
use std::io::{self, Write};

// The generated glue and its export are the only unsafe code here.
#[allow(unsafe_code, missing_debug_implementations, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "renderer.wit",
        world: "renderer",
    });

    use super::Renderer;
    export!(Renderer with_types_in self);
}

use bindings::{Failure, Guest};

struct Renderer;

impl Guest for Renderer {
    fn render(
        name: String,
        source: String,
        context: String,
        max_output: u32,
    ) -> Result<String, Failure> {
        // A panic ends in a trap either way; the default hook would first write to stderr,
        // which the host does not provide.
        std::panic::set_hook(Box::new(|_| {}));
        let fail = |parse: bool, message: String| Failure { parse, message };
        let mut t = tera();
        t.add_raw_template(&name, &source)
            .map_err(|e| fail(true, cause(&e)))?;
        let context: serde_json::Value =
            serde_json::from_str(&context).map_err(|e| fail(false, e.to_string()))?;
        let context = tera::Context::from_value(context).map_err(|e| fail(false, e.to_string()))?;
        let mut out = Capped {
            buf: Vec::new(),
            max: max_output as usize,
        };
        t.render_to(&name, &context, &mut out)
            .map_err(|e| fail(false, cause(&e)))?;
        String::from_utf8(out.buf).map_err(|_| fail(false, "the output is not UTF-8".into()))
    }
}

/// The error and its causes on one line (tera puts the position of a parse error in a cause).
fn cause(e: &tera::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// Refuses to grow past `max` bytes, so an oversized output fails as soon as it is written.
struct Capped {
    buf: Vec<u8>,
    max: usize,
}

impl Write for Capped {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > self.max {
            return Err(io::Error::other(format!(
                "the output exceeds {} bytes",
                self.max
            )));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Tera with nothing that reaches outside: `get_env` fails, no autoescaping, a few ESO-style
/// filters (`b64enc`, `b64dec`, `sha256sum`).
fn tera() -> tera::Tera {
    use base64::Engine as _;
    let mut t = tera::Tera::default();
    t.autoescape_on(Vec::new());
    t.register_function("get_env", |_: &HashMap<String, tera::Value>| {
        Err(tera::Error::msg(
            "get_env is disabled: templates cannot read the environment",
        ))
    });
    t.register_filter(
        "b64enc",
        |v: &tera::Value, _: &HashMap<String, tera::Value>| {
            let s = tera::try_get_value!("b64enc", "value", String, v);
            Ok(base64::engine::general_purpose::STANDARD.encode(s).into())
        },
    );
    t.register_filter(
        "b64dec",
        |v: &tera::Value, _: &HashMap<String, tera::Value>| {
            let s = tera::try_get_value!("b64dec", "value", String, v);
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| tera::Error::msg("the value is not valid base64"))?;
            Ok(String::from_utf8_lossy(&bytes).into_owned().into())
        },
    );
    t.register_filter(
        "sha256sum",
        |v: &tera::Value, _: &HashMap<String, tera::Value>| {
            use sha2::Digest as _;
            let s = tera::try_get_value!("sha256sum", "value", String, v);
            Ok(hex::encode(sha2::Sha256::digest(s)).into())
        },
    );
    t
}
