//! Template rendering for webhook `data`, `headers`, `url` and `trigger_template`.
//!
//! Owns the two engines a webhook can choose: Jinja (minijinja, configured like Grafana OnCall's
//! sandboxed Jinja environment, with OnCall's extra filters and `time()`), and handlebars. Also
//! owns OnCall's `escape_payload` ([`escape_strings`]) and trigger truthiness ([`is_truthy`]).
//! Compiled templates are cached by source, so rendering on the hot path does not re-parse.
//!
//! Depends on nothing else in the crate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use handlebars::Handlebars;
use minijinja::value::{Kwargs, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State, Value};
use regex::Regex;

/// Compiled templates kept per engine; the cache is emptied when it grows past this.
const TEMPLATE_CACHE_CAP: usize = 2048;
/// Compiled regexes kept for the `regex_*` filters.
const REGEX_CACHE_CAP: usize = 256;
/// OnCall's (Python's) error text for `tojson` of an undefined value.
const UNDEFINED_JSON: &str = "Object of type Undefined is not JSON serializable";
/// Context values shorter than this are not redacted from error texts.
const REDACT_MIN_LEN: usize = 3;

/// Template engine chosen per webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    #[default]
    Jinja,
    Handlebars,
}

impl Engine {
    /// `""` or `"jinja"` -> Jinja, `"handlebars"` -> Handlebars, anything else -> None.
    pub fn parse(s: &str) -> Option<Engine> {
        match s {
            "" | "jinja" => Some(Engine::Jinja),
            "handlebars" => Some(Engine::Handlebars),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Engine::Jinja => "jinja",
            Engine::Handlebars => "handlebars",
        }
    }
}

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
/// dropped, lenient undefined), Python's spelling of booleans and None, OnCall's filters.
fn jinja_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_debug(false);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_keep_trailing_newline(false);
    env.set_trim_blocks(false);
    env.set_lstrip_blocks(false);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    env.set_formatter(python_formatter);

    env.add_filter("tojson", tojson);
    env.add_filter("json_dumps", tojson);
    env.add_filter("tojson_pretty", tojson_pretty);
    env.add_filter("to_pretty_json", tojson_pretty);
    env.add_filter("b64decode", b64decode);
    env.add_filter("iso8601_to_time", iso8601_to_time);
    env.add_filter("datetimeformat", datetimeformat);
    env.add_function("time", time);

    let regexes = Arc::new(RegexCache::default());
    let cache = regexes.clone();
    env.add_filter(
        "regex_replace",
        move |value: Value, find: String, replace: String| {
            let (Some(text), Some(re)) = (value.as_str(), cache.get(&find)) else {
                return Value::from(());
            };
            Value::from(
                re.replace_all(text, python_replacement(&replace))
                    .into_owned(),
            )
        },
    );
    let cache = regexes.clone();
    env.add_filter("regex_match", move |value: Value, pattern: String| {
        match (value.as_str(), cache.get(&format!(r"\A(?:{pattern})"))) {
            (Some(text), Some(re)) => Value::from(re.is_match(text)),
            _ => Value::from(()),
        }
    });
    env.add_filter("regex_search", move |value: Value, pattern: String| match (
        value.as_str(),
        regexes.get(&pattern),
    ) {
        (Some(text), Some(re)) => Value::from(re.is_match(text)),
        _ => Value::from(()),
    });
    env
}

/// Prints booleans and none like Python (`True`, `False`, `None`), as OnCall's Jinja does.
fn python_formatter(out: &mut Output, state: &State, value: &Value) -> Result<(), Error> {
    let python = match value.kind() {
        ValueKind::Bool if value.is_true() => "True",
        ValueKind::Bool => "False",
        ValueKind::None => "None",
        _ => return minijinja::escape_formatter(out, state, value),
    };
    out.write_str(python).map_err(Error::from)
}

/// minijinja's `tojson`, but an undefined value is an error worded like OnCall's.
fn tojson(value: &Value, indent: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    if value.is_undefined() {
        return Err(Error::new(ErrorKind::InvalidOperation, UNDEFINED_JSON));
    }
    minijinja::filters::tojson(value, indent, kwargs)
}

