//! The function map: Go's builtins, the sprig v3 functions ESO keeps (with sprig's argument
//! order, so the piped value is the last argument) and ESO's own crypto helpers (in
//! [`super::crypto`]).
//!
//! Nothing here reaches the network, the environment, the filesystem, the clock or a random
//! source: sprig's `env`, `expandenv` and `getHostByName` (removed by ESO too), `now`/`date`,
//! random and key-generation functions are not defined, so a template using them fails to
//! parse. Error messages never contain argument values.

use std::collections::BTreeMap;

use base64::Engine as _;
use sha2::Digest as _;

use super::crypto;
use super::eval::{MAX_OUTPUT, Value, format_float};

/// Every defined function name.
pub const NAMES: &[&str] = &[
    // Go builtins
    "and",
    "or",
    "not",
    "len",
    "index",
    "slice",
    "print",
    "printf",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "html",
    "js",
    "urlquery",
    // sprig: strings
    "upper",
    "lower",
    "title",
    "untitle",
    "trim",
    "trimAll",
    "trimPrefix",
    "trimSuffix",
    "replace",
    "quote",
    "squote",
    "repeat",
    "substr",
    "trunc",
    "nospace",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "cat",
    "indent",
    "nindent",
    "join",
    "split",
    "splitList",
    "splitn",
    "toString",
    "toStrings",
    "abbrev",
    "snakecase",
    "camelcase",
    "kebabcase",
    "regexMatch",
    "regexFind",
    "regexFindAll",
    "regexReplaceAll",
    "regexReplaceAllLiteral",
    "regexSplit",
    // sprig: encoding and hashes
    "b64enc",
    "b64dec",
    "toJson",
    "mustToJson",
    "toPrettyJson",
    "toRawJson",
    "fromJson",
    "mustFromJson",
    "toYaml",
    "fromYaml",
    "sha1sum",
    "sha256sum",
    "sha512sum",
    // sprig: defaults and flow
    "default",
    "empty",
    "coalesce",
    "ternary",
    "fail",
    "required",
    // sprig: lists
    "list",
    "first",
    "last",
    "rest",
    "initial",
    "append",
    "push",
    "prepend",
    "concat",
    "reverse",
    "uniq",
    "has",
    "compact",
    "without",
    "sortAlpha",
    "until",
    "seq",
    // sprig: dicts
    "dict",
    "get",
    "set",
    "unset",
    "hasKey",
    "keys",
    "values",
    "pluck",
    "merge",
    "pick",
    "omit",
    // sprig: math and types
    "add",
    "add1",
    "sub",
    "mul",
    "div",
    "mod",
    "max",
    "min",
    "atoi",
    "int",
    "int64",
    "float64",
    "kindOf",
    "typeOf",
    "kindIs",
    // ESO
    "pkcs12key",
    "pkcs12keyPass",
    "pkcs12cert",
    "pkcs12certPass",
    "pemToPkcs12",
    "pemToPkcs12Pass",
    "fullPemToPkcs12",
    "fullPemToPkcs12Pass",
    "pemTruststoreToPKCS12",
    "pemTruststoreToPKCS12Pass",
    "filterPEM",
    "filterCertChain",
    "certSANs",
    "jwkPublicKeyPem",
    "jwkPrivateKeyPem",
    "rsaDecrypt",
];

/// Whether `name` is a defined function.
pub fn exists(name: &str) -> bool {
    NAMES.contains(&name)
}

type R = Result<Value, String>;

fn arity(args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args: want {n}, got {}",
            args.len()
        ));
    }
    Ok(())
}

fn at_least(args: &[Value], n: usize) -> Result<(), String> {
    if args.len() < n {
        return Err(format!(
            "wrong number of args: want at least {n}, got {}",
            args.len()
        ));
    }
    Ok(())
}

/// Text of a value (lossy UTF-8).
fn text(v: &Value) -> String {
    v.to_text()
}

/// Sprig's `toInt`: integers, floats, booleans and numeric strings.
fn int(v: &Value) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Float(f) => Ok(*f as i64),
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Null => Ok(0),
        Value::Str(s) => {
            let s = String::from_utf8_lossy(s);
            let t = s.trim();
            if t.is_empty() {
                return Ok(0);
            }
            t.parse::<i64>()
                .or_else(|_| t.parse::<f64>().map(|f| f as i64))
                .map_err(|_| "cannot convert the string to an integer".to_string())
        }
        other => Err(format!("cannot convert {} to an integer", other.kind())),
    }
}

fn float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Str(s) => String::from_utf8_lossy(s)
            .trim()
            .parse::<f64>()
            .map_err(|_| "cannot convert the string to a number".to_string()),
        other => int(other).map(|i| i as f64),
    }
}

fn list(v: &Value) -> Result<Vec<Value>, String> {
    match v {
        Value::List(l) => Ok(l.clone()),
        Value::Null => Ok(Vec::new()),
        other => Err(format!("expected a list, got {}", other.kind())),
    }
}

fn map(v: &Value) -> Result<BTreeMap<String, Value>, String> {
    match v {
        Value::Map(m) => Ok(m.clone()),
        Value::Null => Ok(BTreeMap::new()),
        other => Err(format!("expected a dict, got {}", other.kind())),
    }
}

