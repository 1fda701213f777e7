//! The six gjson modifiers that tidwall/gjson v1.18 (the version ESO builds with) has and
//! gjson.rs 0.8 lacks: `@keys`, `@values`, `@tostr`, `@fromstr`, `@group` and `@dig`.
//!
//! gjson.rs cannot be taught new modifiers and its values borrow their input, so this layer
//! sits in front of it: a path is split at the first of these modifiers that stands at the
//! top level of the path (not inside a multipath `[…]`/`{…}` or a query `#(…)`), gjson.rs
//! evaluates what comes before it, the modifier runs on that raw JSON text, and the rest of
//! the path is evaluated on the modifier's output. Go's gjson maps whatever follows `#.` (or
//! a query-all `#(…)#.`) over every element, modifiers included, so a map that comes before
//! the modifier is applied element by element here too. A path without these modifiers goes
//! to gjson.rs unchanged.
//!
//! Paths and values come from users' manifests and backends, so the work is bounded: splits
//! and `@dig`'s descent together nest at most [`MAX_DEPTH`] deep, and one selection takes at
//! most [`MAX_STEPS`] evaluations (a `@dig` inside a `@dig` would otherwise multiply).

use std::cell::Cell;

use gjson::Kind;

/// The modifiers this layer adds (all others are gjson.rs's own).
const OURS: [&str; 6] = ["keys", "values", "tostr", "fromstr", "group", "dig"];

/// How deep splits of a path and `@dig`'s descent into a value may nest, together.
pub const MAX_DEPTH: u32 = 64;

/// How many (sub-)paths one selection may evaluate.
pub const MAX_STEPS: u32 = 10_000;

/// The raw JSON text that `path` selects in `json`, or `None` when it selects nothing (or
/// when selecting it would exceed the bounds above).
pub fn get(json: &str, path: &str) -> Option<String> {
    Walk::default().get(json, path, 0)
}

/// One selection's budget.
#[derive(Default)]
struct Walk {
    steps: Cell<u32>,
}

impl Walk {
    fn get(&self, json: &str, path: &str, depth: u32) -> Option<String> {
        if depth > MAX_DEPTH || self.steps.get() >= MAX_STEPS {
            return None;
        }
        self.steps.set(self.steps.get() + 1);
        match split(path) {
            None => {
                let found = gjson::get(json, path);
                found.exists().then(|| found.json().to_owned())
            }
            Some(Split::Map { array, each }) => {
                let list = if array.is_empty() {
                    gjson::parse(json)
                } else {
                    gjson::get(json, array)
                };
                if list.kind() != Kind::Array {
                    return None;
                }
                let mut items = Vec::new();
                list.each(|_, item| {
                    items.extend(self.get(item.json(), each, depth + 1));
                    true
                });
                Some(format!("[{}]", items.join(",")))
            }
            Some(Split::Modifier { input, name, after }) => {
                let input = if input.is_empty() {
                    json.to_owned()
                } else {
                    let found = gjson::get(json, input);
                    if !found.exists() {
                        return None;
                    }
                    found.json().to_owned()
                };
                let (arg, rest) = modifier_arg(after);
                let out = self.apply(name, &input, arg, depth);
                match rest.as_bytes().first() {
                    Some(b'|' | b'.') => self.get(&out, &rest[1..], depth + 1),
                    // Go's gjson ignores anything else after a modifier and its argument.
                    _ => gjson::parse(&out).exists().then_some(out),
                }
            }
        }
    }

    fn apply(&self, name: &str, json: &str, arg: &str, depth: u32) -> String {
        match name {
            "keys" => keys(json),
            "values" => values(json),
            "tostr" => json_string(json),
            "fromstr" if gjson::valid(json) => super::go_string(&gjson::parse(json)),
            "group" => group(json),
            "dig" => self.dig(json, arg, depth),
            _ => String::new(),
        }
    }

    /// `@dig:path`: every value, at any depth, that `path` selects, outermost first.
    fn dig(&self, json: &str, path: &str, depth: u32) -> String {
        let mut found = Vec::new();
        self.descend(&gjson::parse(json), path, depth, &mut found);
        format!("[{}]", found.join(","))
    }

    fn descend(&self, value: &gjson::Value, path: &str, depth: u32, found: &mut Vec<String>) {
        if depth > MAX_DEPTH {
            return;
        }
        found.extend(self.get(value.json(), path, depth + 1));
        if matches!(value.kind(), Kind::Object | Kind::Array) {
            value.each(|_, child| {
                self.descend(&child, path, depth + 1, found);
                true
            });
        }
    }
}

