//! The event-type catalog: each account declares the event types it emits (name,
//! description, optional JSON Schema), and an emit of a type with a schema must carry data
//! that meets it (checked with the `jsonschema` crate; a violation is INVALID_ARGUMENT naming
//! the failing path, `data.alert_group.id`).
//!
//! The emit path never reads the store for this: `Catalog` keeps each account's compiled
//! schemas in memory. A write through this instance forgets the account's entry at once; an
//! entry older than `CATALOG_TTL` is reloaded by one emit while the others go on with the
//! previous one, so writes made by another instance sharing the database apply within about a
//! second. An account without schemas costs one map lookup per emit. Schemas are compiled
//! once per revision and without remote references (nothing is fetched); patterns use the
//! linear-time `regex` engine, so a tenant's schema cannot make validation backtrack.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::{Caller, Service};
use crate::error::{Error, FieldViolation, Result};
use crate::model::{EventType, Scope, now_ms};

/// Most event types of one account.
pub const MAX_EVENT_TYPES: usize = 1000;

/// Largest JSON Schema, as compact JSON.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;

/// Longest event-type name (as for an emit's `event_type`).
pub const MAX_NAME_CHARS: usize = 256;

/// Longest description.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;

/// How long an account's cached catalog is used before one emit reloads it (the delay after
/// which another instance's change applies here).
pub const CATALOG_TTL: Duration = Duration::from_secs(1);

/// Most schema violations one emit reports.
const MAX_VIOLATIONS: usize = 10;

/// Longest violation text (the validator quotes the offending value).
const MAX_VIOLATION_CHARS: usize = 300;

/// Default and largest page sizes of a listing.
pub const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1000;

/// A new event type, as a caller describes it.
#[derive(Debug, Clone, Default)]
pub struct NewEventType {
    /// Unique within the account.
    pub name: String,
    /// Free text.
    pub description: String,
    /// JSON Schema of the data; None = any data.
    pub json_schema: Option<Value>,
}

/// The fields an update changes (None = keep).
#[derive(Debug, Clone, Default)]
pub struct EventTypePatch {
    /// New description.
    pub description: Option<String>,
    /// New schema; `Some(None)` removes it.
    pub json_schema: Option<Option<Value>>,
}

/// A page of event types with the token of the next one (empty on the last page).
#[derive(Debug, Clone)]
pub struct EventTypePage {
    /// Event types in name order.
    pub event_types: Vec<EventType>,
    /// Token of the next page; empty when this is the last.
    pub next_page_token: String,
}

/// A schema compiled for one revision of an event type.
struct Compiled {
    revision: u64,
    validator: jsonschema::Validator,
}

/// One account's schemas as last loaded.
struct Loaded {
    at: Instant,
    /// Schemas of the types that have one, by name.
    schemas: HashMap<String, Arc<Compiled>>,
    /// An emit is reloading this entry (the others use it meanwhile).
    refreshing: AtomicBool,
}

/// The compiled schemas of every account that emitted lately.
#[derive(Default)]
pub struct Catalog {
    accounts: RwLock<HashMap<String, Arc<Loaded>>>,
    /// Bumped by every write through this instance, so a reload that raced with a write does
    /// not put back what the write replaced.
    writes: AtomicU64,
}

impl Catalog {
    fn cached(&self, account_id: &str) -> Option<Arc<Loaded>> {
        let accounts = self.accounts.read().unwrap_or_else(|e| e.into_inner());
        accounts.get(account_id).cloned()
    }

    /// Drops an account's entry after a write (the next emit reloads it).
    fn forget(&self, account_id: &str) {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut accounts = self.accounts.write().unwrap_or_else(|e| e.into_inner());
        accounts.remove(account_id);
    }
}

/// Clears a `Loaded::refreshing` flag when the reload ends, however it ends.
struct Refreshing<'a>(&'a AtomicBool);

impl Drop for Refreshing<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Compiles a schema: no remote references, linear-time patterns.
fn compile(schema: &Value) -> std::result::Result<jsonschema::Validator, String> {
    jsonschema::options()
        .with_pattern_options(jsonschema::PatternOptions::regex())
        .build(schema)
        .map_err(|e| truncated(e.to_string()))
}

