//! Lexer and parser for the Go `text/template` dialect ESO users write.
//!
//! The grammar is Go's: text and `{{ actions }}`, `{{-`/`-}}` trimming, `{{/* comments */}}`,
//! pipelines (`.a | f x`), variables (`$x := …`, `$`), parenthesised pipelines, and the
//! `if`/`else if`/`else`/`range`/`with`/`break`/`continue`/`end` control actions. `define`,
//! `template` and `block` are refused: ESO templates are single, anonymous templates.
//! Every node carries the line and column of its action so errors point at the source.

use super::functions;

/// Nesting limit for control actions and parentheses; keeps hostile input from exhausting the
/// stack during parsing or evaluation.
const MAX_DEPTH: usize = 64;

/// A position in the template source: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

/// A parse failure with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Where.
    pub pos: Pos,
    /// What (never contains template data values; may quote template source).
    pub message: String,
}

/// A parsed node.
#[derive(Debug, Clone)]
pub enum Node {
    /// Literal text.
    Text(Vec<u8>),
    /// `{{ pipeline }}`: prints the value unless the pipeline declares variables.
    Action(Pipe),
    /// `{{ if }}` with its `else if` chain.
    If {
        /// `(condition, body)` in order.
        branches: Vec<(Pipe, Vec<Node>)>,
        /// The final `else` body.
        otherwise: Option<Vec<Node>>,
    },
    /// `{{ range }}`.
    Range {
        /// The ranged pipeline (may declare `$i, $v`).
        pipe: Pipe,
        /// The loop body.
        body: Vec<Node>,
        /// Runs when there is nothing to iterate.
        otherwise: Option<Vec<Node>>,
    },
    /// `{{ with }}` with its `else with` chain.
    With {
        /// `(value, body)` in order.
        branches: Vec<(Pipe, Vec<Node>)>,
        /// The final `else` body.
        otherwise: Option<Vec<Node>>,
    },
    /// `{{ break }}`.
    Break(Pos),
    /// `{{ continue }}`.
    Continue(Pos),
}

/// A pipeline: optional variable declaration and commands joined by `|`.
#[derive(Debug, Clone)]
pub struct Pipe {
    /// Where the pipeline starts.
    pub pos: Pos,
    /// Declared (`:=`) or assigned (`=`) variables, without `$`.
    pub vars: Vec<String>,
    /// Whether `vars` are assigned (`=`) rather than declared.
    pub assign: bool,
    /// The commands.
    pub cmds: Vec<Cmd>,
}

/// One command of a pipeline: a function call or a single operand.
#[derive(Debug, Clone)]
pub struct Cmd {
    /// Where the command starts.
    pub pos: Pos,
    /// Function name or operand first, then arguments.
    pub args: Vec<Arg>,
}

/// An operand.
#[derive(Debug, Clone)]
pub enum Arg {
    /// `.` or `.a.b`: fields from dot.
    Field(Vec<String>),
    /// `$` or `$x.a`: a variable and fields.
    Var(String, Vec<String>),
    /// A function name.
    Func(String),
    /// A string or character literal.
    Str(Vec<u8>),
    /// An integer literal.
    Int(i64),
    /// A float literal.
    Float(f64),
    /// `true` / `false`.
    Bool(bool),
    /// `nil`.
    Nil,
    /// `( pipeline )` with optional fields after it.
    Sub(Box<Pipe>, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Field(String),
    Dot,
    Var(String),
    Str(Vec<u8>),
    Number(String),
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: Pos,
    /// Whether whitespace precedes the token (fields chain only when adjacent).
    spaced: bool,
}

/// One `{{ … }}` after lexing.
#[derive(Debug)]
struct Action {
    pos: Pos,
    tokens: Vec<Token>,
}

#[derive(Debug)]
enum Item {
    Text(Vec<u8>),
    Action(Action),
}

struct Lexer<'a> {
    src: &'a str,
    i: usize,
    line: usize,
    col: usize,
}