/// Where a path must be split before gjson.rs can evaluate it.
#[derive(Debug, PartialEq)]
enum Split<'p> {
    /// `array.#.each` (or `array.#(query)#.each`): `each` runs on every element of `array`.
    Map { array: &'p str, each: &'p str },
    /// `input.@name…`: the modifier runs on what `input` selects; `after` follows the name.
    Modifier {
        input: &'p str,
        name: &'p str,
        after: &'p str,
    },
}

/// The first top-level map or modifier of ours in `path`, when a modifier of ours occurs at
/// all (a map alone is gjson.rs's business).
fn split(path: &str) -> Option<Split<'_>> {
    let b = path.as_bytes();
    let before = |i: usize| if i == 0 { "" } else { &path[..i - 1] };
    let mut first_map = None;
    let mut at_component = true;
    let mut i = 0;
    while i < b.len() {
        if at_component {
            if b[i] == b'@' {
                let name = modifier_name(&path[i + 1..]);
                if OURS.contains(&name) {
                    let here = Split::Modifier {
                        input: before(i),
                        name,
                        after: &path[i + 1 + name.len()..],
                    };
                    return Some(first_map.unwrap_or(here));
                }
            }
            if b[i] == b'#' && first_map.is_none() {
                match b.get(i + 1) {
                    Some(b'.') => {
                        first_map = Some(Split::Map {
                            array: before(i),
                            each: &path[i + 2..],
                        })
                    }
                    Some(b'(' | b'[') => {
                        if let Some(close) = group_end(b, i + 1)
                            && b.get(close + 1) == Some(&b'#')
                            && b.get(close + 2) == Some(&b'.')
                        {
                            first_map = Some(Split::Map {
                                array: &path[..close + 2],
                                each: &path[close + 3..],
                            });
                        }
                    }
                    _ => {}
                }
            }
        }
        at_component = false;
        match b[i] {
            b'\\' => i += 1,
            b'[' | b'{' | b'(' => match group_end(b, i) {
                Some(close) => i = close,
                None => return None,
            },
            b'.' | b'|' => at_component = true,
            _ => {}
        }
        i += 1;
    }
    None
}

/// A modifier's name: up to the first `.`, `|` or `:`.
fn modifier_name(s: &str) -> &str {
    let end = s.find(['.', '|', ':']).unwrap_or(s.len());
    &s[..end]
}