fn capped(len: usize) -> Result<(), String> {
    if len > MAX_OUTPUT {
        return Err(format!("result larger than {MAX_OUTPUT} bytes"));
    }
    Ok(())
}

/// Most matches × replacement parts one `regexReplaceAll` may expand.
const MAX_REPLACE_WORK: usize = 4 * MAX_OUTPUT;

/// Appends `s` unless that makes `out` longer than the output bound.
fn push_capped(out: &mut String, s: &str) -> Result<(), String> {
    capped(out.len().saturating_add(s.len()))?;
    out.push_str(s);
    Ok(())
}

/// A part of a `regexReplaceAll` replacement.
enum Piece<'a> {
    Text(&'a str),
    /// `$1`, `${1}`.
    Index(usize),
    /// `$name`, `${name}`.
    Name(&'a str),
}

impl<'a> Piece<'a> {
    fn expand<'h>(&self, caps: &regex::Captures<'h>) -> &'a str
    where
        'h: 'a,
    {
        match self {
            Piece::Text(t) => t,
            // A missing or unmatched group expands to nothing, as in Go.
            Piece::Index(i) => caps.get(*i).map_or("", |m| m.as_str()),
            Piece::Name(n) => caps.name(n).map_or("", |m| m.as_str()),
        }
    }
}

fn group(name: &str) -> Piece<'_> {
    match name.parse::<usize>() {
        Ok(i) => Piece::Index(i),
        // All digits but too large: no such group.
        Err(_) if name.bytes().all(|c| c.is_ascii_digit()) => Piece::Text(""),
        Err(_) => Piece::Name(name),
    }
}

/// Splits a replacement by Go's `Regexp.Expand` rules: `$$` is a `$`; `$name` takes the
/// longest run of letters, digits and `_`; `${name}` is braced; any other `$` is literal.
fn expansion(repl: &str) -> Vec<Piece<'_>> {
    let name_len = |s: &str| {
        s.bytes()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
            .count()
    };
    let mut pieces = Vec::new();
    let mut rest = repl;
    while let Some(at) = rest.find('$') {
        if at > 0 {
            pieces.push(Piece::Text(&rest[..at]));
        }
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            pieces.push(Piece::Text("$"));
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            let n = name_len(inner);
            if n > 0 && inner[n..].starts_with('}') {
                pieces.push(group(&inner[..n]));
                rest = &inner[n + 1..];
            } else {
                pieces.push(Piece::Text("$"));
                rest = after;
            }
        } else {
            let n = name_len(after);
            if n > 0 {
                pieces.push(group(&after[..n]));
            } else {
                pieces.push(Piece::Text("$"));
            }
            rest = &after[n..];
        }
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    pieces
}

/// Hashes a [`Value`] consistently with its `==` (`-0.0` and `0.0` hash alike).
struct Hashed<'a>(&'a Value);

impl std::hash::Hash for Hashed<'_> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        std::mem::discriminant(self.0).hash(h);
        match self.0 {
            Value::Null => {}
            Value::Bool(b) => b.hash(h),
            Value::Int(i) => i.hash(h),
            Value::Float(f) => (if *f == 0.0 { 0.0f64 } else { *f }).to_bits().hash(h),
            Value::Str(s) => s.hash(h),
            Value::List(l) => {
                l.len().hash(h);
                for v in l {
                    Hashed(v).hash(h);
                }
            }
            Value::Map(m) => {
                m.len().hash(h);
                for (k, v) in m {
                    k.hash(h);
                    Hashed(v).hash(h);
                }
            }
        }
    }
}

fn regex(pattern: &Value) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(&text(pattern))
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("invalid regular expression: {e}"))
}

/// Deepest nesting of lists and maps a template may build (deeper values would overflow the
/// stack when printed or dropped).
const MAX_NEST: usize = 64;

fn too_deep(v: &Value, limit: usize) -> bool {
    match v {
        Value::List(l) => limit == 0 || l.iter().any(|x| too_deep(x, limit - 1)),
        Value::Map(m) => limit == 0 || m.values().any(|x| too_deep(x, limit - 1)),
        _ => false,
    }
}

