//! The Jinja engine: minijinja configured like Grafana OnCall's sandboxed Jinja environment
//! (Jinja's defaults and OnCall's filters, see `filters`), bounded per render by fuel and a
//! recursion limit, writing into the render's capped [`Sink`]. Compiled templates are kept
//! in one environment, replaced copy-on-write when a template is added, so a render holds
//! no lock while it runs.

use std::sync::{Arc, Mutex, PoisonError};

use minijinja::{AutoEscape, Environment, Error, ErrorKind};

use super::budget::{Failure, Limits, Meter, Sink};
use super::filters;

/// The Jinja engine with its compiled templates (named by their own source text).
pub(super) struct Jinja {
    cache: Mutex<Cache>,
}

struct Cache {
    env: Arc<Environment<'static>>,
    len: usize,
}

impl Jinja {
    pub(super) fn new(limits: &Limits) -> Jinja {
        Jinja {
            cache: Mutex::new(Cache {
                env: Arc::new(environment(limits)),
                len: 0,
            }),
        }
    }

    /// The environment holding `source` compiled (compiled now unless it was already).
    pub(super) fn compiled(
        &self,
        source: &str,
        cache_cap: usize,
    ) -> Result<Arc<Environment<'static>>, String> {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.env.get_template(source).is_ok() {
            return Ok(Arc::clone(&cache.env));
        }
        let mut env = Environment::clone(&cache.env);
        if cache.len >= cache_cap {
            env.clear_templates();
            cache.len = 0;
        }
        env.add_template_owned(source.to_owned(), source.to_owned())
            .map_err(|err| error_text(&err))?;
        cache.env = Arc::new(env);
        cache.len += 1;
        Ok(Arc::clone(&cache.env))
    }

    /// How many templates are compiled.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len
    }

    /// Renders the compiled `source` within `meter`'s budget. An error text is passed through
    /// `redact` (it may quote context values).
    pub(super) fn render(
        &self,
        source: &str,
        context: &serde_json::Value,
        meter: &Meter,
        cache_cap: usize,
        redact: impl Fn(String) -> String,
    ) -> Result<String, Failure> {
        let env = self.compiled(source, cache_cap).map_err(Failure::error)?;
        let template = env
            .get_template(source)
            .map_err(|err| Failure::error(error_text(&err)))?;
        let mut sink = Sink::new(meter);
        match template.render_captured_to(context, &mut sink) {
            Ok(_) => Ok(sink.into_string()),
            Err(err) => {
                if err.kind() == ErrorKind::OutOfFuel {
                    meter.out_of_fuel();
                } else if err.detail() == Some("recursion limit exceeded") {
                    meter.too_deep();
                }
                Err(meter
                    .failure()
                    .unwrap_or_else(|| Failure::error(redact(error_text(&err)))))
            }
        }
    }
}

/// The Jinja environment: Jinja's defaults (no autoescape, trim_blocks off, trailing newline
/// dropped, lenient undefined), OnCall's filters and formatter ([`filters`]), and the fuel
/// and recursion limit of every render.
pub(super) fn environment(limits: &Limits) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_debug(false);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_keep_trailing_newline(false);
    env.set_trim_blocks(false);
    env.set_lstrip_blocks(false);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    env.set_fuel(Some(limits.fuel));
    env.set_recursion_limit(limits.recursion);
    filters::register(&mut env);
    env
}

/// "Template Error: <reason> (line N)"; never the template name (it is the source text).
fn error_text(err: &Error) -> String {
    // "unable to calculate <lhs> <op> <rhs>" quotes operands, which may derive from the context.
    let detail = err
        .detail()
        .map(|detail| match detail.strip_prefix("unable to calculate ") {
            Some(_) => "unable to calculate (overflow or invalid operands)",
            None => detail,
        });
    let mut message = match detail {
        Some(detail) if err.kind() == ErrorKind::SyntaxError => {
            format!("Template Error: {detail}")
        }
        Some(detail) => format!("Template Error: {}: {detail}", err.kind()),
        None => format!("Template Error: {}", err.kind()),
    };
    if let Some(line) = err.line() {
        message.push_str(&format!(" (line {line})"));
    }
    message
}
