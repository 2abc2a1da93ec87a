//! Template rendering for webhook `data`, `headers`, `url` and `trigger_template`.
//!
//! One entry to the two engines a webhook can choose (`jinja`, `handlebars`): every render
//! runs within the [`Limits`] (see `budget`) into an output capped per use (url, headers,
//! body), and a failed render is counted by reason. Also owns OnCall's `escape_payload`
//! ([`escape_strings`]) and trigger truthiness ([`is_truthy`]). Compiled templates are
//! cached by source, so rendering on the hot path does not re-parse; text without template
//! syntax skips the engines. A server renders Jinja in worker processes (`sandbox`, which
//! bounds memory); handlebars renders in-process (no helper of it builds strings).

use std::sync::Arc;

use prometheus::IntCounterVec;

use super::budget::{Failure, Limits, Meter, Reason, Sink};
use super::handlebars::Handlebars;
use super::jinja::Jinja;
use super::sandbox::Sandbox;
use crate::model::Engine;

/// Compiled templates kept per engine; the cache is emptied when it grows past this.
const TEMPLATE_CACHE_CAP: usize = 2048;
/// Context values shorter than this are not redacted from error texts.
const REDACT_MIN_LEN: usize = 3;

/// Renders templates within a budget; cheap to clone (Arc inside), Send + Sync, built once
/// at start.
#[derive(Clone)]
pub struct Templates {
    inner: Arc<Inner>,
}

struct Inner {
    limits: Limits,
    jinja: Jinja,
    handlebars: Handlebars,
    /// Where Jinja renders: in worker processes, or (None) in this process.
    sandbox: Option<Sandbox>,
    /// `webhookd_template_errors_total{reason}`.
    errors: IntCounterVec,
}

impl Templates {
    /// Engines whose every render runs within `limits`, counting failed renders in
    /// `errors` (a counter vector with one `reason` label).
    /// `errors` (a counter vector with one `reason` label). Jinja renders in this process,
    /// with no bound on its memory: for tests of the engines.
    pub fn new(limits: Limits, errors: IntCounterVec) -> Templates {
        Templates::build(limits, errors, None)
    }

    /// As [`Templates::new`], but Jinja renders in the worker processes of `sandbox`.
    pub fn sandboxed(limits: Limits, errors: IntCounterVec, sandbox: Sandbox) -> Templates {
        Templates::build(limits, errors, Some(sandbox))
    }

    fn build(limits: Limits, errors: IntCounterVec, sandbox: Option<Sandbox>) -> Templates {
        for reason in Reason::ALL {
            errors.with_label_values(&[reason.as_str()]);
        }
        Templates {
            inner: Arc::new(Inner {
                jinja: Jinja::new(&limits),
                handlebars: Handlebars::new(),
                sandbox,
                limits,
                errors,
            }),
        }
    }

    /// The limits of every render.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Compile-only check used by validation: Err(message) on a syntax error, e.g.
    /// "Template Error: unexpected end of input ...". Undefined variables are NOT errors here.
    pub fn check(&self, engine: Engine, source: &str) -> Result<(), String> {
        if is_plain(engine, source) {
            return Ok(());
        }
        match engine {
            Engine::Jinja => self
                .inner
                .jinja
                .compiled(source, TEMPLATE_CACHE_CAP)
                .map(drop),
            Engine::Handlebars => self
                .inner
                .handlebars
                .compiled(source, TEMPLATE_CACHE_CAP)
                .map(drop),
        }
    }

    /// Renders `source` with `context` (a JSON object: the OnCall event_data) into at most
    /// `cap` bytes, within the limits. A failure is counted by reason; its message never
    /// contains values from `context`.
    pub fn render(
        &self,
        engine: Engine,
        source: &str,
        context: &serde_json::Value,
        cap: usize,
    ) -> Result<String, Failure> {
        let result = self.render_uncounted(engine, source, context, cap);
        if let Err(failure) = &result {
            self.inner
                .errors
                .with_label_values(&[failure.reason.as_str()])
                .inc();
        }
        result
    }