/// Python's `json.dumps(value, sort_keys=True, indent=4, ensure_ascii=False)`.
fn tojson_pretty(value: &Value) -> Result<Value, Error> {
    if value.is_undefined() {
        return Err(Error::new(ErrorKind::InvalidOperation, UNDEFINED_JSON));
    }
    let mut json = serde_json::to_value(value).map_err(|err| {
        Error::new(ErrorKind::InvalidOperation, "cannot serialize to JSON").with_source(err)
    })?;
    json.sort_all_objects();
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(&json, &mut serializer).map_err(|err| {
        Error::new(ErrorKind::InvalidOperation, "cannot serialize to JSON").with_source(err)
    })?;
    Ok(Value::from(String::from_utf8_lossy(&out).into_owned()))
}

/// Base64 to UTF-8 text; none when the input is not valid base64 of UTF-8.
fn b64decode(value: Value) -> Value {
    value
        .as_str()
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map_or_else(|| Value::from(()), Value::from)
}

/// Parses an ISO 8601 date-time and prints it like Python's `str(datetime)`; none if invalid.
fn iso8601_to_time(value: Value) -> Value {
    value
        .as_str()
        .and_then(DateTime::parse)
        .map_or_else(|| Value::from(()), |dt| Value::from(dt.to_string()))
}

/// strftime-like formatting of a date-time string (default `%H:%M / %d-%m-%Y`, like OnCall);
/// none if the value is not a date-time.
fn datetimeformat(value: Value, format: Option<String>) -> Value {
    let format = format.as_deref().unwrap_or("%H:%M / %d-%m-%Y");
    value
        .as_str()
        .and_then(DateTime::parse)
        .map_or_else(|| Value::from(()), |dt| Value::from(dt.format(format)))
}

/// OnCall's `time()` global: the current UTC time.
fn time() -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(now.as_secs()).unwrap_or_default();
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let of_day = secs.rem_euclid(86_400);
    Value::from(
        DateTime {
            year,
            month,
            day,
            hour: (of_day / 3600) as u32,
            minute: (of_day / 60 % 60) as u32,
            second: (of_day % 60) as u32,
            micros: now.subsec_micros(),
            offset_minutes: Some(0),
        }
        .to_string(),
    )
}

/// Compiled regexes by pattern (None for a pattern that does not compile), bounded.
#[derive(Default)]
struct RegexCache(Mutex<HashMap<String, Option<Regex>>>);

impl RegexCache {
    fn get(&self, pattern: &str) -> Option<Regex> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(re) = map.get(pattern) {
            return re.clone();
        }
        if map.len() >= REGEX_CACHE_CAP {
            map.clear();
        }
        let re = Regex::new(pattern).ok();
        map.insert(pattern.to_owned(), re.clone());
        re
    }
}