impl<'a> Lexer<'a> {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn rest(&self) -> &'a str {
        &self.src[self.i..]
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.rest().chars().next()?;
        self.i += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn advance(&mut self, bytes: usize) {
        let end = self.i + bytes;
        while self.i < end {
            self.bump();
        }
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn err<T>(&self, pos: Pos, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            pos,
            message: message.into(),
        })
    }

    fn items(mut self) -> Result<Vec<Item>, ParseError> {
        let mut items = Vec::new();
        let mut trim_next = false;
        loop {
            let text_end = self.rest().find("{{").map(|n| self.i + n);
            let end = text_end.unwrap_or(self.src.len());
            let mut text = &self.src[self.i..end];
            if trim_next {
                text = text.trim_start_matches(is_space);
            }
            // Whether the next action trims the text before it.
            let trims_left = text_end.is_some_and(|e| {
                let after = &self.src[e + 2..];
                after.starts_with('-') && after[1..].starts_with(is_space)
            });
            if trims_left {
                text = text.trim_end_matches(is_space);
            }
            if !text.is_empty() {
                items.push(Item::Text(text.as_bytes().to_vec()));
            }
            self.advance(end - self.i);
            if text_end.is_none() {
                return Ok(items);
            }
            let pos = self.pos();
            self.advance(2);
            if trims_left {
                self.advance(2);
            }
            let (action, trim_right) = self.action(pos)?;
            trim_next = trim_right;
            if let Some(a) = action {
                items.push(Item::Action(a));
            }
        }
    }

    /// Lexes the inside of one action up to and including its closing delimiter. Returns
    /// `None` for a comment.
    fn action(&mut self, pos: Pos) -> Result<(Option<Action>, bool), ParseError> {
        let mut tokens = Vec::new();
        // Comments: `{{/* … */}}` (with optional trim markers, whitespace before `/*` only
        // after a trim marker).
        let spaces = self.rest().len() - self.rest().trim_start_matches(is_space).len();
        if self.rest()[spaces..].starts_with("/*") {
            self.advance(spaces + 2);
            let Some(close) = self.rest().find("*/") else {
                return self.err(pos, "unclosed comment");
            };
            self.advance(close + 2);
            let spaces = self.rest().len() - self.rest().trim_start_matches(is_space).len();
            let after = &self.rest()[spaces..];
            if spaces > 0 && after.starts_with("-}}") {
                self.advance(spaces + 3);
                return Ok((None, true));
            }
            if after.starts_with("}}") && spaces == 0 {
                self.advance(2);
                return Ok((None, false));
            }
            return self.err(pos, "comment ends before closing delimiter");
        }
        let mut spaced = true;
        loop {
            let here = self.pos();
            let Some(c) = self.peek() else {
                return self.err(pos, "unclosed action");
            };
            if is_space(c) {
                // ` -}}` closes with trimming.
                let trimmed = self.rest().trim_start_matches(is_space);
                if trimmed.starts_with("-}}") {
                    let n = self.rest().len() - trimmed.len();
                    self.advance(n + 3);
                    return Ok((Some(Action { pos, tokens }), true));
                }
                self.bump();
                spaced = true;
                continue;
            }
            if self.rest().starts_with("}}") {
                self.advance(2);
                return Ok((Some(Action { pos, tokens }), false));
            }
            let tok = match c {
                '|' => {
                    self.bump();
                    Tok::Pipe
                }
                '(' => {
                    self.bump();
                    Tok::LParen
                }
                ')' => {
                    self.bump();
                    Tok::RParen
                }
                ',' => {
                    self.bump();
                    Tok::Comma
                }
                '=' => {
                    self.bump();
                    Tok::Assign
                }
                ':' => {
                    self.bump();
                    if self.peek() != Some('=') {
                        return self.err(here, "expected :=");
                    }
                    self.bump();
                    Tok::Declare
                }
                '"' => Tok::Str(self.quoted(here)?),
                '`' => {
                    self.bump();
                    let Some(close) = self.rest().find('`') else {
                        return self.err(here, "unterminated raw string");
                    };
                    let s = self.rest().as_bytes()[..close].to_vec();
                    self.advance(close + 1);
                    Tok::Str(s)
                }
                '\'' => Tok::Number(self.char_literal(here)?),
                '.' => {
                    self.bump();
                    match self.peek() {
                        Some(c) if is_ident_start(c) => Tok::Field(self.ident()),
                        Some(c) if c.is_ascii_digit() => {
                            let n = self.number();
                            Tok::Number(format!(".{n}"))
                        }
                        _ => Tok::Dot,
                    }
                }
                '$' => {
                    self.bump();
                    let name = match self.peek() {
                        Some(c) if is_ident_start(c) || c.is_ascii_digit() => self.ident(),
                        _ => String::new(),
                    };
                    Tok::Var(name)
                }
                c if c.is_ascii_digit() || c == '-' || c == '+' => {
                    let sign = if c == '-' || c == '+' {
                        self.bump();
                        c.to_string()
                    } else {
                        String::new()
                    };
                    if !self.peek().is_some_and(|c| c.is_ascii_digit() || c == '.') {
                        return self.err(here, format!("unexpected {c:?} in action"));
                    }
                    Tok::Number(format!("{sign}{}", self.number()))
                }
                c if is_ident_start(c) => Tok::Ident(self.ident()),
                other => return self.err(here, format!("unexpected {other:?} in action")),
            };
            tokens.push(Token {
                tok,
                pos: here,
                spaced,
            });
            spaced = false;
        }
    }

    fn ident(&mut self) -> String {
        let n = self
            .rest()
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(self.rest().len());
        let s = self.rest()[..n].to_string();
        self.advance(n);
        s
    }

    fn number(&mut self) -> String {
        let mut s = String::new();
        let mut prev = ' ';
        while let Some(c) = self.peek() {
            let exp_sign = (c == '-' || c == '+') && matches!(prev, 'e' | 'E' | 'p' | 'P');
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || exp_sign {
                s.push(c);
                prev = c;
                self.bump();
            } else {
                break;
            }
        }
        s
    }

    fn quoted(&mut self, pos: Pos) -> Result<Vec<u8>, ParseError> {
        self.bump();
        let mut out = Vec::new();
        loop {
            let Some(c) = self.bump() else {
                return self.err(pos, "unterminated quoted string");
            };
            match c {
                '"' => return Ok(out),
                '\n' => return self.err(pos, "unterminated quoted string"),
                '\\' => self.escape(pos, &mut out, '"')?,
                c => {
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
    }

    fn char_literal(&mut self, pos: Pos) -> Result<String, ParseError> {
        self.bump();
        let mut out = Vec::new();
        match self.bump() {
            Some('\\') => self.escape(pos, &mut out, '\'')?,
            Some(c) if c != '\'' && c != '\n' => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            _ => return self.err(pos, "malformed character constant"),
        }
        if self.bump() != Some('\'') {
            return self.err(pos, "malformed character constant");
        }
        let c = String::from_utf8_lossy(&out).chars().next().unwrap_or('\0');
        Ok((c as u32).to_string())
    }

    fn escape(&mut self, pos: Pos, out: &mut Vec<u8>, quote: char) -> Result<(), ParseError> {
        let Some(c) = self.bump() else {
            return self.err(pos, "unterminated escape");
        };
        let simple = match c {
            'n' => Some(b'\n'),
            't' => Some(b'\t'),
            'r' => Some(b'\r'),
            'a' => Some(7),
            'b' => Some(8),
            'f' => Some(12),
            'v' => Some(11),
            '\\' => Some(b'\\'),
            c if c == quote => Some(c as u8),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            return Ok(());
        }
        let digits = |n: usize, radix: u32, lexer: &mut Self| -> Result<u32, ParseError> {
            let s: String = lexer.rest().chars().take(n).collect();
            if s.chars().count() != n {
                return lexer.err(pos, "invalid escape");
            }
            let v = u32::from_str_radix(&s, radix).map_err(|_| ParseError {
                pos,
                message: "invalid escape".into(),
            })?;
            lexer.advance(s.len());
            Ok(v)
        };
        match c {
            'x' => out.push(digits(2, 16, self)? as u8),
            '0'..='7' => {
                let rest = digits(2, 8, self)?;
                let v = (c as u32 - '0' as u32) * 64 + rest;
                if v > 255 {
                    return self.err(pos, "invalid octal escape");
                }
                out.push(v as u8);
            }
            'u' | 'U' => {
                let v = digits(if c == 'u' { 4 } else { 8 }, 16, self)?;
                let Some(ch) = char::from_u32(v) else {
                    return self.err(pos, "invalid unicode escape");
                };
                let mut buf = [0; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            _ => return self.err(pos, format!("unknown escape \\{c}")),
        }
        Ok(())
    }
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

/// Parses a template.
pub fn parse(src: &str) -> Result<Vec<Node>, ParseError> {
    let items = Lexer {
        src,
        i: 0,
        line: 1,
        col: 1,
    }
    .items()?;
    let mut parser = Parser {
        items: items.into_iter(),
        depth: 0,
        loops: 0,
        last: Pos::default(),
    };
    let (nodes, end) = parser.list()?;
    match end {
        Stop::Eof => Ok(nodes),
        Stop::End => Err(ParseError {
            pos: parser.last,
            message: "unexpected {{end}}".into(),
        }),
        Stop::Else(pos) | Stop::Chain(_, Action { pos, .. }) => Err(ParseError {
            pos,
            message: "unexpected {{else}}".into(),
        }),
    }
}

/// How a list of nodes ended.
enum Stop {
    /// End of input.
    Eof,
    /// `{{end}}`.
    End,
    /// `{{else}}`.
    Else(Pos),
    /// `{{else if …}}` / `{{else with …}}`: the keyword and the action.
    Chain(String, Action),
}

struct Parser {
    items: std::vec::IntoIter<Item>,
    depth: usize,
    loops: usize,
    /// Position of the last action seen (for errors about a stray `{{end}}`).
    last: Pos,
}

impl Parser {
    /// Parses nodes up to `{{end}}`, `{{else …}}` or the end of input.
    fn list(&mut self) -> Result<(Vec<Node>, Stop), ParseError> {
        let mut nodes = Vec::new();
        while let Some(item) = self.items.next() {
            let action = match item {
                Item::Text(t) => {
                    nodes.push(Node::Text(t));
                    continue;
                }
                Item::Action(a) => a,
            };
            self.last = action.pos;
            let Some(first) = action.tokens.first() else {
                return Err(ParseError {
                    pos: action.pos,
                    message: "missing value for command".into(),
                });
            };
            let keyword = match &first.tok {
                Tok::Ident(w) => w.clone(),
                _ => String::new(),
            };
            let keyword = keyword.as_str();
            match keyword {
                "end" => {
                    expect_only(&action, "end")?;
                    return Ok((nodes, Stop::End));
                }
                "else" => return Ok((nodes, else_marker(action)?)),
                "if" | "with" => nodes.push(self.branching(keyword, action)?),
                "range" => nodes.push(self.range(action)?),
                "break" | "continue" => {
                    expect_only(&action, keyword)?;
                    if self.loops == 0 {
                        return Err(ParseError {
                            pos: action.pos,
                            message: format!("{{{{{keyword}}}}} outside {{{{range}}}}"),
                        });
                    }
                    nodes.push(if keyword == "break" {
                        Node::Break(action.pos)
                    } else {
                        Node::Continue(action.pos)
                    });
                }
                "define" | "template" | "block" => {
                    return Err(ParseError {
                        pos: action.pos,
                        message: format!(
                            "{{{{{keyword}}}}} is not supported: ESO templates are single templates"
                        ),
                    });
                }
                _ => {
                    let pipe = pipeline(&action.tokens, action.pos, 0, true)?;
                    nodes.push(Node::Action(pipe));
                }
            }
        }
        Ok((nodes, Stop::Eof))
    }

    fn nest(&mut self, pos: Pos) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError {
                pos,
                message: format!("control actions nested deeper than {MAX_DEPTH}"),
            });
        }
        Ok(())
    }

    fn branching(&mut self, keyword: &str, action: Action) -> Result<Node, ParseError> {
        self.nest(action.pos)?;
        let mut branches = Vec::new();
        let mut otherwise = None;
        let mut head = action;
        let mut skip = 1;
        loop {
            let pipe = control_pipe(&head, skip, keyword)?;
            let (body, end) = self.list()?;
            branches.push((pipe, body));
            match end {
                Stop::Eof => {
                    return Err(ParseError {
                        pos: head.pos,
                        message: format!("unexpected EOF: {{{{{keyword}}}}} without {{{{end}}}}"),
                    });
                }
                Stop::End => break,
                Stop::Else(pos) => {
                    let (body, end) = self.list()?;
                    otherwise = Some(body);
                    if !matches!(end, Stop::End) {
                        return Err(ParseError {
                            pos,
                            message: "expected {{end}} after {{else}}".into(),
                        });
                    }
                    break;
                }
                Stop::Chain(chained, action) => {
                    if chained != keyword {
                        return Err(ParseError {
                            pos: action.pos,
                            message: format!("{{{{else {chained}}}}} inside {{{{{keyword}}}}}"),
                        });
                    }
                    head = action;
                    skip = 2;
                }
            }
        }
        self.depth -= 1;
        Ok(if keyword == "if" {
            Node::If {
                branches,
                otherwise,
            }
        } else {
            Node::With {
                branches,
                otherwise,
            }
        })
    }

    fn range(&mut self, action: Action) -> Result<Node, ParseError> {
        self.nest(action.pos)?;
        let pipe = control_pipe(&action, 1, "range")?;
        if pipe.vars.len() > 2 {
            return Err(ParseError {
                pos: pipe.pos,
                message: "too many declarations in range".into(),
            });
        }
        self.loops += 1;
        let (body, end) = self.list()?;
        self.loops -= 1;
        let otherwise = match end {
            Stop::End => None,
            Stop::Else(pos) => {
                let (body, end) = self.list()?;
                if !matches!(end, Stop::End) {
                    return Err(ParseError {
                        pos,
                        message: "expected {{end}} after {{else}}".into(),
                    });
                }
                Some(body)
            }
            Stop::Chain(_, action) => {
                return Err(ParseError {
                    pos: action.pos,
                    message: "{{else if}} / {{else with}} inside {{range}}".into(),
                });
            }
            Stop::Eof => {
                return Err(ParseError {
                    pos: action.pos,
                    message: "unexpected EOF: {{range}} without {{end}}".into(),
                });
            }
        };
        self.depth -= 1;
        Ok(Node::Range {
            pipe,
            body,
            otherwise,
        })
    }
}

/// Classifies an `{{else}}` action: plain `else`, or `else if` / `else with`.
fn else_marker(action: Action) -> Result<Stop, ParseError> {
    match action.tokens.get(1).map(|t| &t.tok) {
        None => Ok(Stop::Else(action.pos)),
        Some(Tok::Ident(w)) if w == "if" || w == "with" => Ok(Stop::Chain(w.clone(), action)),
        _ => Err(ParseError {
            pos: action.pos,
            message: "unexpected tokens after else".into(),
        }),
    }
}

fn expect_only(action: &Action, word: &str) -> Result<(), ParseError> {
    if action.tokens.len() != 1 {
        return Err(ParseError {
            pos: action.pos,
            message: format!("unexpected tokens after {word}"),
        });
    }
    Ok(())
}

fn control_pipe(action: &Action, skip: usize, keyword: &str) -> Result<Pipe, ParseError> {
    let tokens = &action.tokens[skip.min(action.tokens.len())..];
    if tokens.is_empty() {
        return Err(ParseError {
            pos: action.pos,
            message: format!("missing value for {keyword}"),
        });
    }
    pipeline(tokens, tokens[0].pos, 0, true)
}

/// Parses a pipeline from `tokens` (the whole slice).
fn pipeline(tokens: &[Token], pos: Pos, depth: usize, decl: bool) -> Result<Pipe, ParseError> {
    if depth > MAX_DEPTH {
        return Err(ParseError {
            pos,
            message: format!("parentheses nested deeper than {MAX_DEPTH}"),
        });
    }
    let mut vars = Vec::new();
    let mut assign = false;
    let mut rest = tokens;
    if decl {
        // `$a :=`, `$a =`, `$a, $b :=`.
        let mut i = 0;
        let mut names = Vec::new();
        while let Some(Token {
            tok: Tok::Var(name),
            ..
        }) = rest.get(i)
        {
            names.push(name.clone());
            match rest.get(i + 1).map(|t| &t.tok) {
                Some(Tok::Comma) => i += 2,
                Some(Tok::Declare) | Some(Tok::Assign) => {
                    assign = rest[i + 1].tok == Tok::Assign;
                    vars = names;
                    rest = &rest[i + 2..];
                    break;
                }
                _ => break,
            }
        }
    }
    let mut cmds = Vec::new();
    let mut current: Vec<Arg> = Vec::new();
    let mut cmd_pos = rest.first().map(|t| t.pos).unwrap_or(pos);
    let mut i = 0;
    while i < rest.len() {
        let t = &rest[i];
        match &t.tok {
            Tok::Pipe => {
                if current.is_empty() {
                    return Err(ParseError {
                        pos: t.pos,
                        message: "missing command before |".into(),
                    });
                }
                cmds.push(Cmd {
                    pos: cmd_pos,
                    args: std::mem::take(&mut current),
                });
                i += 1;
                cmd_pos = rest.get(i).map(|t| t.pos).unwrap_or(t.pos);
                continue;
            }
            Tok::Ident(name) => {
                let arg = match name.as_str() {
                    "true" => Arg::Bool(true),
                    "false" => Arg::Bool(false),
                    "nil" => Arg::Nil,
                    _ if functions::exists(name) => Arg::Func(name.clone()),
                    _ => {
                        return Err(ParseError {
                            pos: t.pos,
                            message: format!("function {name:?} not defined"),
                        });
                    }
                };
                current.push(arg);
                i += 1;
            }
            Tok::Str(s) => {
                current.push(Arg::Str(s.clone()));
                i += 1;
            }
            Tok::Number(n) => {
                current.push(number(n, t.pos)?);
                i += 1;
            }
            Tok::Dot => {
                current.push(Arg::Field(Vec::new()));
                i += 1;
            }
            Tok::Field(_) => {
                let (fields, n) = fields(&rest[i..], true);
                current.push(Arg::Field(fields));
                i += n;
            }
            Tok::Var(name) => {
                let (fields, n) = fields(&rest[i + 1..], false);
                current.push(Arg::Var(name.clone(), fields));
                i += 1 + n;
            }
            Tok::LParen => {
                let close = matching_paren(rest, i)?;
                let inner = &rest[i + 1..close];
                let inner_pos = inner.first().map(|t| t.pos).unwrap_or(t.pos);
                if inner.is_empty() {
                    return Err(ParseError {
                        pos: t.pos,
                        message: "missing value in parentheses".into(),
                    });
                }
                let sub = pipeline(inner, inner_pos, depth + 1, false)?;
                let (fields, n) = fields(&rest[close + 1..], false);
                current.push(Arg::Sub(Box::new(sub), fields));
                i = close + 1 + n;
            }
            Tok::RParen => {
                return Err(ParseError {
                    pos: t.pos,
                    message: "unexpected right paren".into(),
                });
            }
            Tok::Declare | Tok::Assign | Tok::Comma => {
                return Err(ParseError {
                    pos: t.pos,
                    message: "unexpected declaration or comma".into(),
                });
            }
        }
    }
    if current.is_empty() {
        return Err(ParseError {
            pos: cmd_pos,
            message: "missing value for command".into(),
        });
    }
    cmds.push(Cmd {
        pos: cmd_pos,
        args: current,
    });
    Ok(Pipe {
        pos,
        vars,
        assign,
        cmds,
    })
}

/// Collects adjacent `.field` tokens. `first_spaced_ok`: the first one may follow a space.
fn fields(tokens: &[Token], first_spaced_ok: bool) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    for (n, t) in tokens.iter().enumerate() {
        match &t.tok {
            Tok::Field(f) if !t.spaced || (n == 0 && first_spaced_ok) => out.push(f.clone()),
            _ => break,
        }
    }
    let n = out.len();
    (out, n)
}

fn matching_paren(tokens: &[Token], open: usize) -> Result<usize, ParseError> {
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        match t.tok {
            Tok::LParen => depth += 1,
            Tok::RParen => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i);
                }
            }
            _ => {}
        }
    }
    Err(ParseError {
        pos: tokens[open].pos,
        message: "unclosed left paren".into(),
    })
}

