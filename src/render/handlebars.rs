//! The handlebars engine, bounded. handlebars has no fuel and no recursion limit of its own:
//! `{{#*inline "p"}}{{> p}}{{/inline}}{{> p}}` recurses until the stack overflows, and nested
//! `{{#each}}` over a large list runs for hours without writing a byte. So every template is
//! compiled once and rewritten: the body of every block (each iteration of `each`, `if`,
//! `with`, every inline partial and partial block) is wrapped in a `budget` block helper that
//! enters the render's [`Meter`] before rendering it: one step per element of the body, one
//! level of depth until it returns, and a wall-time check. A render is then bounded by
//! `fuel` steps and `depth` levels (and runs on a pool thread whose stack holds that depth).
//! Templates render with a registry of their own holding no other template, so a partial
//! can only be one the template defines inline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use handlebars::template::{Template, TemplateElement};
use handlebars::{
    Context, Handlebars as Registry, Helper, HelperDef, HelperResult, RenderContext,
    RenderErrorReason, Renderable,
};

use super::budget::{Failure, Meter, Sink};

/// The block helper wrapped around every block body (a name no OnCall template uses).
const BUDGET_HELPER: &str = "webhookd-budget";

/// The handlebars engine with its compiled (and rewritten) templates by source text.
pub(super) struct Handlebars {
    cache: Mutex<HashMap<String, Arc<Template>>>,
    /// `{{#webhookd-budget}}{{/webhookd-budget}}`, cloned around each block body.
    guard: TemplateElement,
}

impl Handlebars {
    pub(super) fn new() -> Handlebars {
        let source = format!("{{{{#{BUDGET_HELPER}}}}}x{{{{/{BUDGET_HELPER}}}}}");
        let mut prototype = Template::compile(&source).expect("the budget block compiles");
        Handlebars {
            cache: Mutex::new(HashMap::new()),
            guard: prototype.elements.remove(0),
        }
    }

    /// `source` compiled and rewritten (now unless it was already).
    pub(super) fn compiled(&self, source: &str, cache_cap: usize) -> Result<Arc<Template>, String> {
        if let Some(template) = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(source)
        {
            return Ok(Arc::clone(template));
        }
        let template = Template::compile(source).map_err(|err| template_error(&err))?;
        let template = Arc::new(self.guarded(template));
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= cache_cap {
            cache.clear();
        }
        cache.insert(source.to_owned(), Arc::clone(&template));
        Ok(template)
    }

    /// How many templates are compiled.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Renders the compiled `source` within `meter`'s budget; error texts go through `redact`.
    pub(super) fn render(
        &self,
        source: &str,
        context: &serde_json::Value,
        meter: &Meter,
        cache_cap: usize,
        redact: impl Fn(String) -> String,
    ) -> Result<String, Failure> {
        let template = self.compiled(source, cache_cap).map_err(Failure::error)?;
        let mut registry = Registry::new();
        registry.register_escape_fn(handlebars::no_escape);
        registry.set_strict_mode(false);
        registry.register_helper(BUDGET_HELPER, Box::new(Budget { meter }));
        let context = Context::from(context.clone());
        let mut rc = RenderContext::new(None);
        let mut sink = Sink::new(meter);
        match template.render(&registry, &context, &mut rc, &mut sink) {
            Ok(()) => Ok(sink.into_string()),
            Err(err) => Err(meter
                .failure()
                .unwrap_or_else(|| Failure::error(redact(render_error(&err))))),
        }
    }

    /// `template` with every block body, and the template itself, wrapped in the budget block.
    fn guarded(&self, template: Template) -> Template {
        let mut template = template;
        for element in &mut template.elements {
            self.guard_element(element);
        }
        self.wrap(template)
    }

    fn guard_element(&self, element: &mut TemplateElement) {
        let bodies = match element {
            TemplateElement::HelperBlock(block) => vec![&mut block.template, &mut block.inverse],
            TemplateElement::DecoratorBlock(block) | TemplateElement::PartialBlock(block) => {
                vec![&mut block.template]
            }
            _ => Vec::new(),
        };
        for body in bodies {
            if let Some(template) = body.take() {
                *body = Some(self.guarded(template));
            }
        }
    }

    /// `{{#webhookd-budget}}<template>{{/webhookd-budget}}`.
    fn wrap(&self, template: Template) -> Template {
        let mut guard = self.guard.clone();
        let mapping = template.mapping.first().cloned();
        if let TemplateElement::HelperBlock(block) = &mut guard {
            block.template = Some(template);
        }
        let mut wrapped = Template::default();
        wrapped.elements = vec![guard];
        wrapped.mapping = mapping.into_iter().collect();
        wrapped
    }
}

/// The budget block: enters the meter (one step per element of its body, one level of depth)
/// and renders its body in place (no new context, so `this`, `@index` and block params are
/// those around it).
struct Budget<'m> {
    meter: &'m Meter,
}

impl HelperDef for Budget<'_> {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Registry<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn handlebars::Output,
    ) -> HelperResult {
        let Some(body) = h.template() else {
            return Ok(());
        };
        let steps = 1 + body.elements.len() as u64;
        self.meter
            .enter(steps)
            .map_err(|reason| RenderErrorReason::Other(reason.as_str().to_owned()))?;
        let result = body.render(r, ctx, rc, out);
        self.meter.leave();
        result
    }
}

fn template_error(err: &handlebars::TemplateError) -> String {
    match err.pos() {
        Some((line, column)) => {
            format!(
                "Template Error: {} (line {line}, column {column})",
                err.reason()
            )
        }
        None => format!("Template Error: {}", err.reason()),
    }
}

fn render_error(err: &handlebars::RenderError) -> String {
    match (err.line_no, err.column_no) {
        (Some(line), Some(column)) => {
            format!(
                "Template Error: {} (line {line}, column {column})",
                err.reason()
            )
        }
        _ => format!("Template Error: {}", err.reason()),
    }
}