/// Calls function `name` with evaluated arguments (the piped value last).
pub fn call(name: &str, a: Vec<Value>) -> R {
    let builds = matches!(
        name,
        "list" | "dict" | "append" | "push" | "prepend" | "set" | "concat" | "merge"
    );
    if builds && a.iter().any(|v| too_deep(v, MAX_NEST)) {
        return Err(format!("values nested deeper than {MAX_NEST}"));
    }
    let s = |i: usize| a.get(i).map(text).unwrap_or_default();
    let b = |i: usize| a.get(i).map(Value::to_bytes).unwrap_or_default();
    match name {
        // Go builtins.
        "and" => {
            at_least(&a, 1)?;
            Ok(a.iter()
                .find(|v| !v.truthy())
                .unwrap_or(&a[a.len() - 1])
                .clone())
        }
        "or" => {
            at_least(&a, 1)?;
            Ok(a.iter()
                .find(|v| v.truthy())
                .unwrap_or(&a[a.len() - 1])
                .clone())
        }
        "not" => {
            arity(&a, 1)?;
            Ok(Value::Bool(!a[0].truthy()))
        }
        "len" => {
            arity(&a, 1)?;
            Ok(Value::Int(match &a[0] {
                Value::Str(s) => s.len(),
                Value::List(l) => l.len(),
                Value::Map(m) => m.len(),
                other => return Err(format!("len of {}", other.kind())),
            } as i64))
        }
        "index" => {
            at_least(&a, 1)?;
            let mut v = a[0].clone();
            for k in &a[1..] {
                v = match (v, k) {
                    // A missing key gives the zero value, as Go's `index` does.
                    (Value::Map(mut m), k) => m.remove(&text(k)).unwrap_or(Value::Null),
                    (Value::List(l), k) => {
                        let i = int(k)?;
                        usize::try_from(i)
                            .ok()
                            .and_then(|i| l.get(i).cloned())
                            .ok_or_else(|| format!("index {i} out of range"))?
                    }
                    (Value::Str(s), k) => {
                        let i = int(k)?;
                        let byte = usize::try_from(i)
                            .ok()
                            .and_then(|i| s.get(i).copied())
                            .ok_or_else(|| format!("index {i} out of range"))?;
                        Value::Int(i64::from(byte))
                    }
                    (Value::Null, _) => return Err("index of untyped nil".into()),
                    (other, _) => return Err(format!("can't index item of type {}", other.kind())),
                };
            }
            Ok(v)
        }
        "slice" => {
            at_least(&a, 1)?;
            let idx: Vec<i64> = a[1..].iter().map(int).collect::<Result<_, _>>()?;
            let len = match &a[0] {
                Value::Str(s) => s.len(),
                Value::List(l) => l.len(),
                other => return Err(format!("can't slice item of type {}", other.kind())),
            };
            let from = idx.first().copied().unwrap_or(0);
            let to = idx.get(1).copied().unwrap_or(len as i64);
            if from < 0 || to < from || to as usize > len || idx.len() > 2 {
                return Err("slice index out of range".into());
            }
            let (from, to) = (from as usize, to as usize);
            Ok(match &a[0] {
                Value::Str(s) => Value::Str(s[from..to].to_vec()),
                Value::List(l) => Value::List(l[from..to].to_vec()),
                _ => Value::Null,
            })
        }
        "print" => Ok(Value::Str(go_print(&a, false))),
        "println" => Ok(Value::Str(go_print(&a, true))),
        "printf" => {
            at_least(&a, 1)?;
            Ok(Value::Str(sprintf(&a[0].to_bytes(), &a[1..])?))
        }
        "eq" => {
            at_least(&a, 2)?;
            Ok(Value::Bool(a[1..].iter().any(|v| equal(&a[0], v))))
        }
        "ne" => {
            arity(&a, 2)?;
            Ok(Value::Bool(!equal(&a[0], &a[1])))
        }
        "lt" | "le" | "gt" | "ge" => {
            arity(&a, 2)?;
            let ord = compare(&a[0], &a[1])?;
            use std::cmp::Ordering::*;
            Ok(Value::Bool(match name {
                "lt" => ord == Less,
                "le" => ord != Greater,
                "gt" => ord == Greater,
                _ => ord != Less,
            }))
        }
        "html" => Ok(Value::str(
            go_print(&a, false)
                .iter()
                .map(|&c| match c {
                    b'<' => "&lt;".into(),
                    b'>' => "&gt;".into(),
                    b'&' => "&amp;".into(),
                    b'"' => "&#34;".into(),
                    b'\'' => "&#39;".into(),
                    c => (c as char).to_string(),
                })
                .collect::<String>(),
        )),
        "js" => Ok(Value::str(
            String::from_utf8_lossy(&go_print(&a, false))
                .chars()
                .map(|c| match c {
                    '\\' | '\'' | '"' | '<' | '>' | '&' | '=' => format!("\\u{:04X}", c as u32),
                    '\n' => "\\n".into(),
                    '\r' => "\\r".into(),
                    '\t' => "\\t".into(),
                    c => c.to_string(),
                })
                .collect::<String>(),
        )),
        "urlquery" => Ok(Value::str(query_escape(&go_print(&a, false)))),

        // Strings.
        "upper" => one(&a, |v| Value::str(text(v).to_uppercase())),
        "lower" => one(&a, |v| Value::str(text(v).to_lowercase())),
        "title" => one(&a, |v| Value::str(title(&text(v), true))),
        "untitle" => one(&a, |v| Value::str(title(&text(v), false))),
        "trim" => one(&a, |v| Value::str(text(v).trim())),
        "trimAll" => {
            arity(&a, 2)?;
            let cut: Vec<char> = s(0).chars().collect();
            Ok(Value::str(s(1).trim_matches(|c| cut.contains(&c))))
        }
        "trimPrefix" => {
            arity(&a, 2)?;
            let v = b(1);
            Ok(Value::Str(
                v.strip_prefix(b(0).as_slice()).unwrap_or(&v).to_vec(),
            ))
        }
        "trimSuffix" => {
            arity(&a, 2)?;
            let v = b(1);
            Ok(Value::Str(
                v.strip_suffix(b(0).as_slice()).unwrap_or(&v).to_vec(),
            ))
        }
        "replace" => {
            arity(&a, 3)?;
            let (old, new, v) = (s(0), s(1), s(2));
            // The output's length first: an empty pattern matches between every character.
            let n = v.matches(old.as_str()).count();
            capped((v.len() - n * old.len()).saturating_add(n.saturating_mul(new.len())))?;
            Ok(Value::str(v.replace(&old, &new)))
        }
        "quote" => Ok(Value::str(
            a.iter()
                .filter(|v| **v != Value::Null)
                .map(|v| go_quote(&text(v)))
                .collect::<Vec<_>>()
                .join(" "),
        )),
        "squote" => Ok(Value::str(
            a.iter()
                .filter(|v| **v != Value::Null)
                .map(|v| format!("'{}'", text(v)))
                .collect::<Vec<_>>()
                .join(" "),
        )),
        "repeat" => {
            arity(&a, 2)?;
            let n = int(&a[0])?.max(0) as usize;
            let v = b(1);
            capped(v.len().saturating_mul(n))?;
            Ok(Value::Str(v.repeat(n)))
        }
        "substr" => {
            arity(&a, 3)?;
            let (start, end, v) = (int(&a[0])?, int(&a[1])?, b(2));
            let len = v.len() as i64;
            let start = if start < 0 { 0 } else { start.min(len) };
            let end = if end < 0 || end > len { len } else { end };
            if start > end {
                return Ok(Value::str(""));
            }
            Ok(Value::Str(v[start as usize..end as usize].to_vec()))
        }
        "trunc" => {
            arity(&a, 2)?;
            let (n, v) = (int(&a[0])?, b(1));
            let len = v.len() as i64;
            Ok(Value::Str(if n < 0 {
                v[(len + n).max(0) as usize..].to_vec()
            } else {
                v[..n.min(len) as usize].to_vec()
            }))
        }
        "nospace" => one(&a, |v| {
            Value::str(text(v).split_whitespace().collect::<String>())
        }),
        "contains" => {
            arity(&a, 2)?;
            Ok(Value::Bool(s(1).contains(&s(0))))
        }
        "hasPrefix" => {
            arity(&a, 2)?;
            Ok(Value::Bool(b(1).starts_with(&b(0))))
        }
        "hasSuffix" => {
            arity(&a, 2)?;
            Ok(Value::Bool(b(1).ends_with(&b(0))))
        }
        "cat" => Ok(Value::str(
            a.iter()
                .filter(|v| **v != Value::Null)
                .map(text)
                .collect::<Vec<_>>()
                .join(" "),
        )),
        "indent" | "nindent" => {
            arity(&a, 2)?;
            let n = int(&a[0])?.max(0) as usize;
            let v = s(1);
            capped(
                v.len()
                    .saturating_add(n.saturating_mul(v.lines().count() + 1)),
            )?;
            let pad = " ".repeat(n);
            let out = format!("{pad}{}", v.replace('\n', &format!("\n{pad}")));
            Ok(Value::str(if name == "nindent" {
                format!("\n{out}")
            } else {
                out
            }))
        }
        "join" => {
            arity(&a, 2)?;
            let items = match &a[1] {
                Value::List(l) => l.iter().map(text).collect::<Vec<_>>(),
                other => vec![text(other)],
            };
            let sep = s(0);
            let mut out = String::new();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    push_capped(&mut out, &sep)?;
                }
                push_capped(&mut out, item)?;
            }
            Ok(Value::str(out))
        }
        "split" => {
            arity(&a, 2)?;
            Ok(Value::Map(
                s(1).split(s(0).as_str())
                    .enumerate()
                    .map(|(i, p)| (format!("_{i}"), Value::str(p)))
                    .collect(),
            ))
        }
        "splitList" => {
            arity(&a, 2)?;
            Ok(Value::List(
                s(1).split(s(0).as_str()).map(Value::str).collect(),
            ))
        }
        "splitn" => {
            arity(&a, 3)?;
            let n = int(&a[1])?.max(0) as usize;
            Ok(Value::Map(
                s(2).splitn(n, s(0).as_str())
                    .enumerate()
                    .map(|(i, p)| (format!("_{i}"), Value::str(p)))
                    .collect(),
            ))
        }
        "toString" => one(&a, |v| Value::Str(v.to_bytes())),
        "toStrings" => {
            arity(&a, 1)?;
            Ok(Value::List(
                list(&a[0])?
                    .iter()
                    .map(|v| Value::Str(v.to_bytes()))
                    .collect(),
            ))
        }
        "abbrev" => {
            arity(&a, 2)?;
            let (n, v) = (int(&a[0])?.max(0) as usize, s(1));
            if n < 4 || v.chars().count() <= n {
                return Ok(Value::str(v));
            }
            Ok(Value::str(format!(
                "{}...",
                v.chars().take(n - 3).collect::<String>()
            )))
        }
        "snakecase" | "kebabcase" => {
            let sep = if name == "snakecase" { '_' } else { '-' };
            one(&a, |v| Value::str(words(&text(v)).join(&sep.to_string())))
        }
        "camelcase" => one(&a, |v| {
            Value::str(
                words(&text(v))
                    .iter()
                    .map(|w| title(w, true))
                    .collect::<String>(),
            )
        }),
        "regexMatch" => {
            arity(&a, 2)?;
            Ok(Value::Bool(regex(&a[0])?.is_match(&s(1))))
        }
        "regexFind" => {
            arity(&a, 2)?;
            Ok(Value::str(
                regex(&a[0])?.find(&s(1)).map(|m| m.as_str()).unwrap_or(""),
            ))
        }
        "regexFindAll" => {
            arity(&a, 3)?;
            let n = int(&a[2])?;
            let v = s(1);
            let all = regex(&a[0])?
                .find_iter(&v)
                .take(if n < 0 { usize::MAX } else { n as usize })
                .map(|m| Value::str(m.as_str()))
                .collect();
            Ok(Value::List(all))
        }
        "regexReplaceAll" | "regexReplaceAllLiteral" => {
            arity(&a, 3)?;
            let re = regex(&a[0])?;
            let (v, repl) = (s(1), s(2));
            let template = if name == "regexReplaceAll" {
                expansion(&repl)
            } else {
                vec![Piece::Text(&repl)]
            };
            // Built with a running bound: an empty pattern matches at every position, and
            // each `$1` repeats a whole capture.
            let mut out = String::new();
            let mut last = 0;
            // Expansions can be empty (`$1` of an empty group), so the output bound alone
            // does not bound matches × replacement parts.
            let mut work = 0usize;
            for caps in re.captures_iter(&v) {
                work = work.saturating_add(template.len() + 1);
                if work > MAX_REPLACE_WORK {
                    return Err(format!(
                        "more than {MAX_REPLACE_WORK} matches × replacement parts"
                    ));
                }
                let whole = caps.get(0).expect("group 0 is the whole match");
                push_capped(&mut out, &v[last..whole.start()])?;
                for piece in &template {
                    push_capped(&mut out, piece.expand(&caps))?;
                }
                last = whole.end();
            }
            push_capped(&mut out, &v[last..])?;
            Ok(Value::str(out))
        }
        "regexSplit" => {
            arity(&a, 3)?;
            let n = int(&a[2])?;
            let v = s(1);
            let re = regex(&a[0])?;
            let parts: Vec<Value> = if n < 0 {
                re.split(&v).map(Value::str).collect()
            } else {
                re.splitn(&v, n as usize).map(Value::str).collect()
            };
            Ok(Value::List(parts))
        }

        // Encoding and hashes.
        "b64enc" => one(&a, |v| {
            Value::str(base64::engine::general_purpose::STANDARD.encode(v.to_bytes()))
        }),
        "b64dec" => {
            arity(&a, 1)?;
            base64::engine::general_purpose::STANDARD
                .decode(b(0))
                .map(Value::Str)
                .map_err(|_| "the value is not valid base64".into())
        }
        "toJson" | "mustToJson" | "toRawJson" => {
            arity(&a, 1)?;
            Ok(Value::str(
                serde_json::to_string(&to_json(&a[0])).map_err(|e| e.to_string())?,
            ))
        }
        "toPrettyJson" => {
            arity(&a, 1)?;
            Ok(Value::str(
                serde_json::to_string_pretty(&to_json(&a[0])).map_err(|e| e.to_string())?,
            ))
        }
        "fromJson" | "mustFromJson" => {
            arity(&a, 1)?;
            let parsed: serde_json::Value = serde_json::from_slice(&b(0))
                .map_err(|e| format!("invalid JSON at line {} column {}", e.line(), e.column()))?;
            Ok(from_json(parsed))
        }
        "toYaml" => {
            arity(&a, 1)?;
            let out = serde_yaml::to_string(&to_json(&a[0])).map_err(|e| e.to_string())?;
            Ok(Value::str(out.strip_suffix('\n').unwrap_or(&out)))
        }
        "fromYaml" => {
            arity(&a, 1)?;
            let parsed: serde_json::Value =
                serde_yaml::from_slice(&b(0)).map_err(|e| match e.location() {
                    Some(l) => format!("invalid YAML at line {} column {}", l.line(), l.column()),
                    None => "invalid YAML".to_string(),
                })?;
            Ok(from_json(parsed))
        }
        "sha1sum" => one(&a, |v| {
            Value::str(hex::encode(sha1::Sha1::digest(v.to_bytes())))
        }),
        "sha256sum" => one(&a, |v| {
            Value::str(hex::encode(sha2::Sha256::digest(v.to_bytes())))
        }),
        "sha512sum" => one(&a, |v| {
            Value::str(hex::encode(sha2::Sha512::digest(v.to_bytes())))
        }),

        // Defaults and flow.
        "default" => {
            at_least(&a, 1)?;
            Ok(match a.get(1) {
                Some(v) if v.truthy() => v.clone(),
                _ => a[0].clone(),
            })
        }
        "empty" => one(&a, |v| Value::Bool(!v.truthy())),
        "coalesce" => Ok(a
            .iter()
            .find(|v| v.truthy())
            .cloned()
            .unwrap_or(Value::Null)),
        "ternary" => {
            arity(&a, 3)?;
            Ok(if a[2].truthy() {
                a[0].clone()
            } else {
                a[1].clone()
            })
        }
        "fail" => {
            arity(&a, 1)?;
            Err(s(0))
        }
        "required" => {
            arity(&a, 2)?;
            if a[1].truthy() {
                Ok(a[1].clone())
            } else {
                Err(s(0))
            }
        }

        // Lists.
        "list" => Ok(Value::List(a)),
        "first" | "last" | "rest" | "initial" => {
            arity(&a, 1)?;
            let l = list(&a[0])?;
            Ok(match name {
                "first" => l.first().cloned().unwrap_or(Value::Null),
                "last" => l.last().cloned().unwrap_or(Value::Null),
                "rest" => Value::List(l.get(1..).unwrap_or_default().to_vec()),
                _ => Value::List(l[..l.len().saturating_sub(1)].to_vec()),
            })
        }
        "append" | "push" => {
            arity(&a, 2)?;
            let mut l = list(&a[0])?;
            l.push(a[1].clone());
            Ok(Value::List(l))
        }
        "prepend" => {
            arity(&a, 2)?;
            let mut l = list(&a[0])?;
            l.insert(0, a[1].clone());
            Ok(Value::List(l))
        }
        "concat" => {
            let mut out = Vec::new();
            for v in &a {
                out.extend(list(v)?);
            }
            Ok(Value::List(out))
        }
        "reverse" => {
            arity(&a, 1)?;
            let mut l = list(&a[0])?;
            l.reverse();
            Ok(Value::List(l))
        }
        "uniq" => {
            arity(&a, 1)?;
            // Linear: values are bucketed by hash, and compared only within a bucket.
            let mut out: Vec<Value> = Vec::new();
            let mut seen: std::collections::HashMap<u64, Vec<usize>> = Default::default();
            let state = std::hash::RandomState::new();
            for v in list(&a[0])? {
                let bucket = seen
                    .entry(std::hash::BuildHasher::hash_one(&state, Hashed(&v)))
                    .or_default();
                if !bucket.iter().any(|&i| out[i] == v) {
                    bucket.push(out.len());
                    out.push(v);
                }
            }
            Ok(Value::List(out))
        }
        "has" => {
            arity(&a, 2)?;
            Ok(Value::Bool(list(&a[1])?.iter().any(|v| equal(v, &a[0]))))
        }
        "compact" => {
            arity(&a, 1)?;
            Ok(Value::List(
                list(&a[0])?.into_iter().filter(Value::truthy).collect(),
            ))
        }
        "without" => {
            at_least(&a, 1)?;
            Ok(Value::List(
                list(&a[0])?
                    .into_iter()
                    .filter(|v| !a[1..].iter().any(|w| equal(v, w)))
                    .collect(),
            ))
        }
        "sortAlpha" => {
            arity(&a, 1)?;
            let mut l: Vec<String> = list(&a[0])?.iter().map(text).collect();
            l.sort();
            Ok(Value::List(l.into_iter().map(Value::str).collect()))
        }
        "until" => {
            arity(&a, 1)?;
            let n = int(&a[0])?;
            range_list(0, n, if n < 0 { -1 } else { 1 })
        }
        "seq" => {
            let n: Vec<i64> = a.iter().map(int).collect::<Result<_, _>>()?;
            let (start, end, step) = match n.as_slice() {
                [end] => (1, *end, 1),
                [start, end] => (*start, *end, if end >= start { 1 } else { -1 }),
                [start, step, end] => (*start, *end, *step),
                _ => return Err("wrong number of args".into()),
            };
            if step == 0 {
                return Ok(Value::List(Vec::new()));
            }
            let end = end.saturating_add(step.signum());
            let Value::List(items) = range_list(start, end, step)? else {
                return Ok(Value::Null);
            };
            Ok(Value::str(
                items
                    .iter()
                    .map(Value::to_text)
                    .collect::<Vec<_>>()
                    .join(" "),
            ))
        }

        // Dicts.
        "dict" => {
            let mut m = BTreeMap::new();
            for pair in a.chunks(2) {
                m.insert(
                    text(&pair[0]),
                    pair.get(1).cloned().unwrap_or(Value::str("")),
                );
            }
            Ok(Value::Map(m))
        }
        "get" => {
            arity(&a, 2)?;
            Ok(map(&a[0])?.remove(&s(1)).unwrap_or(Value::str("")))
        }
        "set" => {
            arity(&a, 3)?;
            let mut m = map(&a[0])?;
            m.insert(s(1), a[2].clone());
            Ok(Value::Map(m))
        }
        "unset" => {
            arity(&a, 2)?;
            let mut m = map(&a[0])?;
            m.remove(&s(1));
            Ok(Value::Map(m))
        }
        "hasKey" => {
            arity(&a, 2)?;
            Ok(Value::Bool(map(&a[0])?.contains_key(&s(1))))
        }
        "keys" => {
            let mut out = Vec::new();
            for v in &a {
                out.extend(map(v)?.into_keys().map(Value::str));
            }
            Ok(Value::List(out))
        }
        "values" => {
            arity(&a, 1)?;
            Ok(Value::List(map(&a[0])?.into_values().collect()))
        }
        "pluck" => {
            at_least(&a, 1)?;
            let key = s(0);
            let mut out = Vec::new();
            for v in &a[1..] {
                if let Some(v) = map(v)?.remove(&key) {
                    out.push(v);
                }
            }
            Ok(Value::List(out))
        }
        "merge" => {
            at_least(&a, 1)?;
            let mut out = map(&a[0])?;
            for v in &a[1..] {
                for (k, v) in map(v)? {
                    out.entry(k).or_insert(v);
                }
            }
            Ok(Value::Map(out))
        }
        "pick" | "omit" => {
            at_least(&a, 1)?;
            let names: Vec<String> = a[1..].iter().map(text).collect();
            let keep = name == "pick";
            Ok(Value::Map(
                map(&a[0])?
                    .into_iter()
                    .filter(|(k, _)| names.contains(k) == keep)
                    .collect(),
            ))
        }

        // Math and types.
        "add" | "mul" => {
            let mut acc: i64 = if name == "add" { 0 } else { 1 };
            for v in &a {
                let n = int(v)?;
                acc = if name == "add" {
                    acc.wrapping_add(n)
                } else {
                    acc.wrapping_mul(n)
                };
            }
            Ok(Value::Int(acc))
        }
        "add1" => {
            arity(&a, 1)?;
            Ok(Value::Int(int(&a[0])?.wrapping_add(1)))
        }
        "sub" | "div" | "mod" => {
            arity(&a, 2)?;
            let (x, y) = (int(&a[0])?, int(&a[1])?);
            Ok(Value::Int(match name {
                "sub" => x.wrapping_sub(y),
                _ if y == 0 => return Err("integer divide by zero".into()),
                "div" => x.wrapping_div(y),
                _ => x.wrapping_rem(y),
            }))
        }
        "max" | "min" => {
            at_least(&a, 1)?;
            let n: Vec<i64> = a.iter().map(int).collect::<Result<_, _>>()?;
            let it = n.into_iter();
            Ok(Value::Int(if name == "max" {
                it.max().unwrap_or(0)
            } else {
                it.min().unwrap_or(0)
            }))
        }
        "atoi" => {
            arity(&a, 1)?;
            Ok(Value::Int(s(0).trim().parse::<i64>().unwrap_or(0)))
        }
        "int" | "int64" => {
            arity(&a, 1)?;
            Ok(Value::Int(int(&a[0])?))
        }
        "float64" => {
            arity(&a, 1)?;
            Ok(Value::Float(float(&a[0])?))
        }
        "kindOf" | "typeOf" => {
            arity(&a, 1)?;
            Ok(Value::str(match (name, &a[0]) {
                ("typeOf", Value::Map(_)) => "map[string]interface {}",
                ("typeOf", Value::List(_)) => "[]interface {}",
                ("typeOf", Value::Null) => "<nil>",
                ("kindOf", Value::Null) => "invalid",
                (_, v) => v.kind(),
            }))
        }
        "kindIs" => {
            arity(&a, 2)?;
            Ok(Value::Bool(s(0) == a[1].kind()))
        }

        // ESO.
        _ => crypto::call(name, &a),
    }
}