/// Python `re.sub` replacement syntax (`\1`, `\g<name>`, `\n`) to the regex crate's (`${1}`).
fn python_replacement(repl: &str) -> String {
    let mut out = String::with_capacity(repl.len());
    let mut chars = repl.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.next() {
                Some(d) if d.is_ascii_digit() => {
                    out.push_str("${");
                    out.push(d);
                    if let Some(d2) = chars.next_if(char::is_ascii_digit) {
                        out.push(d2);
                    }
                    out.push('}');
                }
                Some('g') if chars.peek() == Some(&'<') => {
                    chars.next();
                    out.push_str("${");
                    out.extend(chars.by_ref().take_while(|&c| c != '>'));
                    out.push('}');
                }
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('\\') => out.push('\\'),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

/// A calendar date-time with an optional UTC offset, enough for OnCall's date filters.
#[derive(Debug, PartialEq)]
struct DateTime {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micros: u32,
    offset_minutes: Option<i32>,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

impl DateTime {
    /// Django's `parse_datetime` grammar: `YYYY-MM-DD[T ]HH:MM[:SS[.ffffff]][Z|±HH[:MM]]`.
    fn parse(s: &str) -> Option<DateTime> {
        let s = s.trim();
        let (date, rest) = s.split_at_checked(10)?;
        let mut date_parts = date.split('-');
        let year = parse_digits(date_parts.next()?, 4, 4)?;
        let month = parse_digits(date_parts.next()?, 2, 2)?;
        let day = parse_digits(date_parts.next()?, 2, 2)?;
        let rest = rest.strip_prefix(['T', 't', ' '])?;

        let tz_at = rest.find(['Z', 'z', '+', '-']).unwrap_or(rest.len());
        let (time, tz) = rest.split_at(tz_at);
        let (hms, fraction) = match time.trim_end().split_once(['.', ',']) {
            Some((hms, fraction)) => (hms, Some(fraction)),
            None => (time.trim_end(), None),
        };
        let mut time_parts = hms.split(':');
        let hour = parse_digits(time_parts.next()?, 1, 2)?;
        let minute = parse_digits(time_parts.next()?, 1, 2)?;
        let second = time_parts
            .next()
            .map_or(Some(0), |s| parse_digits(s, 1, 2))?;
        if time_parts.next().is_some() {
            return None;
        }
        let micros = match fraction {
            None => 0,
            Some(f) => {
                let digits = f.get(..f.len().min(6))?;
                parse_digits(f, 1, 12)?;
                parse_digits(digits, 1, 6)? * 10u32.pow(6 - digits.len() as u32)
            }
        };
        let offset_minutes = match tz {
            "" => None,
            "Z" | "z" => Some(0),
            _ => {
                let sign = if tz.starts_with('-') { -1 } else { 1 };
                let tz = &tz[1..];
                let (hh, mm) = match tz.split_once(':') {
                    Some((hh, mm)) => (hh, mm),
                    None => tz.split_at_checked(2.min(tz.len()))?,
                };
                let hh = parse_digits(hh, 2, 2)?;
                let mm = if mm.is_empty() {
                    0
                } else {
                    parse_digits(mm, 2, 2)?
                };
                if hh > 23 || mm > 59 {
                    return None;
                }
                Some(sign * (hh * 60 + mm) as i32)
            }
        };
        let valid = (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(i64::from(year), month)
            && hour < 24
            && minute < 60
            && second < 60;
        valid.then_some(DateTime {
            year: i64::from(year),
            month,
            day,
            hour,
            minute,
            second,
            micros,
            offset_minutes,
        })
    }

    /// A best-effort strftime: `%Y %y %m %d %H %I %M %S %f %p %b %B %a %A %j %z %Z %%`; any
    /// other directive is kept as written.
    fn format(&self, format: &str) -> String {
        let mut out = String::with_capacity(format.len() + 16);
        let mut chars = format.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let Some(directive) = chars.next() else {
                out.push('%');
                break;
            };
            let month_name = MONTHS[self.month as usize - 1];
            let weekday_name = WEEKDAYS[self.weekday()];
            let piece = match directive {
                'Y' => format!("{:04}", self.year),
                'y' => format!("{:02}", self.year.rem_euclid(100)),
                'm' => format!("{:02}", self.month),
                'd' => format!("{:02}", self.day),
                'H' => format!("{:02}", self.hour),
                'I' => format!("{:02}", (self.hour + 11) % 12 + 1),
                'M' => format!("{:02}", self.minute),
                'S' => format!("{:02}", self.second),
                'f' => format!("{:06}", self.micros),
                'p' => (if self.hour < 12 { "AM" } else { "PM" }).to_owned(),
                'b' => month_name[..3].to_owned(),
                'B' => month_name.to_owned(),
                'a' => weekday_name[..3].to_owned(),
                'A' => weekday_name.to_owned(),
                'j' => format!("{:03}", self.day_of_year()),
                'z' => self.offset_minutes.map_or_else(String::new, |m| {
                    format!("{}{:02}{:02}", sign(m), m.abs() / 60, m.abs() % 60)
                }),
                'Z' => match self.offset_minutes {
                    None => String::new(),
                    Some(0) => "UTC".to_owned(),
                    Some(m) => format!("UTC{}{:02}:{:02}", sign(m), m.abs() / 60, m.abs() % 60),
                },
                '%' => "%".to_owned(),
                other => format!("%{other}"),
            };
            out.push_str(&piece);
        }
        out
    }

    /// 0 = Sunday.
    fn weekday(&self) -> usize {
        (days_from_civil(self.year, self.month, self.day) + 4).rem_euclid(7) as usize
    }

    fn day_of_year(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day) - days_from_civil(self.year, 1, 1) + 1
    }
}

/// Python's `str(datetime)`: `2023-08-18 16:34:27.678406+00:00`.
impl std::fmt::Display for DateTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )?;
        if self.micros != 0 {
            write!(f, ".{:06}", self.micros)?;
        }
        if let Some(m) = self.offset_minutes {
            write!(f, "{}{:02}:{:02}", sign(m), m.abs() / 60, m.abs() % 60)?;
        }
        Ok(())
    }
}

