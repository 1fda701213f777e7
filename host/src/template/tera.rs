//! Tera renders inside wasmtime. Tera has no budgets of its own: a self-recursive macro or a
//! deeply nested expression overflows the native stack (which aborts the whole process, past
//! any `catch_unwind`), `range(end=1, step_by=0)` panics, `set_global s = s ~ s` doubles
//! memory each step and nested loops run for as long as they like. Any ExternalSecret author
//! writes these templates, so each render runs in the `host/tera-guest` component (tera
//! compiled to wasm, embedded at build time) with a fuel, memory, stack and output budget:
//! breaking one is a trap that fails this render with a [`TemplateError`], and nothing else.

use std::sync::OnceLock;

use wasmtime::component::{Component, ComponentType, InstancePre, Lift, Linker};
use wasmtime::{Config, Engine, ResourceLimiter, Store, Trap};

use super::{TemplateError, Value, eval, functions};

/// Tera compiled to a wasm32-wasip2 component by `host/build.rs`.
static GUEST: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/tera.wasm"));

/// Fuel (about one unit per wasm instruction) one tera render may burn, context parsing
/// included: the CPU budget matching the Go engine's step budget. A realistic template over
/// a 1 MiB context burns about a tenth of it; the whole of it is about 0.2 s of CPU, as the
/// Go engine's 1,000,000 steps are.
pub const FUEL: u64 = 1_000_000_000;
/// Linear memory one tera render may use (the context, tera's values and the output).
pub const MEMORY: usize = 64 << 20;
/// Wasm stack one tera render may use: deeper recursion (a macro calling itself, deeply
/// nested source) is a stack-overflow trap.
pub const STACK: usize = 512 << 10;
/// Largest output: the Go engine's, since a Secret holds at most 1 MiB.
pub const MAX_OUTPUT: usize = eval::MAX_OUTPUT;

/// The guest's `failure` record.
#[derive(ComponentType, Lift)]
#[component(record)]
struct Failure {
    parse: bool,
    message: String,
}

/// Refuses memory beyond [`MEMORY`], remembering that it did so for the error message.
#[derive(Default)]
struct Limits {
    memory_refused: bool,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MEMORY {
            self.memory_refused = true;
            wasmtime::bail!("memory budget exceeded");
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

struct Sandbox {
    engine: Engine,
    pre: InstancePre<Limits>,
}

fn sandbox() -> Result<&'static Sandbox, String> {
    static SANDBOX: OnceLock<Result<Sandbox, String>> = OnceLock::new();
    SANDBOX
        .get_or_init(|| {
            let mut config = Config::new();
            config.wasm_component_model(true);
            config.consume_fuel(true);
            config.max_wasm_stack(STACK);
            let engine = Engine::new(&config).map_err(|e| format!("{e:#}"))?;
            let component = Component::new(&engine, GUEST).map_err(|e| format!("{e:#}"))?;
            let mut linker = Linker::<Limits>::new(&engine);
            // Rust's std seeds its HashMaps from wasi:random; the seed need not be secret,
            // since a template that provokes collisions only burns its own fuel.
            let seed = component
                .component_type()
                .imports(&engine)
                .map(|(name, _)| name.to_string())
                .find(|name| name.starts_with("wasi:random/insecure-seed@"));
            if let Some(seed) = seed {
                linker
                    .instance(&seed)
                    .and_then(|mut i| i.func_wrap("insecure-seed", |_, (): ()| Ok(((0u64, 0u64),))))
                    .map_err(|e| format!("{e:#}"))?;
            }
            // Nothing else (stdio, environment, clocks, exit) is reachable from a template.
            linker
                .define_unknown_imports_as_traps(&component)
                .map_err(|e| format!("{e:#}"))?;
            let pre = linker
                .instantiate_pre(&component)
                .map_err(|e| format!("{e:#}"))?;
            Ok(Sandbox { engine, pre })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Compiles the tera component now rather than on the first tera render.
pub fn prepare() {
    let _ = sandbox();
}

/// Renders tera template `source` (called `name` in errors) over `data` within the budgets.
pub fn render(name: &str, source: &str, data: &Value) -> Result<Vec<u8>, TemplateError> {
    let render_error = |message: String| TemplateError::Render {
        name: name.to_string(),
        line: 1,
        col: 1,
        message,
    };
    let sandbox =
        sandbox().map_err(|e| render_error(format!("the tera engine is unavailable: {e}")))?;
    let context = functions::to_json(data).to_string();
    let mut store = Store::new(&sandbox.engine, Limits::default());
    store.limiter(|l| l);
    store
        .set_fuel(FUEL)
        .map_err(|e| render_error(format!("{e:#}")))?;
    let outcome = sandbox.pre.instantiate(&mut store).and_then(|instance| {
        let f = instance.get_typed_func::<(&str, &str, &str, u32), (Result<String, Failure>,)>(
            &mut store, "render",
        )?;
        let max = u32::try_from(MAX_OUTPUT).unwrap_or(u32::MAX);
        f.call(&mut store, (name, source, &context, max))
    });
    match outcome {
        Ok((Ok(out),)) => Ok(out.into_bytes()),
        Ok((Err(Failure {
            parse: true,
            message,
        }),)) => {
            let (line, col) = position(&message).unwrap_or((1, 1));
            Err(TemplateError::Parse {
                name: name.to_string(),
                line,
                col,
                message: message.replace('\n', " "),
            })
        }
        Ok((Err(Failure { message, .. }),)) => Err(render_error(message.replace('\n', " "))),
        Err(e) => Err(render_error(if store.data().memory_refused {
            format!(
                "the template needs more than its {} MiB of memory",
                MEMORY >> 20
            )
        } else {
            match e.downcast_ref::<Trap>() {
                Some(Trap::OutOfFuel) => format!(
                    "the template exceeded its CPU budget ({FUEL} units of fuel): an endless or too large loop?"
                ),
                Some(Trap::StackOverflow) => {
                    "the template nests or recurses too deeply (a macro calling itself?)".into()
                }
                Some(trap) => format!("tera failed ({trap})"),
                None => format!("tera failed: {e:#}"),
            }
        })),
    }
}

/// Finds ` --> line:col` in a tera (pest) parse error.
fn position(message: &str) -> Option<(usize, usize)> {
    let at = message.find("--> ")?;
    let rest = &message[at + 4..];
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == ':'))?;
    let (l, c) = rest[..end].split_once(':')?;
    Some((l.parse().ok()?, c.parse().ok()?))
}
