//! OnCall's Jinja additions: its filters (`tojson`/`json_dumps` with Python's error for an
//! undefined value, `tojson_pretty`, `b64decode`, `iso8601_to_time`, `datetimeformat`, the
//! `regex_*` filters with Python `re` syntax), the `time()` global, and Python's spelling of
//! booleans and none. Registered on the Jinja environment by `templates`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Output, State, Value};
use regex::Regex;

use super::dates::DateTime;

/// Compiled regexes kept for the `regex_*` filters.
const REGEX_CACHE_CAP: usize = 256;
/// OnCall's (Python's) error text for `tojson` of an undefined value.
const UNDEFINED_JSON: &str = "Object of type Undefined is not JSON serializable";

/// Adds OnCall's formatter, filters and globals to `env`.
pub(super) fn register(env: &mut Environment<'static>) {
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
    Value::from(DateTime::now_utc().to_string())
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::templates::tests::{event, jinja, ok};
    use super::*;

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
    fn time_global_is_now_in_utc() {
        let now = ok("{{ time() }}");
        let dt = DateTime::parse(&now).unwrap();
        assert_eq!(dt.format("%Z"), "UTC");
        let year: i32 = dt.format("%Y").parse().unwrap();
        assert!(year >= 2024, "{now}");
        assert_eq!(ok("{{ time() | datetimeformat('%Y') }}"), year.to_string());
    }
}
