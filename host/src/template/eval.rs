//! Evaluates a parsed Go template over a [`Value`] with Go's semantics: `missingkey=error`,
//! Go truthiness, pipelines passing the previous result as the last argument, and lexically
//! scoped variables. Budgets bound the output size and the work a template may do.

use std::collections::BTreeMap;

use super::functions;
use super::parse::{Arg, Cmd, Node, Pipe, Pos};

/// Largest output one template may produce (a Secret holds at most 1 MiB).
pub const MAX_OUTPUT: usize = 1 << 20;
/// Most loop iterations and function calls one render may make.
const MAX_STEPS: usize = 1_000_000;
/// Largest intermediate value a function may return, counted as string bytes plus one per
/// list element or map entry: without it `concat`/`append` doubling builds huge lists in few steps.
pub const MAX_VALUE: usize = MAX_OUTPUT;

// Stops counting once past the bound, so measuring a value costs at most the bound.
fn size(v: &Value) -> usize {
    fn walk(v: &Value, acc: &mut usize) {
        if *acc > MAX_VALUE {
            return;
        }
        match v {
            Value::Str(s) => *acc += s.len(),
            Value::List(l) => {
                for x in l {
                    *acc += 1;
                    walk(x, acc);
                }
            }
            Value::Map(m) => {
                for (k, x) in m {
                    *acc += 1 + k.len();
                    walk(x, acc);
                }
            }
            _ => *acc += 1,
        }
    }
    let mut acc = 0;
    walk(v, &mut acc);
    acc
}

/// A template value. Strings are bytes: secret values need not be UTF-8.
#[derive(Clone, PartialEq)]
pub enum Value {
    /// Go's nil.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string (bytes).
    Str(Vec<u8>),
    /// A list.
    List(Vec<Value>),
    /// A map with string keys (iterated in key order, as Go does).
    Map(BTreeMap<String, Value>),
}

// Values hold secrets: never print them.
impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

impl Value {
    /// A string value.
    pub fn str(s: impl Into<Vec<u8>>) -> Self {
        Value::Str(s.into())
    }

    /// Go's kind name, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_) => "slice",
            Value::Map(_) => "map",
        }
    }

    /// Go's truthiness: false, 0, nil and empty strings, lists and maps are false.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
        }
    }

    /// The value as Go's `fmt.Sprint` prints it (nil prints as nothing: ESO users never want
    /// `<no value>` in a Secret).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => {}
            Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
            Value::Float(f) => out.extend_from_slice(format_float(*f).as_bytes()),
            Value::Str(s) => out.extend_from_slice(s),
            Value::List(l) => {
                out.push(b'[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    v.write(out);
                }
                out.push(b']');
            }
            Value::Map(m) => {
                out.extend_from_slice(b"map[");
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    out.extend_from_slice(k.as_bytes());
                    out.push(b':');
                    v.write(out);
                }
                out.push(b']');
            }
        }
    }

    /// The value as text (lossy for bytes that are not UTF-8).
    pub fn to_text(&self) -> String {
        String::from_utf8_lossy(&self.to_bytes()).into_owned()
    }
}

/// Formats a float as Go's `%v` does for common values.
pub fn format_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e21).contains(&abs) {
        let s = format!("{f:e}");
        // Go writes e+06 / e-05.
        if let Some((m, e)) = s.split_once('e') {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            return format!("{m}e{sign}{digits:0>2}");
        }
        return s;
    }
    format!("{f}")
}

/// A failure while rendering, at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    /// Where.
    pub pos: Pos,
    /// What (never contains data values).
    pub message: String,
}

enum Flow {
    Normal,
    Break,
    Continue,
}

/// Renders parsed nodes with `data` as dot and `$`.
pub fn render(nodes: &[Node], data: &Value) -> Result<Vec<u8>, EvalError> {
    let mut state = State {
        out: Vec::new(),
        vars: vec![(String::new(), data.clone())],
        steps: 0,
    };
    state.nodes(nodes, data)?;
    Ok(state.out)
}

struct State {
    out: Vec<u8>,
    vars: Vec<(String, Value)>,
    steps: usize,
}