fn one(a: &[Value], f: impl FnOnce(&Value) -> Value) -> R {
    arity(a, 1)?;
    Ok(f(&a[0]))
}

fn range_list(start: i64, end: i64, step: i64) -> R {
    let (s, e, st) = (i128::from(start), i128::from(end), i128::from(step));
    let count = if step == 0 {
        0
    } else {
        ((e - s) / st).max(0) + 1
    };
    if count > 100_000 {
        return Err("sequence longer than 100000".into());
    }
    let mut out = Vec::new();
    let mut i = start;
    while (step > 0 && i < end) || (step < 0 && i > end) {
        out.push(Value::Int(i));
        match i.checked_add(step) {
            Some(next) => i = next,
            None => break,
        }
    }
    Ok(Value::List(out))
}

fn words(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in s.chars() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn title(s: &str, upper: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start && c.is_alphabetic() {
            if upper {
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
        } else {
            out.push(c);
        }
        start = c.is_whitespace();
    }
    out
}

/// Go's `strconv.Quote` for printable text.
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn query_escape(b: &[u8]) -> String {
    b.iter()
        .map(|&c| match c {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (c as char).to_string()
            }
            b' ' => "+".into(),
            c => format!("%{c:02X}"),
        })
        .collect()
}

/// Go's `fmt.Sprint` / `Sprintln`: spaces between operands when neither is a string
/// (Sprint) or always (Sprintln).
fn go_print(a: &[Value], line: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, v) in a.iter().enumerate() {
        let is_str = |v: &Value| matches!(v, Value::Str(_));
        if i > 0 && (line || (!is_str(v) && !is_str(&a[i - 1]))) {
            out.push(b' ');
        }
        out.extend(v.to_bytes());
    }
    if line {
        out.push(b'\n');
    }
    out
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%s %v %d %q %x %X %f %t %%` with flags,
/// width and precision.
fn sprintf(format: &[u8], args: &[Value]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut next = 0;
    let mut i = 0;
    while i < format.len() {
        let c = format[i];
        if c != b'%' {
            out.push(c);
            i += 1;
            continue;
        }
        i += 1;
        let mut minus = false;
        let mut zero = false;
        let mut plus = false;
        while i < format.len() && b"-0+ #".contains(&format[i]) {
            match format[i] {
                b'-' => minus = true,
                b'0' => zero = true,
                b'+' => plus = true,
                _ => {}
            }
            i += 1;
        }
        let mut width = 0usize;
        while i < format.len() && format[i].is_ascii_digit() {
            width = (width * 10 + usize::from(format[i] - b'0')).min(4096);
            i += 1;
        }
        let mut precision: Option<usize> = None;
        if i < format.len() && format[i] == b'.' {
            i += 1;
            let mut p = 0usize;
            while i < format.len() && format[i].is_ascii_digit() {
                p = (p * 10 + usize::from(format[i] - b'0')).min(4096);
                i += 1;
            }
            precision = Some(p);
        }
        let Some(&verb) = format.get(i) else {
            out.extend_from_slice(b"%!(NOVERB)");
            break;
        };
        i += 1;
        if verb == b'%' {
            out.push(b'%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            out.extend_from_slice(format!("%!{}(MISSING)", verb as char).as_bytes());
            continue;
        };
        next += 1;
        let mut body: Vec<u8> = match verb {
            b's' | b'v' => {
                let mut v = arg.to_bytes();
                if let (Some(p), Value::Str(_)) = (precision, arg) {
                    v = String::from_utf8_lossy(&v)
                        .chars()
                        .take(p)
                        .collect::<String>()
                        .into();
                }
                v
            }
            b'd' => {
                let n = int(arg)?;
                if plus && n >= 0 {
                    format!("+{n}").into()
                } else {
                    n.to_string().into()
                }
            }
            b'q' => go_quote(&arg.to_text()).into(),
            b'x' | b'X' => {
                let h = match arg {
                    Value::Int(n) => format!("{n:x}"),
                    other => hex::encode(other.to_bytes()),
                };
                if verb == b'X' { h.to_uppercase() } else { h }.into()
            }
            b'f' | b'F' => format!("{:.*}", precision.unwrap_or(6), float(arg)?).into(),
            b'e' => format!("{:.*e}", precision.unwrap_or(6), float(arg)?).into(),
            b'g' => format_float(float(arg)?).into(),
            b't' => match arg {
                Value::Bool(b) => b.to_string().into(),
                other => format!("%!t({})", other.kind()).into(),
            },
            b'c' => char::from_u32(int(arg)? as u32)
                .unwrap_or('\u{fffd}')
                .to_string()
                .into(),
            other => format!("%!{}({})", other as char, arg.kind()).into(),
        };
        if body.len() < width {
            let pad = width - body.len();
            if minus {
                body.extend(std::iter::repeat_n(b' ', pad));
            } else {
                let fill = if zero && matches!(verb, b'd' | b'f' | b'x' | b'X') {
                    b'0'
                } else {
                    b' '
                };
                let mut padded: Vec<u8> = std::iter::repeat_n(fill, pad).collect();
                padded.extend(body);
                body = padded;
            }
        }
        out.extend(body);
        if out.len() > MAX_OUTPUT {
            return Err(format!("result larger than {MAX_OUTPUT} bytes"));
        }
    }
    if next < args.len() {
        out.extend_from_slice(b"%!(EXTRA ");
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|v| format!("{}={}", type_name(v), v.to_text()))
            .collect();
        out.extend_from_slice(extra.join(", ").as_bytes());
        out.push(b')');
    }
    Ok(out)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Map(_) => "map[string]interface {}",
        Value::List(_) => "[]interface {}",
        v => v.kind(),
    }
}

/// Go's `eq`: numbers compare by value, everything else structurally.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(x), Value::Float(y)) | (Value::Float(y), Value::Int(x)) => (*x as f64) == *y,
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x.cmp(y)),
        (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => float(a)?
            .partial_cmp(&float(b)?)
            .ok_or_else(|| "cannot compare NaN".to_string()),
        _ => Err(format!(
            "incompatible types for comparison: {} and {}",
            a.kind(),
            b.kind()
        )),
    }
}

/// Converts a value to JSON (bytes that are not UTF-8 are replaced).
pub fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::Str(s) => String::from_utf8_lossy(s).into_owned().into(),
        Value::List(l) => l.iter().map(to_json).collect(),
        Value::Map(m) => m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect(),
    }
}

/// Converts JSON to a value.
pub fn from_json(v: serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => Value::str(s),
        serde_json::Value::Array(a) => Value::List(a.into_iter().map(from_json).collect()),
        serde_json::Value::Object(o) => {
            Value::Map(o.into_iter().map(|(k, v)| (k, from_json(v))).collect())
        }
    }
}