    fn render_uncounted(
        &self,
        engine: Engine,
        source: &str,
        context: &serde_json::Value,
        cap: usize,
    ) -> Result<String, Failure> {
        let meter = Meter::new(self.inner.limits, cap);
        if is_plain(engine, source) {
            let text = match engine {
                Engine::Jinja => strip_trailing_newline(source),
                Engine::Handlebars => source,
            };
            let mut sink = Sink::new(&meter);
            return match sink.push(text.as_bytes()) {
                Ok(()) => Ok(sink.into_string()),
                Err(reason) => Err(Failure::exceeded(reason, &self.inner.limits, cap)),
            };
        }
        let redact = |message| redact(message, context);
        match (engine, &self.inner.sandbox) {
            (Engine::Jinja, Some(sandbox)) => {
                sandbox.render(&self.inner.limits, source, context, cap)
            }
            (Engine::Jinja, None) => {
                self.inner
                    .jinja
                    .render(source, context, &meter, TEMPLATE_CACHE_CAP, redact)
            }
            (Engine::Handlebars, _) => {
                self.inner
                    .handlebars
                    .render(source, context, &meter, TEMPLATE_CACHE_CAP, redact)
            }
        }
    }
}

/// Renders the Jinja template `source` with `context` in this process (a render worker's
/// job), within `limits` into at most `cap` bytes; error texts are redacted.
pub(super) fn render_jinja(
    jinja: &Jinja,
    limits: &Limits,
    source: &str,
    context: &serde_json::Value,
    cap: usize,
) -> Result<String, Failure> {
    let meter = Meter::new(*limits, cap);
    jinja.render(source, context, &meter, TEMPLATE_CACHE_CAP, |message| {
        redact(message, context)
    })
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
pub(super) fn is_plain(engine: Engine, source: &str) -> bool {
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

    /// Engines with the default limits and a counter of their own.
    pub(in crate::render) fn templates() -> Templates {
        templates_within(Limits::with_body_limit(1024 * 1024))
    }

    pub(in crate::render) fn templates_within(limits: Limits) -> Templates {
        let errors = IntCounterVec::new(
            prometheus::Opts::new("template_errors_total", "failed renders"),
            &["reason"],
        )
        .unwrap();
        Templates::new(limits, errors)
    }

    impl Templates {
        /// Renders into the body cap; the failure's message.
        pub(in crate::render) fn text(
            &self,
            engine: Engine,
            source: &str,
            context: &serde_json::Value,
        ) -> Result<String, String> {
            self.render(engine, source, context, self.limits().body_bytes)
                .map_err(|failure| failure.message)
        }

        /// Failed renders counted for `reason`.
        pub(in crate::render) fn failures(&self, reason: Reason) -> u64 {
            self.inner
                .errors
                .with_label_values(&[reason.as_str()])
                .get()
        }
    }

    pub(in crate::render) fn jinja(
        source: &str,
        context: &serde_json::Value,
    ) -> Result<String, String> {
        templates().text(Engine::Jinja, source, context)
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
        let templates = templates();
        let mut context = event();
        context["alert_group"]["title"] = json!("<b>\"A & B\"</b>");
        let out = templates
            .text(
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
        let templates = templates();
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
        let templates = templates();
        let context = event();
        for source in ["https://example.com/hook", "{\"a\": 1}\n", "", "line\r\n"] {
            let fast = templates.text(Engine::Jinja, source, &context).unwrap();
            // Same output as the engine itself would give.
            let env = super::super::jinja::environment(templates.limits());
            let slow = env.render_str(source, &context).unwrap();
            assert_eq!(fast, slow, "{source:?}");
            assert_eq!(
                templates
                    .text(Engine::Handlebars, source, &context)
                    .unwrap(),
                source
            );
        }
        // Nothing was compiled.
        assert_eq!(templates.inner.jinja.len(), 0);
        assert_eq!(templates.inner.handlebars.len(), 0);
    }

    #[test]
    fn compiled_templates_are_cached_and_shared_by_clones() {
        let templates = templates();
        let clone = templates.clone();
        let source = "{{ alert_group.id }}";
        templates.check(Engine::Jinja, source).unwrap();
        for _ in 0..3 {
            assert_eq!(
                clone.text(Engine::Jinja, source, &event()).unwrap(),
                "IZQERPWKWCGH1"
            );
        }
        assert_eq!(templates.inner.jinja.len(), 1);
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let templates = templates.clone();
                std::thread::spawn(move || {
                    templates
                        .text(Engine::Handlebars, "{{n}}", &json!({ "n": i }))
                        .unwrap()
                })
            })
            .collect();
        let outs: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(outs, ["0", "1", "2", "3"]);
        assert_eq!(templates.inner.handlebars.len(), 1);
    }

    /// Runs `job` on a render pool thread, as the server does.
    fn on_pool<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> T {
        let pool = super::super::pool::Pool::start(1).unwrap();
        futures::executor::block_on(pool.run(job)).expect("the job did not panic")
    }

    fn failure(engine: Engine, source: &'static str, context: serde_json::Value) -> Failure {
        on_pool(move || {
            // A wall time no test reaches, so the budget that stops the render is its own.
            let templates = templates_within(Limits {
                wall_time: std::time::Duration::from_secs(3600),
                ..Limits::with_body_limit(1024 * 1024)
            });
            let failure = templates
                .render(engine, source, &context, templates.limits().url_bytes)
                .unwrap_err();
            assert_eq!(templates.failures(failure.reason), 1, "{failure:?}");
            failure
        })
    }

    fn items(n: usize) -> serde_json::Value {
        json!({ "items": (0..n).collect::<Vec<_>>() })
    }

    #[test]
    fn a_recursive_handlebars_partial_is_a_depth_error() {
        let failure = failure(
            Engine::Handlebars,
            r#"{{#*inline "p"}}{{> p}}{{/inline}}{{> p}}"#,
            event(),
        );
        assert_eq!(failure.reason, Reason::Depth);
        assert_eq!(
            failure.message,
            "Template Error: the template nested or recursed too deep"
        );
    }

    #[test]
    fn nested_loops_run_out_of_fuel() {
        let loops =
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}true";
        assert_eq!(failure(Engine::Jinja, loops, event()).reason, Reason::Fuel);
        let triple = "{% for a in items %}{% for b in items %}{% for c in items %}{% endfor %}{% endfor %}{% endfor %}";
        assert_eq!(
            failure(Engine::Jinja, triple, items(20_000)).reason,
            Reason::Fuel
        );
        let each =
            "{{#each items}}{{#each ../items}}{{#each ../../items}}{{/each}}{{/each}}{{/each}}";
        let failure = failure(Engine::Handlebars, each, items(20_000));
        assert_eq!(failure.reason, Reason::Fuel);
        assert_eq!(
            failure.message,
            "Template Error: the template ran more than 1000000 steps"
        );
    }

    #[test]
    fn output_past_the_cap_stops_the_render() {
        let url = failure(
            Engine::Jinja,
            r#"http://host/{{ "a" * 100000000 }}"#,
            event(),
        );
        assert_eq!(url.reason, Reason::Output);
        assert_eq!(
            url.message,
            "Template Error: the rendered text is longer than 8192 bytes"
        );
        // Output written piece by piece stops at the write that passes the cap.
        let loop_output = "{% for i in range(100000) %}{{ i }}{% endfor %}";
        assert_eq!(
            failure(Engine::Jinja, loop_output, event()).reason,
            Reason::Output
        );
        let each_output = "{{#each items}}{{this}}{{/each}}";
        assert_eq!(
            failure(Engine::Handlebars, each_output, items(20_000)).reason,
            Reason::Output
        );
        let plain: &'static str = "x".repeat(9000).leak();
        assert_eq!(
            failure(Engine::Jinja, plain, event()).reason,
            Reason::Output
        );
    }

    #[test]
    fn what_minijinja_contains_stays_contained() {
        assert_eq!(
            failure(
                Engine::Jinja,
                "{% for i in range(100000000) %}{% endfor %}",
                event()
            )
            .reason,
            Reason::Error
        );
        let recursive = "{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}";
        assert_eq!(
            failure(Engine::Jinja, recursive, event()).reason,
            Reason::Depth
        );
        let huge = failure(Engine::Jinja, r#"{{ "x" * 1000000000 }}"#, event());
        assert_eq!(huge.reason, Reason::Error);
        assert!(huge.message.contains("too large"), "{huge:?}");
        // The regex crate does not backtrack: no match, and at once.
        let backtracking = "{{ ('a' * 100000 ~ 'b') | regex_search('(a+)+$') }}";
        let rendered = on_pool(move || templates().text(Engine::Jinja, backtracking, &event()));
        assert_eq!(rendered.unwrap(), "False");
    }

    #[test]
    fn deep_handlebars_nesting_is_a_depth_error() {
        let source: &'static str =
            format!("{}x{}", "{{#if a}}".repeat(100), "{{/if}}".repeat(100)).leak();
        let failure = failure(Engine::Handlebars, source, json!({"a": true}));
        assert_eq!(failure.reason, Reason::Depth);
    }

    #[test]
    fn a_render_past_its_wall_time_is_a_time_error() {
        let failure = on_pool(|| {
            let templates = templates_within(Limits {
                wall_time: std::time::Duration::ZERO,
                ..Limits::with_body_limit(1024)
            });
            templates
                .render(Engine::Jinja, "{{ a }}", &json!({"a": 1}), 1024)
                .unwrap_err()
        });
        assert_eq!(failure.reason, Reason::Time);
        assert_eq!(
            failure.message,
            "Template Error: the template ran longer than 0 ms"
        );
    }

    #[test]
    fn budgeted_handlebars_keeps_blocks_partials_and_their_variables() {
        let context = json!({
            "name": "db",
            "alerts": [{"id": "a1", "labels": {"sev": "high"}}, {"id": "a2", "labels": {}}],
            "empty": []
        });
        let cases = [
            (
                "{{#each alerts}}{{@index}}{{#if @first}}F{{/if}}{{#if @last}}L{{/if}}={{id}}/{{../name}};{{/each}}",
                "0F=a1/db;1L=a2/db;",
            ),
            (
                "{{#each alerts as |alert i|}}{{i}}:{{alert.id}}{{#each alert.labels}}[{{@key}}={{this}}]{{/each}} {{/each}}",
                "0:a1[sev=high] 1:a2 ",
            ),
            ("{{#each empty}}x{{else}}none{{/each}}", "none"),
            ("{{#with alerts.[0]}}{{id}}{{/with}}", "a1"),
            ("{{#unless empty}}u{{else}}not{{/unless}}", "u"),
            ("{{lookup alerts.[1] \"id\"}}", "a2"),
            (
                "{{#*inline \"row\"}}<{{id}}>{{/inline}}{{#each alerts}}{{> row}}{{/each}}",
                "<a1><a2>",
            ),
            (
                "{{#*inline \"box\"}}[{{> @partial-block}}]{{/inline}}{{#> box}}in {{name}}{{/box}}",
                "[in db]",
            ),
            ("{{#> missing}}fallback{{/missing}}", "fallback"),
            ("{{#if empty}}a{{else if name}}b{{else}}c{{/if}}", "b"),
            ("[ {{~#if name~}} x {{~/if~}} ]", "[x]"),
        ];
        let templates = templates();
        for (source, expected) in cases {
            let rendered = templates.text(Engine::Handlebars, source, &context);
            assert_eq!(rendered.as_deref(), Ok(expected), "{source}");
        }
        // A partial can only be one the template defines: other templates are not partials.
        templates.check(Engine::Handlebars, "secret").unwrap();
        templates.check(Engine::Handlebars, "{{name}}").unwrap();
        let err = templates
            .text(Engine::Handlebars, "{{> [{{name}}] }}", &context)
            .unwrap_err();
        assert!(
            err.contains("not found") || err.contains("Partial"),
            "{err}"
        );
    }
}