impl State {
    fn step(&mut self, pos: Pos) -> Result<(), EvalError> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(EvalError {
                pos,
                message: format!("template does more than {MAX_STEPS} steps"),
            });
        }
        Ok(())
    }

    fn emit(&mut self, bytes: &[u8], pos: Pos) -> Result<(), EvalError> {
        if self.out.len() + bytes.len() > MAX_OUTPUT {
            return Err(EvalError {
                pos,
                message: format!("template output is larger than {MAX_OUTPUT} bytes"),
            });
        }
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    fn nodes(&mut self, nodes: &[Node], dot: &Value) -> Result<Flow, EvalError> {
        let mark = self.vars.len();
        let flow = self.nodes_inner(nodes, dot);
        self.vars.truncate(mark);
        flow
    }

    fn nodes_inner(&mut self, nodes: &[Node], dot: &Value) -> Result<Flow, EvalError> {
        for node in nodes {
            match node {
                Node::Text(t) => self.emit(t, Pos::default())?,
                Node::Action(pipe) => {
                    let v = self.pipe(pipe, dot)?;
                    if pipe.vars.is_empty() {
                        self.emit(&v.to_bytes(), pipe.pos)?;
                    }
                }
                Node::If {
                    branches,
                    otherwise,
                } => {
                    let flow = self.first_truthy(branches, otherwise.as_deref(), dot, false)?;
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::With {
                    branches,
                    otherwise,
                } => {
                    let flow = self.first_truthy(branches, otherwise.as_deref(), dot, true)?;
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Range {
                    pipe,
                    body,
                    otherwise,
                } => self.range(pipe, body, otherwise.as_deref(), dot)?,
                Node::Break(_) => return Ok(Flow::Break),
                Node::Continue(_) => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    /// `if` and `with`: runs the body of the first branch whose pipeline is truthy (`with`
    /// binds dot to that value), or `otherwise` when none is.
    fn first_truthy(
        &mut self,
        branches: &[(Pipe, Vec<Node>)],
        otherwise: Option<&[Node]>,
        dot: &Value,
        with: bool,
    ) -> Result<Flow, EvalError> {
        for (cond, body) in branches {
            let v = self.pipe(cond, dot)?;
            if v.truthy() {
                return self.nodes(body, if with { &v } else { dot });
            }
        }
        match otherwise {
            Some(body) => self.nodes(body, dot),
            None => Ok(Flow::Normal),
        }
    }

    fn range(
        &mut self,
        pipe: &Pipe,
        body: &[Node],
        otherwise: Option<&[Node]>,
        dot: &Value,
    ) -> Result<(), EvalError> {
        let plain = Pipe {
            vars: Vec::new(),
            assign: false,
            ..pipe.clone()
        };
        let v = self.pipe(&plain, dot)?;
        let items: Vec<(Value, Value)> = match v {
            Value::List(l) => l
                .into_iter()
                .enumerate()
                .map(|(i, v)| (Value::Int(i as i64), v))
                .collect(),
            Value::Map(m) => m.into_iter().map(|(k, v)| (Value::str(k), v)).collect(),
            Value::Int(n) => {
                if n > MAX_STEPS as i64 {
                    return Err(EvalError {
                        pos: pipe.pos,
                        message: format!("range over {n} is more than {MAX_STEPS} steps"),
                    });
                }
                (0..n.max(0))
                    .map(|i| (Value::Int(i), Value::Int(i)))
                    .collect()
            }
            Value::Null => Vec::new(),
            other => {
                return Err(EvalError {
                    pos: pipe.pos,
                    message: format!("range can't iterate over {}", other.kind()),
                });
            }
        };
        if items.is_empty() {
            if let Some(body) = otherwise {
                self.nodes(body, dot)?;
            }
            return Ok(());
        }
        for (key, item) in items {
            self.step(pipe.pos)?;
            let mark = self.vars.len();
            match pipe.vars.as_slice() {
                [v] => self.vars.push((v.clone(), item.clone())),
                [k, v] => {
                    self.vars.push((k.clone(), key));
                    self.vars.push((v.clone(), item.clone()));
                }
                _ => {}
            }
            let flow = self.nodes(body, &item);
            self.vars.truncate(mark);
            if let Flow::Break = flow? {
                break;
            }
        }
        Ok(())
    }

    fn pipe(&mut self, pipe: &Pipe, dot: &Value) -> Result<Value, EvalError> {
        let mut last: Option<Value> = None;
        for cmd in &pipe.cmds {
            last = Some(self.cmd(cmd, dot, last)?);
        }
        let v = last.unwrap_or(Value::Null);
        if pipe.assign {
            for name in &pipe.vars {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = v.clone(),
                    None => {
                        return Err(EvalError {
                            pos: pipe.pos,
                            message: format!("undefined variable: ${name}"),
                        });
                    }
                }
            }
        } else {
            for name in &pipe.vars {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn cmd(&mut self, cmd: &Cmd, dot: &Value, piped: Option<Value>) -> Result<Value, EvalError> {
        self.step(cmd.pos)?;
        let err = |message: String| EvalError {
            pos: cmd.pos,
            message,
        };
        match &cmd.args[0] {
            Arg::Func(name) => {
                // `and` / `or` stop at the first deciding argument, as in Go.
                if (name == "and" || name == "or") && piped.is_none() {
                    let mut last = Value::Null;
                    for a in &cmd.args[1..] {
                        last = self.arg(a, dot, cmd.pos)?;
                        if last.truthy() == (name == "or") {
                            return Ok(last);
                        }
                    }
                    if cmd.args.len() == 1 {
                        return Err(err(format!("{name}: wrong number of args")));
                    }
                    return Ok(last);
                }
                let mut args = Vec::with_capacity(cmd.args.len());
                for a in &cmd.args[1..] {
                    args.push(self.arg(a, dot, cmd.pos)?);
                }
                if let Some(p) = piped {
                    args.push(p);
                }
                let v = functions::call(name, args)
                    .map_err(|e| err(format!("error calling {name}: {e}")))?;
                if size(&v) > MAX_VALUE {
                    return Err(err(format!(
                        "{name} built a value larger than {MAX_VALUE} bytes"
                    )));
                }
                Ok(v)
            }
            first => {
                if cmd.args.len() > 1 || piped.is_some() {
                    return Err(err(format!(
                        "can't give argument to non-function {}",
                        describe(first)
                    )));
                }
                self.arg(first, dot, cmd.pos)
            }
        }
    }

    fn arg(&mut self, arg: &Arg, dot: &Value, pos: Pos) -> Result<Value, EvalError> {
        match arg {
            Arg::Field(fields) => walk(dot, fields, pos),
            Arg::Var(name, fields) => {
                let Some((_, v)) = self.vars.iter().rev().find(|(n, _)| n == name) else {
                    return Err(EvalError {
                        pos,
                        message: format!("undefined variable: ${name}"),
                    });
                };
                walk(v, fields, pos)
            }
            Arg::Func(name) => functions::call(name, Vec::new()).map_err(|e| EvalError {
                pos,
                message: format!("error calling {name}: {e}"),
            }),
            Arg::Str(s) => Ok(Value::Str(s.clone())),
            Arg::Int(i) => Ok(Value::Int(*i)),
            Arg::Float(f) => Ok(Value::Float(*f)),
            Arg::Bool(b) => Ok(Value::Bool(*b)),
            Arg::Nil => Err(EvalError {
                pos,
                message: "nil is not a command".into(),
            }),
            Arg::Sub(pipe, fields) => {
                let v = self.pipe(pipe, dot)?;
                walk(&v, fields, pos)
            }
        }
    }
}

fn describe(arg: &Arg) -> String {
    match arg {
        Arg::Field(f) if f.is_empty() => ".".into(),
        Arg::Field(f) => format!(".{}", f.join(".")),
        Arg::Var(n, _) => format!("${n}"),
        Arg::Str(_) => "string".into(),
        Arg::Int(_) | Arg::Float(_) => "number".into(),
        Arg::Bool(_) => "bool".into(),
        _ => "value".into(),
    }
}

/// Follows `.a.b` with `missingkey=error`.
fn walk(v: &Value, fields: &[String], pos: Pos) -> Result<Value, EvalError> {
    let mut cur = v;
    for f in fields {
        cur = match cur {
            Value::Map(m) => m.get(f).ok_or_else(|| EvalError {
                pos,
                message: format!("map has no entry for key {f:?}"),
            })?,
            Value::Null => {
                return Err(EvalError {
                    pos,
                    message: format!("nil pointer evaluating .{f}"),
                });
            }
            other => {
                return Err(EvalError {
                    pos,
                    message: format!("can't evaluate field {f} in type {}", other.kind()),
                });
            }
        };
    }
    Ok(cur.clone())
}
