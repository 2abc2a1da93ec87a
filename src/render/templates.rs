//! Template rendering for webhook `data`, `headers`, `url` and `trigger_template`.
//!
//! Owns the two engines a webhook can choose: Jinja (minijinja, configured like Grafana OnCall's
//! sandboxed Jinja environment, with OnCall's extra filters and `time()`), and handlebars. Also
//! owns OnCall's `escape_payload` ([`escape_strings`]) and trigger truthiness ([`is_truthy`]).
//! Compiled templates are cached by source, so rendering on the hot path does not re-parse.
//!
//! Depends on nothing else in the crate.

use std::sync::{Arc, PoisonError, RwLock};

use handlebars::Handlebars;
use minijinja::{AutoEscape, Environment, Error, ErrorKind};

use super::filters;
use crate::model::Engine;

/// Compiled templates kept per engine; the cache is emptied when it grows past this.
const TEMPLATE_CACHE_CAP: usize = 2048;
/// Context values shorter than this are not redacted from error texts.
const REDACT_MIN_LEN: usize = 3;

/// Renders templates; cheap to clone (Arc inside), Send + Sync, built once at start.
#[derive(Clone)]
pub struct Templates {
    inner: Arc<Inner>,
}

struct Inner {
    /// Templates are registered under their own source text as name.
    jinja: RwLock<JinjaCache>,
    handlebars: RwLock<Handlebars<'static>>,
}

struct JinjaCache {
    env: Environment<'static>,
    len: usize,
}

impl Default for Templates {
    fn default() -> Self {
        Templates::new()
    }
}

impl Templates {
    pub fn new() -> Templates {
        let mut handlebars = Handlebars::new();
        handlebars.register_escape_fn(handlebars::no_escape);
        handlebars.set_strict_mode(false);
        Templates {
            inner: Arc::new(Inner {
                jinja: RwLock::new(JinjaCache {
                    env: jinja_environment(),
                    len: 0,
                }),
                handlebars: RwLock::new(handlebars),
            }),
        }
    }

    /// Compile-only check used by validation: Err(message) on a syntax error, e.g.
    /// "Template Error: unexpected end of input ...". Undefined variables are NOT errors here.
    pub fn check(&self, engine: Engine, source: &str) -> Result<(), String> {
        if is_plain(engine, source) {
            return Ok(());
        }
        match engine {
            Engine::Jinja => self.compile_jinja(source),
            Engine::Handlebars => self.compile_handlebars(source),
        }
    }

    /// Renders `source` with `context` (a JSON object: the OnCall event_data). Err(message) on a
    /// render error; the message never contains values from `context`.
    pub fn render(
        &self,
        engine: Engine,
        source: &str,
        context: &serde_json::Value,
    ) -> Result<String, String> {
        if is_plain(engine, source) {
            return Ok(match engine {
                Engine::Jinja => strip_trailing_newline(source).to_owned(),
                Engine::Handlebars => source.to_owned(),
            });
        }
        match engine {
            Engine::Jinja => self.render_jinja(source, context),
            Engine::Handlebars => self.render_handlebars(source, context),
        }
    }

    fn render_jinja(&self, source: &str, context: &serde_json::Value) -> Result<String, String> {
        {
            let cache = self
                .inner
                .jinja
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Ok(template) = cache.env.get_template(source) {
                return template
                    .render(context)
                    .map_err(|err| redact(jinja_error(&err), context));
            }
        }
        self.compile_jinja(source)?;
        let cache = self
            .inner
            .jinja
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let template = cache
            .env
            .get_template(source)
            .map_err(|e| jinja_error(&e))?;
        template
            .render(context)
            .map_err(|err| redact(jinja_error(&err), context))
    }

    /// Compiles `source` into the cache unless it is there already.
    fn compile_jinja(&self, source: &str) -> Result<(), String> {
        let mut cache = self
            .inner
            .jinja
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.env.get_template(source).is_ok() {
            return Ok(());
        }
        if cache.len >= TEMPLATE_CACHE_CAP {
            cache.env.clear_templates();
            cache.len = 0;
        }
        cache
            .env
            .add_template_owned(source.to_owned(), source.to_owned())
            .map_err(|err| jinja_error(&err))?;
        cache.len += 1;
        Ok(())
    }

