//! Parses and renders arbitrary Go templates over a small data context: any input must
//! give output or an error, never a panic, a hang or unbounded memory.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

#[allow(dead_code, unused_imports)]
mod template {
    #[path = "../../../src/template/crypto.rs"]
    mod crypto;
    #[path = "../../../src/template/eval.rs"]
    pub mod eval;
    #[path = "../../../src/template/functions.rs"]
    pub mod functions;
    #[path = "../../../src/template/parse.rs"]
    pub mod parse;
    pub use eval::Value;
}

use template::Value;

fuzz_target!(|input: &[u8]| {
    let Ok(src) = std::str::from_utf8(input) else {
        return;
    };
    let Ok(nodes) = template::parse::parse(src) else {
        return;
    };
    let data = Value::Map(BTreeMap::from([
        ("username".to_string(), Value::str("admin")),
        ("password".to_string(), Value::str("s3cr3t")),
        ("my-key".to_string(), Value::str("{\"a\":[1,2,{\"b\":null}]}")),
        ("bin".to_string(), Value::Str(vec![0, 255, 10, 123, 123])),
    ]));
    let _ = template::eval::render(&nodes, &data);
});