fn truncated(mut text: String) -> String {
    if let Some((at, _)) = text.char_indices().nth(MAX_VIOLATION_CHARS) {
        text.truncate(at);
        text.push('…');
    }
    text
}

/// The dotted path of a JSON pointer into `data`, under `root`: object members as `.name`,
/// array items as `[i]` (`/alert_group/id` -> `data.alert_group.id`).
fn dotted(root: &str, data: &Value, pointer: &str) -> String {
    let mut path = root.to_string();
    let mut at = Some(data);
    for raw in pointer.split('/').skip(1) {
        let segment = raw.replace("~1", "/").replace("~0", "~");
        match at {
            Some(Value::Array(items)) => {
                path.push_str(&format!("[{segment}]"));
                at = segment.parse::<usize>().ok().and_then(|i| items.get(i));
            }
            other => {
                path.push('.');
                path.push_str(&segment);
                at = other.and_then(|v| v.get(&segment));
            }
        }
    }
    path
}

/// The violations of `data` against a schema, each naming its path under `data`.
fn violations(validator: &jsonschema::Validator, data: &Value) -> Vec<FieldViolation> {
    validator
        .iter_errors(data)
        .take(MAX_VIOLATIONS)
        .map(|error| {
            let mut field = dotted("data", data, error.instance_path().as_str());
            // A missing member is named itself, not the object that lacks it.
            if let jsonschema::error::ValidationErrorKind::Required {
                property: Value::String(property),
            } = error.kind()
            {
                field.push('.');
                field.push_str(property);
            }
            FieldViolation::new(field, truncated(error.to_string()))
        })
        .collect()
}

/// The violation of `name`, unless it is a usable event-type name.
fn check_name(name: &str) -> Option<FieldViolation> {
    let problem = if name.trim().is_empty() {
        Some("This field is required.".to_string())
    } else if name.chars().count() > MAX_NAME_CHARS {
        Some(format!("at most {MAX_NAME_CHARS} characters"))
    } else if name.trim() != name {
        Some("must not start or end with whitespace".into())
    } else if name.chars().any(|c| c.is_control() || c == '/') {
        Some("must not contain control characters or '/'".into())
    } else {
        None
    };
    problem.map(|problem| FieldViolation::new("name", problem))
}

