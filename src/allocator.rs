//! The process allocator's settings. webhookd's global allocator is mimalloc (set in
//! `main.rs`); with mimalloc's defaults it keeps the memory freed under load committed for
//! a while and commits whole arena chunks eagerly, so a busy server's RSS sat 60-200 MB above
//! what it used (BENCHMARKS.md). [`tune`] makes freed memory go back to the OS at once and
//! arenas commit on demand. Each setting is a default: the matching `MIMALLOC_*`
//! environment variable, read by mimalloc when the process loads, still wins.
//! Depends on nothing else in webhookd.

use libmimalloc_sys::{mi_option_get, mi_option_set_default, mi_option_t};

/// An allocator option webhookd sets a default for.
pub struct Setting {
    /// mimalloc's name of the option (its environment variable is `MIMALLOC_<NAME>`).
    pub name: &'static str,
    option: mi_option_t,
    value: i64,
}

// The option numbers of mimalloc's `mi_option_e` (the same in its v2 and v3 headers;
// libmimalloc-sys names only some of them).
const ARENA_EAGER_COMMIT: mi_option_t = 4;
const PURGE_DELAY: mi_option_t = 15;

/// webhookd's defaults: arenas are committed as they are used (not a chunk at a time), and
/// memory freed is purged (returned to the OS) at once instead of after a delay.
pub const SETTINGS: [Setting; 2] = [
    Setting {
        name: "arena_eager_commit",
        option: ARENA_EAGER_COMMIT,
        value: 0,
    },
    Setting {
        name: "purge_delay",
        option: PURGE_DELAY,
        value: 0,
    },
];

/// Applies [`SETTINGS`] as mimalloc's defaults (options set by the environment keep their
/// value). Call it first thing in `main`.
pub fn tune() {
    for setting in &SETTINGS {
        // SAFETY: mi_option_set_default only stores a value for a valid option number.
        unsafe { mi_option_set_default(setting.option, setting.value as _) };
    }
}

/// The value each of [`SETTINGS`] has now, for the start-up log.
pub fn current() -> Vec<(&'static str, i64)> {
    SETTINGS
        .iter()
        // SAFETY: mi_option_get reads the option's value (initialising it from the
        // environment when it was not yet).
        .map(|s| (s.name, unsafe { mi_option_get(s.option) } as i64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_applied_unless_the_environment_names_them() {
        tune();
        for (name, value) in current() {
            let env = format!("MIMALLOC_{}", name.to_uppercase());
            if std::env::var_os(&env).is_none() {
                assert_eq!(value, 0, "{name}");
            }
        }
    }
}