    fn render_handlebars(
        &self,
        source: &str,
        context: &serde_json::Value,
    ) -> Result<String, String> {
        {
            let registry = self
                .inner
                .handlebars
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if registry.has_template(source) {
                return registry
                    .render(source, context)
                    .map_err(|err| redact(handlebars_render_error(&err), context));
            }
        }
        self.compile_handlebars(source)?;
        let registry = self
            .inner
            .handlebars
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        registry
            .render(source, context)
            .map_err(|err| redact(handlebars_render_error(&err), context))
    }

    /// Compiles `source` into the registry unless it is there already.
    fn compile_handlebars(&self, source: &str) -> Result<(), String> {
        let mut registry = self
            .inner
            .handlebars
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if registry.has_template(source) {
            return Ok(());
        }
        if registry.get_templates().len() >= TEMPLATE_CACHE_CAP {
            registry.clear_templates();
        }
        registry
            .register_template_string(source, source)
            .map_err(|err| handlebars_template_error(&err))
    }
}

/// OnCall's escape_payload: returns a copy of `value` where every string (recursively, in objects
/// and arrays) is replaced by its JSON-escaped form without the surrounding quotes
/// (`json.dumps(s)[1:-1]`), so a data template like `{"title": "{{ alert_group.title }}"}` stays
/// valid JSON when the title contains quotes or newlines. Object keys are kept as they are.
pub fn escape_strings(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        J::String(s) => {
            let quoted = serde_json::to_string(s).unwrap_or_default();
            let inner = quoted
                .strip_prefix('"')
                .and_then(|q| q.strip_suffix('"'))
                .unwrap_or_default();
            J::String(inner.to_owned())
        }
        J::Array(items) => J::Array(items.iter().map(escape_strings).collect()),
        J::Object(map) => J::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), escape_strings(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// OnCall's trigger check: true when the rendered text, trimmed and lowercased, is "true" or "1".
pub fn is_truthy(rendered: &str) -> bool {
    let text = rendered.trim();
    text.eq_ignore_ascii_case("true") || text == "1"
}

/// True when `source` has no template syntax for `engine`, so it renders to itself.
fn is_plain(engine: Engine, source: &str) -> bool {
    match engine {
        Engine::Jinja => !(source.contains("{{") || source.contains("{%") || source.contains("{#")),
        Engine::Handlebars => !source.contains("{{"),
    }
}

/// Jinja (keep_trailing_newline off) drops one trailing newline; minijinja does the same.
fn strip_trailing_newline(source: &str) -> &str {
    let source = source.strip_suffix('\n').unwrap_or(source);
    source.strip_suffix('\r').unwrap_or(source)
}

/// "Template Error: <reason> (line N)"; never the template name (it is the source text).
fn jinja_error(err: &Error) -> String {
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

fn handlebars_template_error(err: &handlebars::TemplateError) -> String {
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

fn handlebars_render_error(err: &handlebars::RenderError) -> String {
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

/// Engine error texts can quote values (e.g. "unable to calculate 1 + 2"); replace any scalar of
/// the context found in `message`, so secrets in event data never reach stored error texts.
fn redact(mut message: String, context: &serde_json::Value) -> String {
    fn walk(value: &serde_json::Value, message: &mut String) {
        use serde_json::Value as J;
        let text = match value {
            J::String(s) => s.clone(),
            J::Number(n) => n.to_string(),
            J::Array(items) => return items.iter().for_each(|v| walk(v, message)),
            J::Object(map) => return map.values().for_each(|v| walk(v, message)),
            J::Bool(_) | J::Null => return,
        };
        if text.len() >= REDACT_MIN_LEN && message.contains(&text) {
            *message = message.replace(&text, "<redacted>");
        }
    }
    walk(context, &mut message);
    message
}

/// The Jinja environment: Jinja's defaults (no autoescape, trim_blocks off, trailing newline
/// dropped, lenient undefined), and OnCall's filters and
/// formatter ([`filters`]).
fn jinja_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_debug(false);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_keep_trailing_newline(false);
    env.set_trim_blocks(false);
    env.set_lstrip_blocks(false);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    filters::register(&mut env);
    env
}

#[cfg(test)]
pub(super) mod tests {
    use serde_json::json;

    use super::*;

    /// A trimmed OnCall event_data, as in the reference's responses example.
    pub(in crate::render) fn event() -> serde_json::Value {
        json!({
            "event": {"type": "acknowledge", "time": "2023-08-18T16:34:37.940655+00:00"},
            "user": {"id": "UK49JJNPZMFLJ", "username": "oncall", "email": "admin@localhost"},
            "alert_group": {
                "id": "IZQERPWKWCGH1",
                "title": "[firing:2] InstanceDown ",
                "state": "acknowledged",
                "created_at": "2023-08-18T16:34:27.678406Z",
                "resolved_at": null,
                "alerts_count": 1
            },
            "alert_group_id": "IZQERPWKWCGH1",
            "alert_payload": {
                "status": "firing",
                "commonLabels": {"job": "node", "severity": "critical", "alertname": "InstanceDown"},
                "groupKey": "{}:{alertname=\"InstanceDown\"}"
            },
            "integration": {"id": "CRV8A5MXC751A", "type": "alertmanager", "name": "One - Alertmanager"}
        })
    }

    pub(in crate::render) fn jinja(
        source: &str,
        context: &serde_json::Value,
    ) -> Result<String, String> {
        Templates::new().render(Engine::Jinja, source, context)
    }

    pub(in crate::render) fn ok(source: &str) -> String {
        jinja(source, &event()).unwrap()
    }

    #[test]
    fn escaped_strings_keep_a_data_template_valid_json() {
        let mut context = event();
        context["alert_group"]["title"] = json!("Disk \"full\"\non db-1 \\ C:");
        let template =
            r#"{"title": "{{ alert_group.title }}", "key": "{{ alert_payload.groupKey }}"}"#;

        let raw = jinja(template, &context).unwrap();
        assert!(serde_json::from_str::<serde_json::Value>(&raw).is_err());

        let escaped = escape_strings(&context);
        let body = jinja(template, &escaped).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["title"], context["alert_group"]["title"]);
        assert_eq!(parsed["key"], context["alert_payload"]["groupKey"]);
    }

    #[test]
    fn escape_strings_recurses_and_leaves_keys_and_scalars() {
        let value = json!({"a\"key": ["x\ty", {"n": 1, "b": true, "z": null, "s": "é\""}]});
        assert_eq!(
            escape_strings(&value),
            json!({"a\"key": ["x\\ty", {"n": 1, "b": true, "z": null, "s": "é\\\""}]})
        );
    }

    #[test]
    fn jinja_whitespace_and_escaping_follow_jinja_defaults() {
        // No HTML escaping, even when the source looks like an .html name.
        assert_eq!(
            jinja("<b>{{ t }}</b>.html", &json!({"t": "a & <b>"})).unwrap(),
            "<b>a & <b></b>.html"
        );
        // trim_blocks off, one trailing newline dropped.
        assert_eq!(ok("{% if true %}\nx{% endif %}\n"), "\nx");
    }

    #[test]
    fn truthiness_table() {
        for (rendered, truthy) in [
            ("true", true),
            (" True\n", true),
            ("1", true),
            ("false", false),
            ("0", false),
            ("", false),
            ("yes", false),
        ] {
            assert_eq!(is_truthy(rendered), truthy, "{rendered:?}");
        }
        let fired = ok("{{ alert_payload.status == 'firing' }}");
        assert!(is_truthy(&fired));
    }

    #[test]
    fn handlebars_renders_without_html_escaping() {
        let templates = Templates::new();
        let mut context = event();
        context["alert_group"]["title"] = json!("<b>\"A & B\"</b>");
        let out = templates
            .render(
                Engine::Handlebars,
                "{{alert_group.title}} / {{alert_group.missing}} / {{#each alert_payload.commonLabels}}{{@key}}={{this}};{{/each}}",
                &context,
            )
            .unwrap();
        assert_eq!(
            out,
            "<b>\"A & B\"</b> /  / alertname=InstanceDown;job=node;severity=critical;"
        );
    }

    #[test]
    fn check_rejects_syntax_errors_only() {
        let templates = Templates::new();
        for bad in ["{{ foo ", "{% if %}", "{% for x in y %}", "{{ x | }}"] {
            let err = templates.check(Engine::Jinja, bad).unwrap_err();
            assert!(err.starts_with("Template Error: "), "{err}");
        }
        let err = templates.check(Engine::Jinja, "{{ foo ").unwrap_err();
        assert!(err.contains("unexpected end of input"), "{err}");
        templates
            .check(Engine::Jinja, "{{ undefined_thing }}")
            .unwrap();
        templates
            .check(Engine::Jinja, "{{ x.y | tojson }}")
            .unwrap();
        templates.check(Engine::Jinja, "plain {text}").unwrap();

        for bad in ["{{#if x}}", "{{ foo "] {
            let err = templates.check(Engine::Handlebars, bad).unwrap_err();
            assert!(err.starts_with("Template Error: "), "{err}");
        }
        templates
            .check(Engine::Handlebars, "{{ undefined_thing }}")
            .unwrap();
    }

    #[test]
    fn render_errors_never_quote_context_values() {
        let context = json!({"token": "s3cr3t-value", "n": 9_223_372_036_854_775_807i64});
        let err = jinja("{{ n * n * n }}", &context).unwrap_err();
        assert!(err.starts_with("Template Error: "), "{err}");
        assert!(err.contains("unable to calculate"), "{err}");
        assert!(
            !err.chars().any(|c| c.is_ascii_digit() && c != '1'),
            "{err}"
        );
        let err = jinja("{% include token %}", &context).unwrap_err();
        assert!(!err.contains("s3cr3t"), "{err}");
        let err = jinja("{{ token + 1 }}", &context).unwrap_err();
        assert!(!err.contains("s3cr3t"), "{err}");
        assert_eq!(
            redact("bad s3cr3t-value and 12".to_owned(), &context),
            "bad <redacted> and 12"
        );
    }

    #[test]
    fn plain_text_skips_the_engines() {
        let templates = Templates::new();
        let context = event();
        for source in ["https://example.com/hook", "{\"a\": 1}\n", "", "line\r\n"] {
            let fast = templates.render(Engine::Jinja, source, &context).unwrap();
            // Same output as the engine itself would give.
            let env = jinja_environment();
            let slow = env.render_str(source, &context).unwrap();
            assert_eq!(fast, slow, "{source:?}");
            assert_eq!(
                templates
                    .render(Engine::Handlebars, source, &context)
                    .unwrap(),
                source
            );
        }
        // Nothing was compiled.
        assert_eq!(templates.inner.jinja.read().unwrap().len, 0);
        assert!(
            templates
                .inner
                .handlebars
                .read()
                .unwrap()
                .get_templates()
                .is_empty()
        );
    }

    #[test]
    fn compiled_templates_are_cached_and_shared_by_clones() {
        let templates = Templates::new();
        let clone = templates.clone();
        let source = "{{ alert_group.id }}";
        templates.check(Engine::Jinja, source).unwrap();
        for _ in 0..3 {
            assert_eq!(
                clone.render(Engine::Jinja, source, &event()).unwrap(),
                "IZQERPWKWCGH1"
            );
        }
        assert_eq!(templates.inner.jinja.read().unwrap().len, 1);
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let templates = templates.clone();
                std::thread::spawn(move || {
                    templates
                        .render(Engine::Handlebars, "{{n}}", &json!({ "n": i }))
                        .unwrap()
                })
            })
            .collect();
        let outs: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(outs, ["0", "1", "2", "3"]);
        assert_eq!(
            templates
                .inner
                .handlebars
                .read()
                .unwrap()
                .get_templates()
                .len(),
            1
        );
    }
}