/// The violations of a description and a schema (which must compile).
fn check_fields(description: &str, json_schema: Option<&Value>) -> Vec<FieldViolation> {
    let mut found = Vec::new();
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        found.push(FieldViolation::new(
            "description",
            format!("at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    if let Some(schema) = json_schema {
        let bytes = schema.to_string().len();
        if !schema.is_object() {
            found.push(FieldViolation::new(
                "json_schema",
                "must be a JSON Schema object",
            ));
        } else if bytes > MAX_SCHEMA_BYTES {
            found.push(FieldViolation::new(
                "json_schema",
                format!("is {bytes} bytes as JSON; the limit is {MAX_SCHEMA_BYTES} bytes"),
            ));
        } else if let Err(why) = compile(schema) {
            found.push(FieldViolation::new(
                "json_schema",
                format!("not a valid JSON Schema: {why}"),
            ));
        }
    }
    found
}

fn not_found(name: &str) -> Error {
    Error::NotFound {
        kind: "event type",
        id: name.to_string(),
    }
}

/// The page token that resumes a listing after `name`.
fn token_after(name: &str) -> String {
    URL_SAFE_NO_PAD.encode(name.as_bytes())
}

fn parse_page_token(token: &str) -> Result<Option<String>> {
    if token.is_empty() {
        return Ok(None);
    }
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(Some)
        .ok_or_else(|| Error::invalid("page_token", "not a token from a previous page"))
}

impl Service {
    /// Declares an event type; ALREADY_EXISTS when the account has one of that name.
    pub async fn create_event_type(&self, caller: &Caller, new: NewEventType) -> Result<EventType> {
        caller.require(Scope::Write)?;
        let mut violations: Vec<_> = check_name(&new.name).into_iter().collect();
        violations.extend(check_fields(&new.description, new.json_schema.as_ref()));
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        // Counted under the account's write lock (one instance; instances sharing a
        // database may each add one past the bound at the same moment).
        let _writes = self.writes.lock(&caller.account_id).await;
        if self.store.count_event_types(&caller.account_id).await? >= MAX_EVENT_TYPES {
            return Err(Error::ResourceExhausted(format!(
                "an account has at most {MAX_EVENT_TYPES} event types"
            )));
        }
        let now = now_ms();
        let event_type = EventType {
            account_id: caller.account_id.clone(),
            name: new.name,
            description: new.description,
            json_schema: new.json_schema,
            created_at_ms: now,
            updated_at_ms: now,
            revision: self.store.next_id().await?,
        };
        if !self.store.insert_event_type(&event_type).await? {
            return Err(Error::Conflict(format!(
                "event type {:?} already exists",
                event_type.name
            )));
        }
        self.catalog.forget(&caller.account_id);
        Ok(event_type)
    }

    /// One event type of the caller's account.
    pub async fn get_event_type(&self, caller: &Caller, name: &str) -> Result<EventType> {
        caller.require(Scope::Read)?;
        self.store
            .get_event_type(&caller.account_id, name)
            .await?
            .ok_or_else(|| not_found(name))
    }

    /// A page of the account's event types in name order; `page_size` 0 = the default.
    pub async fn list_event_types(
        &self,
        caller: &Caller,
        page_size: i64,
        page_token: &str,
    ) -> Result<EventTypePage> {
        caller.require(Scope::Read)?;
        if page_size < 0 {
            return Err(Error::invalid("page_size", "must not be negative"));
        }
        let limit = match page_size as u64 {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE as u64) as usize,
        };
        let after = parse_page_token(page_token)?;
        let event_types = self
            .store
            .list_event_types(&caller.account_id, after.as_deref(), limit)
            .await?;
        let next_page_token = match event_types.last() {
            Some(last) if event_types.len() == limit => token_after(&last.name),
            _ => String::new(),
        };
        Ok(EventTypePage {
            event_types,
            next_page_token,
        })
    }

    /// Changes an event type's description or schema.
    pub async fn update_event_type(
        &self,
        caller: &Caller,
        name: &str,
        patch: EventTypePatch,
    ) -> Result<EventType> {
        caller.require(Scope::Write)?;
        let violations = check_fields(
            patch.description.as_deref().unwrap_or_default(),
            patch.json_schema.as_ref().and_then(Option::as_ref),
        );
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        let _writes = self.writes.lock(&caller.account_id).await;
        let mut event_type = self
            .store
            .get_event_type(&caller.account_id, name)
            .await?
            .ok_or_else(|| not_found(name))?;
        if let Some(description) = patch.description {
            event_type.description = description;
        }
        if let Some(json_schema) = patch.json_schema {
            event_type.json_schema = json_schema;
        }
        event_type.updated_at_ms = now_ms();
        event_type.revision = self.store.next_id().await?;
        let replaced = self.store.replace_event_type(&event_type).await?;
        self.catalog.forget(&caller.account_id);
        if !replaced {
            return Err(not_found(name));
        }
        Ok(event_type)
    }

    /// Deletes an event type; emits of its name are no longer checked.
    pub async fn delete_event_type(&self, caller: &Caller, name: &str) -> Result<()> {
        caller.require(Scope::Write)?;
        let _writes = self.writes.lock(&caller.account_id).await;
        let deleted = self
            .store
            .delete_event_type(&caller.account_id, name)
            .await?;
        self.catalog.forget(&caller.account_id);
        if !deleted {
            return Err(not_found(name));
        }
        Ok(())
    }

    /// The violations of an emit's data against its type's schema (none when the type has
    /// no schema or is not in the catalog), each naming a path under `data`.
    pub(crate) async fn schema_violations(
        &self,
        account_id: &str,
        event_type: &str,
        data: &Value,
    ) -> Result<Vec<FieldViolation>> {
        let loaded = self.account_schemas(account_id).await?;
        Ok(match loaded.schemas.get(event_type) {
            Some(compiled) => violations(&compiled.validator, data),
            None => Vec::new(),
        })
    }

    /// The account's compiled schemas: the cached entry while it is fresh (or while another
    /// emit reloads it), else reloaded from the store.
    async fn account_schemas(&self, account_id: &str) -> Result<Arc<Loaded>> {
        let cached = self.catalog.cached(account_id);
        if let Some(loaded) = &cached {
            let fresh = loaded.at.elapsed() < CATALOG_TTL;
            if fresh || loaded.refreshing.swap(true, Ordering::SeqCst) {
                return Ok(Arc::clone(loaded));
            }
        }
        let _refreshing = cached.as_ref().map(|l| Refreshing(&l.refreshing));
        let writes = self.catalog.writes.load(Ordering::SeqCst);
        let types = self
            .store
            .list_event_types(account_id, None, MAX_EVENT_TYPES)
            .await?;
        let mut schemas = HashMap::new();
        for event_type in types {
            let Some(schema) = &event_type.json_schema else {
                continue;
            };
            let reused = cached
                .as_ref()
                .and_then(|l| l.schemas.get(&event_type.name))
                .filter(|c| c.revision == event_type.revision)
                .cloned();
            let compiled = match reused {
                Some(compiled) => compiled,
                None => match compile(schema) {
                    Ok(validator) => Arc::new(Compiled {
                        revision: event_type.revision,
                        validator,
                    }),
                    // Checked when written; a schema this version cannot compile is not enforced.
                    Err(why) => {
                        tracing::warn!(
                            account_id,
                            event_type = event_type.name.as_str(),
                            "an event type's JSON Schema does not compile; emits are not checked: {why}"
                        );
                        continue;
                    }
                },
            };
            schemas.insert(event_type.name, compiled);
        }
        let loaded = Arc::new(Loaded {
            at: Instant::now(),
            schemas,
            refreshing: AtomicBool::new(false),
        });
        let mut accounts = self
            .catalog
            .accounts
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if self.catalog.writes.load(Ordering::SeqCst) == writes {
            accounts.insert(account_id.to_string(), Arc::clone(&loaded));
        }
        Ok(loaded)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn violations_name_dotted_paths_into_the_data() {
        let schema = json!({
            "type": "object",
            "properties": {
                "alert_group": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {"id": {"type": "string"}}
                },
                "labels": {"type": "array", "items": {"type": "string"}}
            }
        });
        let validator = compile(&schema).unwrap();
        let wrong_type = json!({"alert_group": {"id": 7}});
        let found = violations(&validator, &wrong_type);
        assert_eq!(found[0].field, "data.alert_group.id");
        let missing = json!({"alert_group": {}});
        assert_eq!(
            violations(&validator, &missing)[0].field,
            "data.alert_group.id"
        );
        let item = json!({"labels": ["a", 2]});
        assert_eq!(violations(&validator, &item)[0].field, "data.labels[1]");
        assert!(violations(&validator, &json!({"alert_group": {"id": "x"}})).is_empty());
    }

    #[test]
    fn pointer_escapes_and_numeric_member_names_are_read_as_written() {
        let data = json!({"a/b": {"0": {"~x": 1}}});
        assert_eq!(dotted("data", &data, "/a~1b/0/~0x"), "data.a/b.0.~x");
        assert_eq!(dotted("data", &data, ""), "data");
    }

    #[test]
    fn schemas_that_cannot_be_used_are_refused_on_json_schema() {
        let remote = json!({"$ref": "https://example.com/schema.json"});
        let invalid = json!({"type": "no-such-type"});
        let not_an_object = json!(true);
        let huge = json!({"description": "x".repeat(MAX_SCHEMA_BYTES)});
        for schema in [remote, invalid, not_an_object, huge] {
            let found = check_fields("", Some(&schema));
            assert_eq!(found.len(), 1, "{schema}");
            assert_eq!(found[0].field, "json_schema");
        }
        assert!(check_fields("", Some(&json!({"type": "object"}))).is_empty());
    }

    #[test]
    fn names_are_bounded_and_addressable() {
        for bad in ["", "  ", " padded", "a/b", "tab\there", &"x".repeat(257)] {
            assert!(check_name(bad).is_some(), "{bad:?}");
        }
        for good in ["alert group created", "incident.resolved", "ü"] {
            assert!(check_name(good).is_none(), "{good:?}");
        }
    }

    #[test]
    fn page_tokens_round_trip_and_junk_is_refused() {
        let token = token_after("alert group created");
        assert_eq!(
            parse_page_token(&token).unwrap().as_deref(),
            Some("alert group created")
        );
        assert_eq!(parse_page_token("").unwrap(), None);
        assert!(parse_page_token("!!!").is_err());
    }
}
