//! ESO's JSON conventions: `property` paths into a secret's value and exploding an object
//! into keys for `dataFrom.extract`.

use serde_json::Value as Json;

use crate::{Error, SecretEntry};

/// Selects `path` inside a JSON `value`, as ESO's providers do with gjson: segments are
/// separated by `.` (write `\.` for a literal dot), a numeric segment indexes an array. A
/// key that exists literally (dots included) wins over a path. A string is returned as its
/// text, anything else as JSON. `Ok(None)` when the path does not exist; an error when the
/// value is not JSON.
pub fn select(value: &[u8], path: &str) -> Result<Option<Vec<u8>>, Error> {
    let root: Json = serde_json::from_slice(value).map_err(|e| {
        Error::other(format!(
            "cannot select property {path:?}: the secret's value is not JSON ({e})"
        ))
    })?;
    if let Some(found) = root.as_object().and_then(|o| o.get(path)) {
        return Ok(Some(render(found)));
    }
    let mut current = &root;
    for segment in split_path(path) {
        let next = match current {
            Json::Object(map) => map.get(&segment),
            Json::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(v) => current = v,
            None => return Ok(None),
        }
    }
    Ok(Some(render(current)))
}

/// The top-level keys of a JSON object, strings as their text and other values as JSON.
pub fn object_entries(value: &[u8]) -> Result<Vec<SecretEntry>, Error> {
    let root: Json = serde_json::from_slice(value)
        .map_err(|e| Error::other(format!("the secret's value is not a JSON object ({e})")))?;
    let Json::Object(map) = root else {
        return Err(Error::other("the secret's value is JSON but not an object"));
    };
    Ok(map
        .iter()
        .map(|(k, v)| SecretEntry {
            key: k.clone(),
            value: render(v),
        })
        .collect())
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

fn render(v: &Json) -> Vec<u8> {
    match v {
        Json::String(s) => s.clone().into_bytes(),
        other => other.to_string().into_bytes(),
    }
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

    #[test]
    fn set_property_keeps_other_fields() {
        let out = set_property(Some(br#"{"keep":"me"}"#), "db.password", b"s3cret").unwrap();
        let v: Json = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["keep"], "me");
        assert_eq!(v["db"]["password"], "s3cret");
    }
}
