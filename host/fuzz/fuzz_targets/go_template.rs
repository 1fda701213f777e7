//! Parses and renders arbitrary Go templates over a small data context: any input must
//! give output or an error, never a panic, a hang or unbounded memory.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

// The template modules, compiled from host/src/template (they refer to each other through
// `super::`, so they sit at the crate root here).
#[allow(dead_code)]
#[path = "../../src/template/crypto.rs"]
mod crypto;
#[allow(dead_code)]
#[path = "../../src/template/eval.rs"]
mod eval;
#[allow(dead_code)]
#[path = "../../src/template/functions.rs"]
mod functions;
#[allow(dead_code)]
#[path = "../../src/template/parse.rs"]
mod parse;

use eval::Value;

fuzz_target!(|input: &[u8]| {
    let Ok(src) = std::str::from_utf8(input) else {
        return;
    };
    let Ok(nodes) = parse::parse(src) else {
        return;
    };
    let data = Value::Map(BTreeMap::from([
        ("username".to_string(), Value::str("admin")),
        ("password".to_string(), Value::str("s3cr3t")),
        (
            "my-key".to_string(),
            Value::str("{\"a\":[1,2,{\"b\":null}]}"),
        ),
        ("bin".to_string(), Value::Str(vec![0, 255, 10, 123, 123])),
    ]));
    let _ = eval::render(&nodes, &data);
});
