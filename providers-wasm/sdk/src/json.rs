//! ESO's JSON conventions: `property` paths into a secret's value and exploding an object
//! into keys for `dataFrom.extract`.

mod modifiers;

use serde_json::Value as Json;

use crate::{Error, SecretEntry};

/// Selects `path` inside a JSON `value` with gjson's path syntax, as ESO's providers do
/// (tidwall/gjson): dotted keys and indexes, `\.` for a literal dot, wildcards `*` `?`,
/// `#` (array length, or `a.#.b` over every element), queries `#(k=="v")` / `#(k>1)#`,
/// gjson v1.18's modifiers (`@reverse`, `@keys`, `@values`, `@tostr`, `@fromstr`, `@group`,
/// `@dig`, …) and multipaths. A top-level key spelled exactly like `path`
/// wins over the syntax (ESO's Vault and AWS providers look such keys up first). A string
/// is returned as its text, a number as Go's gjson prints it, null as empty, anything else
/// as its JSON text. `Ok(None)` when the path matches nothing; an error when the value is
/// not JSON.
pub fn select(value: &[u8], path: &str) -> Result<Option<Vec<u8>>, Error> {
    let text = std::str::from_utf8(value)
        .ok()
        .filter(|t| gjson::valid(t))
        .ok_or_else(|| {
            Error::other(format!(
                "cannot select property {path:?}: the secret's value is not JSON"
            ))
        })?;
    let found = modifiers::get(text, &escape_key(path)).or_else(|| modifiers::get(text, path));
    Ok(found.map(|raw| go_string(&gjson::parse(&raw)).into_bytes()))
}