/// The index of the byte that closes the group (a string, or brackets of any kind holding
/// strings and further groups) opened at `open`.
fn group_end(b: &[u8], open: usize) -> Option<usize> {
    if b[open] == b'"' {
        let mut i = open + 1;
        while i < b.len() {
            match b[i] {
                b'\\' => i += 1,
                b'"' => return Some(i),
                _ => {}
            }
            i += 1;
        }
        return None;
    }
    let mut depth = 0usize;
    let mut i = open;
    while i < b.len() {
        match b[i] {
            b'"' => i = group_end(b, i)?,
            b'\\' => i += 1,
            b'[' | b'{' | b'(' => depth += 1,
            b']' | b'}' | b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// A modifier's argument and the path after it, as Go's gjson reads them: after `:`, a JSON
/// value (`{…}`, `[…]`, `"…"`), or else everything up to the next top-level `|`.
fn modifier_arg(after: &str) -> (&str, &str) {
    let Some(text) = after.strip_prefix(':') else {
        return ("", after);
    };
    let b = text.as_bytes();
    if matches!(b.first(), Some(b'{' | b'[' | b'"'))
        && let Some(close) = group_end(b, 0)
    {
        return (&text[..=close], &text[close + 1..]);
    }
    let mut i = 0;
    while i < b.len() && b[i] != b'|' {
        if matches!(b[i], b'{' | b'[' | b'"' | b'(') {
            i = group_end(b, i).unwrap_or(b.len() - 1);
        }
        i += 1;
    }
    (&text[..i], &text[i..])
}

/// `@keys`: an object's keys; `null` for each element of an array (and for a lone scalar).
fn keys(json: &str) -> String {
    let value = gjson::parse(json);
    let object = value.kind() == Kind::Object;
    let mut out = Vec::new();
    value.each(|key, _| {
        out.push(if object { key.json() } else { "null" }.to_owned());
        true
    });
    format!("[{}]", out.join(","))
}

/// `@values`: an object's values; an array as it is; a lone scalar in an array.
fn values(json: &str) -> String {
    let value = gjson::parse(json);
    if value.kind() == Kind::Array {
        return json.to_owned();
    }
    let mut out = Vec::new();
    value.each(|_, v| {
        out.push(v.json().to_owned());
        true
    });
    format!("[{}]", out.join(","))
}

/// `@group`: an object of arrays turned into an array of objects, element by element.
fn group(json: &str) -> String {
    let value = gjson::parse(json);
    if value.kind() != Kind::Object {
        return String::new();
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    value.each(|key, list| {
        if list.kind() == Kind::Array {
            let mut index = 0;
            list.each(|_, item| {
                if index == rows.len() {
                    rows.push(Vec::new());
                }
                rows[index].push(format!("{}:{}", key.json(), item.json()));
                index += 1;
                true
            });
        }
        true
    });
    let rows: Vec<String> = rows
        .iter()
        .map(|fields| format!("{{{}}}", fields.join(",")))
        .collect();
    format!("[{}]", rows.join(","))
}

/// `@tostr`: text as a JSON string, escaped as Go's gjson escapes it (`<`, `>` and `&` as
/// `\u00XX`, like Go's HTML-safe JSON, and U+2028/U+2029 too).
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if c < ' ' || matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}') => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(json: &str, path: &str) -> Option<String> {
        get(json, path).map(|raw| super::super::go_string(&gjson::parse(&raw)))
    }

    /// gjson v1.18's `TestKeysValuesModifier` (its fixture's trailing commas removed: the
    /// SDK refuses invalid JSON before selecting).
    #[test]
    fn keys_and_values_as_gjsons_own_tests_have_them() {
        let doc = r#"{
            "1300014": {"code": "1300014", "price": 59.18, "symbol": "300014"},
            "1300015": {"code": "1300015", "price": 43.31, "symbol": "300015"}
        }"#;
        assert_eq!(string(doc, "@keys").unwrap(), r#"["1300014","1300015"]"#);
        assert_eq!(string("", "@keys").unwrap(), "[]");
        assert_eq!(string(r#""hello""#, "@keys").unwrap(), "[null]");
        assert_eq!(string("[]", "@keys").unwrap(), "[]");
        assert_eq!(string("[1,2,3]", "@keys").unwrap(), "[null,null,null]");

        assert_eq!(
            string(doc, "@values.#.code").unwrap(),
            r#"["1300014","1300015"]"#
        );
        assert_eq!(string("", "@values").unwrap(), "[]");
        assert_eq!(string(r#""hello""#, "@values").unwrap(), r#"["hello"]"#);
        assert_eq!(string("[]", "@values").unwrap(), "[]");
        assert_eq!(string("[1,2,3]", "@values").unwrap(), "[1,2,3]");
    }

    /// gjson's `TestToFromStr`: the map after `#.` applies `@tostr` to each element.
    #[test]
    fn fromstr_and_tostr_as_gjsons_own_test_has_them() {
        let doc = r#"{"Message":"{\"Records\":[{\"eventVersion\":\"2.1\"}]"}"#;
        assert_eq!(
            get(doc, "Message.@fromstr.Records.#.eventVersion.@tostr").unwrap(),
            r#"["\"2.1\""]"#
        );
        assert_eq!(
            string(r#"{"a":"x<y>&\n"}"#, "a|@tostr|@fromstr").unwrap(),
            "x<y>&\n"
        );
        assert_eq!(
            get(r#"{"a":"x<y>&"}"#, "a|@tostr").unwrap(),
            r#""\"x\u003cy\u003e\u0026\"""#
        );
        assert_eq!(get("{", "@fromstr"), None);
    }

    /// gjson's `TestGroup`, the second case behind a multipath and a query. (Its multipath
    /// names are written unquoted here: gjson.rs keeps the quotes of `{"id":…}` in the key,
    /// `"\"id\""`, where Go's gjson does not — listed in docs/compatibility.md.)
    #[test]
    fn group_as_gjsons_own_test_has_it() {
        let doc = r#"{"id":["123","456","789"],"val":[2,1]}"#;
        assert_eq!(
            get(doc, "@group").unwrap(),
            r#"[{"id":"123","val":2},{"id":"456","val":1},{"id":"789"}]"#
        );
        let doc = r#"{"issues": [
            {"fields": {"labels": ["milestone_1","group:foo","plan:a","plan:b"]}, "id": "123"},
            {"fields": {"labels": ["milestone_1","group:foo","plan:a","plan"]}, "id": "456"}
        ]}"#;
        assert_eq!(
            get(
                doc,
                r#"{id:issues.#.id,plans:issues.#.fields.labels.#(%"plan:*")#|#.#}|@group|#(plans>=2)#.id"#
            )
            .unwrap(),
            r#"["123"]"#
        );
        assert_eq!(get("[1]", "@group"), None);
    }

    /// gjson's `TestModDig`.
    #[test]
    fn dig_as_gjsons_own_test_has_it() {
        let doc = r#"{"group": {"issues": [
            {"fields": {"labels": ["milestone_1","group:foo","plan:a","plan:b"]}, "refid": "123"},
            {"fields": {"labels": ["milestone_2","group:foo","plan:a","plan"]}, "refid": "456"},
            [{"extra_deep": [{"fields": {"labels": ["milestone_3","group:foo","plan:a","plan"]}, "refid": "789"}]}]
        ]}}"#;
        for (refid, want) in [
            ("123", "milestone_1"),
            ("456", "milestone_2"),
            ("789", "milestone_3"),
        ] {
            let path = format!("group.@dig:#(refid={refid})|0.fields.labels.0");
            assert_eq!(string(doc, &path).as_deref(), Some(want), "{path}");
        }
        let doc = r#"{"something": {"anything": {"abcdefg": {
            "finally": {"important": {"secret": "password", "name": "jake"}},
            "name": "melinda"
        }}}}"#;
        assert_eq!(string(doc, "@dig:name").unwrap(), r#"["melinda","jake"]"#);
        assert_eq!(string(doc, "@dig:secret").unwrap(), r#"["password"]"#);
    }

    #[test]
    fn paths_without_our_modifiers_go_to_gjson_rs_unchanged() {
        assert_eq!(split("friends.#.first"), None);
        assert_eq!(split("children|@reverse|0"), None);
        assert_eq!(split(r"a\.@keys"), None);
        assert_eq!(split("[a.@keys,b]"), None);
        assert_eq!(
            split("a.b|@keys|0"),
            Some(Split::Modifier {
                input: "a.b",
                name: "keys",
                after: "|0"
            })
        );
        assert_eq!(
            split(r#"f.#(n=="x)")#.g.@values"#),
            Some(Split::Map {
                array: r#"f.#(n=="x)")#"#,
                each: "g.@values"
            })
        );
    }

    #[test]
    fn modifiers_compose_with_gjson_rs_paths_and_modifiers() {
        let doc = r#"{"db":{"user":"u","pass":"p"},"list":[{"a":1,"b":2},{"c":3}]}"#;
        assert_eq!(get(doc, "db.@keys").unwrap(), r#"["user","pass"]"#);
        assert_eq!(string(doc, "db|@values|1").unwrap(), "p");
        assert_eq!(get(doc, "db|@keys|@reverse").unwrap(), r#"["pass","user"]"#);
        assert_eq!(get(doc, "list.#.@keys").unwrap(), r#"[["a","b"],["c"]]"#);
        assert_eq!(get(doc, "list.#(c==3)#.@values").unwrap(), "[[3]]");
        assert_eq!(get(doc, "nope.@keys"), None);
        assert_eq!(get(doc, "db.@keys.5"), None);
    }

    #[test]
    fn hostile_paths_and_values_are_bounded() {
        // @dig inside @dig multiplies the work; it stops at the step budget instead.
        let doc = format!("[{}]", vec![r#"{"a":[1,2,3,4]}"#; 50].join(","));
        let path = "@dig:".repeat(40) + "a";
        assert!(get(&doc, &path).is_some());
        // A match nested deeper than the bound is not reached; a shallow one is.
        let depth = MAX_DEPTH as usize + 10;
        let doc = format!("{}{}", r#"{"x":"#.repeat(depth), r#"{"a":1}"#) + &"}".repeat(depth);
        assert_eq!(get(&doc, "@dig:a").unwrap(), "[]");
        let doc = format!("{}{}", r#"{"x":"#.repeat(5), r#"{"a":1}"#) + &"}".repeat(5);
        assert_eq!(get(&doc, "@dig:a").unwrap(), "[1]");
        // An unterminated group or argument is not a panic.
        assert_eq!(get("{}", "@keys:[1"), Some("[]".into()));
        assert_eq!(get(r#"{"a":1}"#, "#(a=="), None);
    }
}