fn number(text: &str, pos: Pos) -> Result<Arg, ParseError> {
    let clean = text.replace('_', "");
    let (neg, digits) = match clean.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, clean.strip_prefix('+').unwrap_or(&clean)),
    };
    let radix = |p: &str, r: u32| {
        digits
            .strip_prefix(p)
            .or_else(|| digits.strip_prefix(&p.to_uppercase()))
            .and_then(|d| i64::from_str_radix(d, r).ok())
    };
    let int = radix("0x", 16)
        .or_else(|| radix("0o", 8))
        .or_else(|| radix("0b", 2))
        .or_else(|| {
            if digits.len() > 1
                && digits.starts_with('0')
                && digits.bytes().all(|b| b.is_ascii_digit())
            {
                i64::from_str_radix(&digits[1..], 8).ok()
            } else {
                digits.parse::<i64>().ok()
            }
        });
    if let Some(v) = int {
        return Ok(Arg::Int(if neg { v.wrapping_neg() } else { v }));
    }
    match digits.parse::<f64>() {
        Ok(v)
            if digits
                .bytes()
                .all(|b| b.is_ascii_digit() || b"eE.+-".contains(&b)) =>
        {
            Ok(Arg::Float(if neg { -v } else { v }))
        }
        _ => Err(ParseError {
            pos,
            message: format!("bad number syntax: {text:?}"),
        }),
    }
}