/// `key` as a gjson path naming one key: every character that means something in a path is
/// escaped with `\` (the same characters Go's `gjson.Escape` escapes).
fn escape_key(key: &str) -> String {
    let safe = |c: char| {
        c.is_ascii_alphanumeric() || c <= ' ' || c > '~' || c == '_' || c == '-' || c == ':'
    };
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        if !safe(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The text Go's gjson `Result.String()` gives: a number keeps its JSON text when it is an
/// integer and is otherwise printed as the shortest decimal (`1.50` gives `1.5`, `1e3` gives
/// `1000`); null gives the empty string.
fn go_string(v: &gjson::Value) -> String {
    match v.kind() {
        gjson::Kind::Number => {
            let raw = v.json();
            let digits = raw.strip_prefix('-').unwrap_or(raw);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                raw.to_string()
            } else {
                format!("{}", v.f64())
            }
        }
        _ => v.str().to_string(),
    }
}

/// The top-level keys of a JSON object, as ESO's providers explode one (`json.RawMessage`):
/// a string as its text, null as empty, anything else as its JSON text exactly as written
/// (whitespace kept), in document order (a repeated key: the last one wins downstream).
pub fn object_entries(value: &[u8]) -> Result<Vec<SecretEntry>, Error> {
    let text = std::str::from_utf8(value)
        .ok()
        .filter(|t| gjson::valid(t))
        .ok_or_else(|| Error::other("the secret's value is not a JSON object (not JSON)"))?;
    let root = gjson::parse(text);
    if root.kind() != gjson::Kind::Object {
        return Err(Error::other("the secret's value is JSON but not an object"));
    }
    let mut entries = Vec::new();
    root.each(|key, value| {
        let value = match value.kind() {
            gjson::Kind::String => value.str().as_bytes().to_vec(),
            gjson::Kind::Null => Vec::new(),
            _ => value.json().as_bytes().to_vec(),
        };
        entries.push(SecretEntry {
            key: key.str().to_string(),
            value,
        });
        true
    });
    Ok(entries)
}

/// Sets `path` inside a JSON object held in `existing` (or a new object) to `value`, for
/// pushing one property. Intermediate objects are created.
pub fn set_property(existing: Option<&[u8]>, path: &str, value: &[u8]) -> Result<Vec<u8>, Error> {
    let mut root: Json = match existing {
        Some(bytes) => serde_json::from_slice(bytes).map_err(|e| {
            Error::other(format!(
                "cannot set property {path:?}: the existing value is not JSON ({e})"
            ))
        })?,
        None => Json::Object(Default::default()),
    };
    let text = String::from_utf8_lossy(value).into_owned();
    let segments = split_path(path);
    let mut current = &mut root;
    for (i, segment) in segments.iter().enumerate() {
        let Json::Object(map) = current else {
            return Err(Error::other(format!(
                "cannot set property {path:?}: an intermediate value is not an object"
            )));
        };
        if i + 1 == segments.len() {
            map.insert(segment.clone(), Json::String(text));
            break;
        }
        current = map
            .entry(segment.clone())
            .or_insert_with(|| Json::Object(Default::default()));
    }
    serde_json::to_vec(&root).map_err(|e| Error::other(e.to_string()))
}

fn split_path(path: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.last_mut().expect("never empty").push(n);
                }
            }
            '.' => out.push(String::new()),
            c => out.last_mut().expect("never empty").push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &[u8] = br#"{"username":"admin","port":5432,"nested":{"a.b":"dot","list":["x","y"]},"a.b":"literal"}"#;

    fn sel(path: &str) -> Option<String> {
        select(DOC, path)
            .unwrap()
            .map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn strings_come_back_as_text_and_others_as_json() {
        assert_eq!(sel("username").as_deref(), Some("admin"));
        assert_eq!(sel("port").as_deref(), Some("5432"));
        assert_eq!(sel("nested.list").as_deref(), Some(r#"["x","y"]"#));
    }

    #[test]
    fn paths_walk_objects_arrays_and_escaped_dots() {
        assert_eq!(sel("nested.list.1").as_deref(), Some("y"));
        assert_eq!(sel(r"nested.a\.b").as_deref(), Some("dot"));
        assert_eq!(sel("a.b").as_deref(), Some("literal"));
    }

    #[test]
    fn a_missing_path_is_absent_not_an_error() {
        assert_eq!(sel("nope"), None);
        assert_eq!(sel("nested.list.9"), None);
    }

    #[test]
    fn selecting_from_a_non_json_value_is_an_error() {
        assert!(matches!(select(b"plain", "x"), Err(Error::Other(_))));
    }

    #[test]
    fn object_entries_explode_top_level_keys() {
        let entries = object_entries(br#"{"a":"1","b":{"c":2}}"#).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].key, "a");
        assert_eq!(entries[0].value, b"1");
        assert_eq!(entries[1].value, br#"{"c":2}"#);
        assert!(object_entries(b"[1]").is_err());
    }

    /// The example document of gjson's README and SYNTAX.md.
    const GJSON_DOC: &str = r#"{
  "name": {"first": "Tom", "last": "Anderson"},
  "age":37,
  "children": ["Sara","Alex","Jack"],
  "fav.movie": "Deer Hunter",
  "friends": [
    {"first": "Dale", "last": "Murphy", "age": 44, "nets": ["ig", "fb", "tw"]},
    {"first": "Roger", "last": "Craig", "age": 68, "nets": ["fb", "tw"]},
    {"first": "Jane", "last": "Murphy", "age": 47, "nets": ["ig", "tw"]}
  ]
}"#;

    fn gj(path: &str) -> Option<String> {
        select(GJSON_DOC.as_bytes(), path)
            .unwrap()
            .map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn gjsons_documented_paths_give_gjsons_documented_results() {
        let cases = [
            ("name.last", "Anderson"),
            ("age", "37"),
            ("children", r#"["Sara","Alex","Jack"]"#),
            ("children.#", "3"),
            ("children.1", "Alex"),
            ("child*.2", "Jack"),
            ("c?ildren.0", "Sara"),
            (r"fav\.movie", "Deer Hunter"),
            ("friends.#.first", r#"["Dale","Roger","Jane"]"#),
            ("friends.1.last", "Craig"),
            (r#"friends.#(last=="Murphy").first"#, "Dale"),
            (r#"friends.#(last=="Murphy")#.first"#, r#"["Dale","Jane"]"#),
            ("friends.#(age>45)#.last", r#"["Craig","Murphy"]"#),
            (r#"friends.#(first%"D*").last"#, "Murphy"),
            (r#"friends.#(first!%"D*").last"#, "Craig"),
            (r#"friends.#(nets.#(=="fb"))#.first"#, r#"["Dale","Roger"]"#),
            ("children|@reverse", r#"["Jack","Alex","Sara"]"#),
            ("children|@reverse|0", "Jack"),
            ("children.@reverse", r#"["Jack","Alex","Sara"]"#),
        ];
        for (path, want) in cases {
            assert_eq!(gj(path).as_deref(), Some(want), "{path}");
        }
        assert_eq!(gj("friends.#(age>99).first"), None);
        assert_eq!(gj("name.middle"), None);
    }

    #[test]
    fn a_literal_key_with_dots_wins_and_numbers_print_as_go_does() {
        // Both `fav.movie` the key and `fav` → `movie` the path could match: the key wins.
        let doc =
            br#"{"fav.movie":"key","fav":{"movie":"path"},"pi":3.140,"big":1e3,"n":-7,"z":null}"#;
        let sel = |p: &str| {
            select(doc, p)
                .unwrap()
                .map(|v| String::from_utf8(v).unwrap())
        };
        assert_eq!(sel("fav.movie").as_deref(), Some("key"));
        assert_eq!(sel("pi").as_deref(), Some("3.14"));
        assert_eq!(sel("big").as_deref(), Some("1000"));
        assert_eq!(sel("n").as_deref(), Some("-7"));
        assert_eq!(sel("z").as_deref(), Some(""));
    }

    #[test]
    fn object_entries_keep_nested_json_as_written_like_esos_raw_message() {
        let entries = object_entries(
            br#"{ "s": "t\u00e9", "n": 1.50, "o": {"b": 1,  "a": [2]}, "z": null }"#,
        )
        .unwrap();
        let got: Vec<(&str, &[u8])> = entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_slice()))
            .collect();
        assert_eq!(
            got,
            [
                ("s", "t\u{e9}".as_bytes()),
                ("n", b"1.50".as_slice()),
                ("o", br#"{"b": 1,  "a": [2]}"#.as_slice()),
                ("z", b"".as_slice()),
            ]
        );
    }

    #[test]
    fn set_property_keeps_other_fields() {
        let out = set_property(Some(br#"{"keep":"me"}"#), "db.password", b"s3cret").unwrap();
        let v: Json = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["keep"], "me");
        assert_eq!(v["db"]["password"], "s3cret");
    }
}