fn sign(minutes: i32) -> char {
    if minutes < 0 { '-' } else { '+' }
}

/// ASCII digits only, between `min` and `max` of them.
fn parse_digits(s: &str, min: usize, max: usize) -> Option<u32> {
    let ok = (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if ok { s.parse().ok() } else { None }
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A trimmed OnCall event_data, as in the reference's responses example.
    fn event() -> serde_json::Value {
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

    fn jinja(source: &str, context: &serde_json::Value) -> Result<String, String> {
        Templates::new().render(Engine::Jinja, source, context)
    }

    fn ok(source: &str) -> String {
        jinja(source, &event()).unwrap()
    }

    #[test]
    fn engine_names_round_trip() {
        assert_eq!(Engine::parse(""), Some(Engine::Jinja));
        assert_eq!(Engine::parse("jinja"), Some(Engine::Jinja));
        assert_eq!(Engine::parse("handlebars"), Some(Engine::Handlebars));
        assert_eq!(Engine::parse("mustache"), None);
        for engine in [Engine::Jinja, Engine::Handlebars] {
            assert_eq!(Engine::parse(engine.as_str()), Some(engine));
            let json = serde_json::to_string(&engine).unwrap();
            assert_eq!(json, format!("\"{}\"", engine.as_str()));
            assert_eq!(serde_json::from_str::<Engine>(&json).unwrap(), engine);
        }
        assert_eq!(Engine::default(), Engine::Jinja);
    }

    #[test]
    fn tojson_of_common_labels_is_valid_json() {
        // The data template of the reference's "Demo Webhook".
        let body = ok("{\"labels\" : {{ alert_payload.commonLabels | tojson()}}}");
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["labels"], event()["alert_payload"]["commonLabels"]);
        // Without parentheses, and under OnCall's older name.
        assert_eq!(
            ok("{{ alert_payload.commonLabels | tojson }}"),
            ok("{{ alert_payload.commonLabels | json_dumps }}")
        );
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
    fn tojson_of_undefined_fails_with_oncalls_wording() {
        for filter in ["tojson()", "tojson", "json_dumps", "tojson_pretty"] {
            let err = jinja(
                &format!("{{{{ alert_payload.nope | {filter} }}}}"),
                &event(),
            )
            .unwrap_err();
            assert!(err.starts_with("Template Error: "), "{err}");
            assert!(
                err.contains("Object of type Undefined is not JSON serializable"),
                "{err}"
            );
        }
    }

    #[test]
    fn undefined_values_render_empty_and_python_spells_constants() {
        assert_eq!(ok("[{{ nothing }}][{{ alert_group.nothing }}]"), "[][]");
        assert_eq!(ok("{{ alert_payload.status == 'firing' }}"), "True");
        assert_eq!(ok("{{ alert_group.alerts_count > 5 }}"), "False");
        assert_eq!(ok("{{ alert_group.resolved_at }}"), "None");
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
    fn tojson_pretty_sorts_keys_and_indents_by_four() {
        let expected = "{\n    \"alertname\": \"InstanceDown\",\n    \"job\": \"node\",\n    \"severity\": \"critical\"\n}";
        assert_eq!(
            ok("{{ alert_payload.commonLabels | tojson_pretty }}"),
            expected
        );
        assert_eq!(
            ok("{{ alert_payload.commonLabels | to_pretty_json }}"),
            expected
        );
    }

    #[test]
    fn regex_filters_follow_python_re() {
        assert_eq!(
            ok(r"{{ alert_group.title | regex_replace('\[firing:(\d+)\]', 'x\\1 $') }}"),
            "x2 $ InstanceDown "
        );
        assert_eq!(
            ok(r"{{ 'a-b' | regex_replace('(?P<l>\w)-(?P<r>\w)', '\g<r>+\g<l>') }}"),
            "b+a"
        );
        // match is anchored at the start, search is not.
        assert_eq!(
            ok("{{ alert_group.title | regex_match('Instance') }}"),
            "False"
        );
        assert_eq!(
            ok(r"{{ alert_group.title | regex_match('\[firing') }}"),
            "True"
        );
        assert_eq!(
            ok("{{ alert_group.title | regex_search('Instance') }}"),
            "True"
        );
        assert_eq!(
            ok("{{ alert_group.title | regex_search('^Instance') }}"),
            "False"
        );
        // A bad pattern or a non-string value gives none, as OnCall's filters do.
        assert_eq!(ok("{{ alert_group.title | regex_search('(') }}"), "None");
        assert_eq!(ok("{{ 5 | regex_replace('5', '6') }}"), "None");
    }

    #[test]
    fn python_replacement_syntax_is_translated() {
        assert_eq!(python_replacement(r"\1-\12"), "${1}-${12}");
        assert_eq!(python_replacement(r"\g<name>$"), "${name}$$");
        assert_eq!(python_replacement(r"a\nb\tc\\d\qe\"), "a\nb\tc\\d\\qe\\");
    }

    #[test]
    fn b64decode_decodes_utf8_or_gives_none() {
        let context = json!({"b": "aMOpbGxv", "bad": "!!"});
        assert_eq!(jinja("{{ b | b64decode }}", &context).unwrap(), "héllo");
        assert_eq!(jinja("{{ bad | b64decode }}", &context).unwrap(), "None");
    }

    #[test]
    fn dates_parse_and_format_like_oncall() {
        assert_eq!(
            ok("{{ alert_group.created_at | iso8601_to_time }}"),
            "2023-08-18 16:34:27.678406+00:00"
        );
        assert_eq!(
            ok("{{ alert_group.created_at | iso8601_to_time | datetimeformat }}"),
            "16:34 / 18-08-2023"
        );
        assert_eq!(
            ok("{{ event.time | datetimeformat('%a %d %b %Y %I:%M:%S.%f %p %z %Z %j %% %Q') }}"),
            "Fri 18 Aug 2023 04:34:37.940655 PM +0000 UTC 230 % %Q"
        );
        assert_eq!(ok("{{ 'not a date' | iso8601_to_time }}"), "None");
        assert_eq!(ok("{{ '2023-02-30T00:00' | datetimeformat }}"), "None");
    }

    #[test]
    fn date_parser_accepts_djangos_forms() {
        let dt = DateTime::parse("2024-02-29 7:05-05:30").unwrap();
        assert_eq!(dt.to_string(), "2024-02-29 07:05:00-05:30");
        assert_eq!(dt.format("%A %B %y %H"), "Thursday February 24 07");
        let dt = DateTime::parse("2023-01-01T00:00:00,5+0100").unwrap();
        assert_eq!(dt.to_string(), "2023-01-01 00:00:00.500000+01:00");
        assert_eq!(
            DateTime::parse("2023-01-01T00:00:00")
                .unwrap()
                .format("%z%Z"),
            ""
        );
        assert_eq!(DateTime::parse("2023-13-01T00:00"), None);
        assert_eq!(DateTime::parse("2023-01-01"), None);
        for days in [-719_468, -1, 0, 19_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn time_global_is_now_in_utc() {
        let now = ok("{{ time() }}");
        let dt = DateTime::parse(&now).unwrap();
        assert_eq!(dt.offset_minutes, Some(0));
        assert!(dt.year >= 2024, "{now}");
        assert_eq!(
            ok("{{ time() | datetimeformat('%Y') }}"),
            dt.year.to_string()
        );
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
