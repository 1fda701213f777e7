//! The JSONPath subset of `result.jsonPath`: `$`, `.name`, `['name']`, `["name"]`, `[N]`,
//! `[*]` and `.*`. A wildcard turns the result into a list of every match, as ESO's
//! PaesslerAG/jsonpath does.

use serde_json::Value as Json;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
    All,
}

fn parse(path: &str) -> Result<Vec<Step>, String> {
    let mut rest = path
        .strip_prefix('$')
        .ok_or_else(|| format!("{path}: must start with $"))?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix(".*") {
            steps.push(Step::All);
            rest = after;
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return Err(format!("{path}: empty name after ."));
            }
            steps.push(Step::Key(after[..end].to_string()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after
                .find(']')
                .ok_or_else(|| format!("{path}: unclosed ["))?;
            let inner = after[..end].trim();
            steps.push(if inner == "*" {
                Step::All
            } else if let Some(name) = inner
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
            {
                Step::Key(name.to_string())
            } else {
                Step::Index(
                    inner
                        .parse()
                        .map_err(|_| format!("{path}: unsupported selector [{inner}]"))?,
                )
            });
            rest = &after[end + 1..];
        } else {
            return Err(format!("{path}: unexpected {rest:?}"));
        }
    }
    Ok(steps)
}

/// Checks that `path` is in the subset.
pub fn check(path: &str) -> Result<(), String> {
    parse(path).map(drop)
}

/// Applies `path` to `value`.
pub fn get(path: &str, value: &Json) -> Result<Json, String> {
    let steps = parse(path)?;
    let mut current = vec![value.clone()];
    let mut many = false;
    for step in &steps {
        let mut next = Vec::new();
        for v in current {
            match (step, v) {
                (Step::Key(k), Json::Object(mut m)) => match m.remove(k) {
                    Some(inner) => next.push(inner),
                    None if many => {}
                    None => return Err(format!("{path}: no key {k:?}")),
                },
                (Step::Index(n), Json::Array(mut a)) => {
                    if *n < a.len() {
                        next.push(a.swap_remove(*n));
                    } else if !many {
                        return Err(format!("{path}: index {n} out of range"));
                    }
                }
                (Step::All, Json::Array(a)) => next.extend(a),
                (Step::All, Json::Object(m)) => next.extend(m.into_iter().map(|(_, v)| v)),
                (_, _) if many => {}
                (_, other) => {
                    return Err(format!("{path}: cannot select into {}", kind(&other)));
                }
            }
        }
        many |= *step == Step::All;
        current = next;
    }
    Ok(if many {
        Json::Array(current)
    } else {
        current.into_iter().next().unwrap_or(Json::Null)
    })
}

fn kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_indexes_and_wildcards_select() {
        let doc = json!({"data": {"a.b": "x", "list": [{"v": 1}, {"v": 2}]}});
        assert_eq!(get("$", &doc).unwrap(), doc);
        assert_eq!(get("$.data['a.b']", &doc).unwrap(), json!("x"));
        assert_eq!(get("$.data.list[1].v", &doc).unwrap(), json!(2));
        assert_eq!(get("$.data.list[*].v", &doc).unwrap(), json!([1, 2]));
    }

    #[test]
    fn a_missing_key_is_an_error_naming_it() {
        let doc = json!({"data": {}});
        assert_eq!(get("$.data.x", &doc).unwrap_err(), "$.data.x: no key \"x\"");
        assert!(check("data.x").unwrap_err().contains("must start with $"));
        assert!(check("$[?(@.a)]").unwrap_err().contains("unsupported"));
    }
}
