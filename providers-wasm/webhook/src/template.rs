//! The subset of Go's `text/template` that ESO's webhook stores use in `url`, `headers`,
//! `body` and `result.jsonPath`: text, `{{ … }}` actions with `{{-`/`-}}` trimming, pipelines
//! of field paths (`.remoteRef.key`, `.auth.token`), string literals and a handful of
//! functions (`print`, `b64enc`, `b64dec`, `urlquery`, `upper`, `lower`, `trim`, `quote`).
//! The host's full Go-template engine (`host/src/template`) lives in the operator, not in
//! guests, and this subset is small enough to write again in every language a provider is
//! written in (`docs/providers/webhook.md`).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Template data: `.<group>.<field>` → text.
pub type Data = BTreeMap<String, BTreeMap<String, String>>;

/// A compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Text(String),
    Action(Vec<Command>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Command {
    function: Option<Function>,
    args: Vec<Operand>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Operand {
    Field(String, String),
    Text(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    Print,
    B64Enc,
    B64Dec,
    UrlQuery,
    Upper,
    Lower,
    Trim,
    Quote,
}

impl Function {
    fn named(name: &str) -> Option<Self> {
        Some(match name {
            "print" => Function::Print,
            "b64enc" => Function::B64Enc,
            "b64dec" => Function::B64Dec,
            "urlquery" => Function::UrlQuery,
            "upper" => Function::Upper,
            "lower" => Function::Lower,
            "trim" => Function::Trim,
            "quote" => Function::Quote,
            _ => return None,
        })
    }

    fn apply(self, args: Vec<String>) -> Result<String, String> {
        if self != Function::Print && args.len() != 1 {
            return Err(format!("{self:?} takes one argument, got {}", args.len()).to_lowercase());
        }
        let one = || args[0].clone();
        Ok(match self {
            Function::Print => args.concat(),
            Function::B64Enc => STANDARD.encode(one()),
            Function::B64Dec => {
                let bytes = STANDARD
                    .decode(one())
                    .map_err(|_| "b64dec: not base64".to_string())?;
                String::from_utf8(bytes).map_err(|_| "b64dec: not UTF-8 text".to_string())?
            }
            Function::UrlQuery => query_escape(&one()),
            Function::Upper => one().to_uppercase(),
            Function::Lower => one().to_lowercase(),
            Function::Trim => one().trim().to_string(),
            Function::Quote => format!("{:?}", one()),
        })
    }
}

/// Go's `url.QueryEscape`: space as `+`, unreserved bytes kept, the rest `%XX`.
pub fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Template {
    /// Compiles `source`; the error says what is not in the subset.
    pub fn parse(source: &str) -> Result<Self, String> {
        let mut nodes = Vec::new();
        let mut rest = source;
        let mut trim_next = false;
        while let Some(start) = rest.find("{{") {
            let mut text = &rest[..start];
            if trim_next {
                text = text.trim_start();
            }
            let mut body = &rest[start + 2..];
            if let Some(after) = body.strip_prefix('-')
                && after.starts_with(char::is_whitespace)
            {
                text = text.trim_end();
                body = after;
            }
            if !text.is_empty() {
                nodes.push(Node::Text(text.to_string()));
            }
            let (commands, used, trim) = parse_action(body)?;
            nodes.push(Node::Action(commands));
            trim_next = trim;
            rest = &body[used..];
        }
        let text = if trim_next { rest.trim_start() } else { rest };
        if !text.is_empty() {
            nodes.push(Node::Text(text.to_string()));
        }
        Ok(Template { nodes })
    }

    /// Every `.<group>.<field>` the template reads.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.nodes
            .iter()
            .filter_map(|n| match n {
                Node::Action(commands) => Some(commands),
                Node::Text(_) => None,
            })
            .flatten()
            .flat_map(|c| c.args.iter())
            .filter_map(|a| match a {
                Operand::Field(group, field) => Some((group.as_str(), field.as_str())),
                Operand::Text(_) => None,
            })
    }

    /// Renders with `data`.
    pub fn render(&self, data: &Data) -> Result<String, String> {
        let mut out = String::new();
        for node in &self.nodes {
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Action(commands) => {
                    let mut piped: Option<String> = None;
                    for command in commands {
                        let mut args = command
                            .args
                            .iter()
                            .map(|a| operand(a, data))
                            .collect::<Result<Vec<_>, _>>()?;
                        args.extend(piped.take());
                        piped = Some(match command.function {
                            Some(f) => f.apply(args)?,
                            None if args.len() == 1 => args.remove(0),
                            None => {
                                return Err(
                                    "a pipeline stage after a value must be a function".into()
                                );
                            }
                        });
                    }
                    out.push_str(&piped.unwrap_or_default());
                }
            }
        }
        Ok(out)
    }
}

fn operand(operand: &Operand, data: &Data) -> Result<String, String> {
    match operand {
        Operand::Text(t) => Ok(t.clone()),
        Operand::Field(group, field) => data
            .get(group)
            .and_then(|g| g.get(field))
            .cloned()
            .ok_or_else(|| format!("no field .{group}.{field}")),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Pipe,
    Text(String),
    Field(Vec<String>),
    Ident(String),
}

/// Parses one action after `{{`; returns its pipeline, the bytes used through `}}` and
/// whether it ended with `-}}`.
fn parse_action(body: &str) -> Result<(Vec<Command>, usize, bool), String> {
    let bytes = body.as_bytes();
    let mut i = 0;
    let mut tokens = Vec::new();
    let (used, trim) = loop {
        let Some(&c) = bytes.get(i) else {
            return Err("unclosed action: no }}".into());
        };
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'}' if body[i..].starts_with("}}") => break (i + 2, false),
            b'-' if body[i..].starts_with("-}}") => break (i + 3, true),
            b'|' => {
                tokens.push(Token::Pipe);
                i += 1;
            }
            b'"' => {
                let mut text = String::new();
                let mut chars = body[i + 1..].char_indices();
                loop {
                    match chars.next() {
                        None => return Err("unterminated string literal".into()),
                        Some((j, '"')) => {
                            i += j + 2;
                            break;
                        }
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => text.push('\n'),
                            Some((_, 't')) => text.push('\t'),
                            Some((_, c @ ('"' | '\\'))) => text.push(c),
                            _ => return Err("unknown escape in string literal".into()),
                        },
                        Some((_, c)) => text.push(c),
                    }
                }
                tokens.push(Token::Text(text));
            }
            b'.' => {
                let end = body[i..]
                    .find(|c: char| !(c.is_alphanumeric() || c == '.' || c == '_'))
                    .map_or(body.len(), |n| i + n);
                let path = body[i + 1..end].split('.').map(str::to_string).collect();
                tokens.push(Token::Field(path));
                i = end;
            }
            c if c.is_ascii_alphabetic() => {
                let end = body[i..]
                    .find(|c: char| !c.is_ascii_alphanumeric())
                    .map_or(body.len(), |n| i + n);
                tokens.push(Token::Ident(body[i..end].to_string()));
                i = end;
            }
            _ => {
                return Err(format!(
                    "unsupported character {:?} in action",
                    body[i..].chars().next().unwrap_or(' ')
                ));
            }
        }
    };
    let mut commands = Vec::new();
    for stage in tokens.split(|t| *t == Token::Pipe) {
        let mut stage = stage.iter();
        let mut command = Command {
            function: None,
            args: Vec::new(),
        };
        let mut first = true;
        for token in stage.by_ref() {
            match token {
                Token::Ident(name) if first => {
                    command.function = Some(
                        Function::named(name)
                            .ok_or_else(|| format!("unsupported function or keyword {name:?}"))?,
                    );
                }
                Token::Ident(name) => return Err(format!("unexpected {name:?} as an argument")),
                Token::Text(t) => command.args.push(Operand::Text(t.clone())),
                Token::Field(path) => match path.as_slice() {
                    [group, field] if !group.is_empty() && !field.is_empty() => command
                        .args
                        .push(Operand::Field(group.clone(), field.clone())),
                    _ => {
                        return Err(format!(
                            "field .{} must have two parts, like .remoteRef.key",
                            path.join(".")
                        ));
                    }
                },
                Token::Pipe => unreachable!("split on pipes"),
            }
            first = false;
        }
        if command.function.is_none() && command.args.is_empty() {
            return Err("empty pipeline stage".into());
        }
        commands.push(command);
    }
    if commands.is_empty() {
        return Err("empty action".into());
    }
    Ok((commands, used, trim))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Data {
        let mut d = Data::new();
        d.entry("remoteRef".into())
            .or_default()
            .insert("key".into(), "db/password".into());
        let auth = d.entry("auth".into()).or_default();
        auth.insert("username".into(), "test".into());
        auth.insert("password".into(), "p w".into());
        d
    }

    fn render(source: &str) -> Result<String, String> {
        Template::parse(source)?.render(&data())
    }

    #[test]
    fn fields_text_and_pipelines_render_like_go() {
        assert_eq!(
            render("http://x/{{ .remoteRef.key }}?a=1").unwrap(),
            "http://x/db/password?a=1"
        );
        assert_eq!(
            render(r#"Basic {{ print .auth.username ":" .auth.password | b64enc }}"#).unwrap(),
            "Basic dGVzdDpwIHc="
        );
        assert_eq!(render("{{ .auth.password | urlquery }}").unwrap(), "p+w");
        assert_eq!(
            render("{{ .auth.username | upper | quote }}").unwrap(),
            "\"TEST\""
        );
        assert_eq!(render("a  {{- .auth.username -}}  b").unwrap(), "atestb");
        assert_eq!(render(r#"{{ "}}" }}"#).unwrap(), "}}");
    }

    #[test]
    fn what_is_outside_the_subset_is_refused_by_name() {
        assert!(
            render("{{ if .a.b }}x{{ end }}")
                .unwrap_err()
                .contains("\"if\"")
        );
        assert!(render("{{ .a }}").unwrap_err().contains("two parts"));
        assert!(
            render("{{ .remoteRef.key")
                .unwrap_err()
                .contains("unclosed")
        );
        assert_eq!(
            render("{{ .auth.token }}").unwrap_err(),
            "no field .auth.token"
        );
    }

    #[test]
    fn fields_lists_every_reference() {
        let t = Template::parse(r#"{{ print .auth.username ":" .auth.password }}"#).unwrap();
        assert_eq!(
            t.fields().collect::<Vec<_>>(),
            [("auth", "username"), ("auth", "password")]
        );
    }

    #[test]
    fn query_escape_is_gos() {
        assert_eq!(query_escape("a b/c?d=é~"), "a+b%2Fc%3Fd%3D%C3%A9~");
    }
}
