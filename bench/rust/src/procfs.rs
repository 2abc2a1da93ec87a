//! What the bench reads about a process from /proc: CPU time (utime + stime of all its
//! threads, `/proc/<pid>/stat`), context switches (voluntary + involuntary, summed over
//! `/proc/<pid>/task/*/status`; exited threads' are lost) and peak RSS (`VmHWM`).
//! A [`Snapshot`] of named roles taken at both ends of a phase gives its CPU split.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// CPU time of a process in milliseconds, or None when it is gone.
pub fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 * 1000.0 / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// Context switches of all live threads of a process.
pub fn context_switches(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0;
    for task in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue; // the thread ended meanwhile
        };
        total += status
            .lines()
            .filter(|l| {
                l.starts_with("voluntary_ctxt_switches")
                    || l.starts_with("nonvoluntary_ctxt_switches")
            })
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    Some(total)
}

/// Peak resident set size (VmHWM) in MB.
pub fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// The processes of one role (e.g. every webhookd instance).
#[derive(Debug, Clone)]
pub struct Role {
    pub name: &'static str,
    pub pids: Vec<u32>,
}

/// CPU time and context switches of every role at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    at: Instant,
    roles: Vec<(&'static str, f64, u64)>,
}

impl Snapshot {
    pub fn take(roles: &[Role]) -> Self {
        let roles = roles
            .iter()
            .map(|r| {
                let cpu = r.pids.iter().filter_map(|&p| cpu_ms(p)).sum();
                let switches = r.pids.iter().filter_map(|&p| context_switches(p)).sum();
                (r.name, cpu, switches)
            })
            .collect();
        Self {
            at: Instant::now(),
            roles,
        }
    }

    /// What each role used between `self` and the later `end`.
    pub fn split(&self, end: &Snapshot) -> BTreeMap<String, RoleCpu> {
        let wall_ms = end.at.duration_since(self.at).as_secs_f64() * 1000.0;
        self.roles
            .iter()
            .zip(&end.roles)
            .map(|((name, cpu0, sw0), (_, cpu1, sw1))| {
                let cpu_ms = (cpu1 - cpu0).max(0.0);
                let role = RoleCpu {
                    cpu_ms,
                    cores: if wall_ms > 0.0 { cpu_ms / wall_ms } else { 0.0 },
                    context_switches: sw1.saturating_sub(*sw0),
                };
                (name.to_string(), role)
            })
            .collect()
    }
}

/// One role's share of a phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RoleCpu {
    /// utime + stime over the phase's window.
    pub cpu_ms: f64,
    /// cpu_ms / the window's wall time (2.0 = both cores of a 2-core machine).
    pub cores: f64,
    pub context_switches: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_seen_and_a_missing_one_is_not() {
        let me = std::process::id();
        assert!(cpu_ms(me).is_some());
        assert!(context_switches(me).is_some());
        assert!(peak_rss_mb(me).unwrap() > 0.0);
        assert_eq!(cpu_ms(u32::MAX), None);
        assert_eq!(peak_rss_mb(u32::MAX), None);
    }

    #[test]
    fn work_done_between_two_snapshots_shows_in_the_split() {
        let me = std::process::id();
        let roles = [Role {
            name: "me",
            pids: vec![me],
        }];
        let start = Snapshot::take(&roles);
        let before = cpu_ms(me).unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        let mut x = 0u64;
        while cpu_ms(me).unwrap() <= before && Instant::now() < deadline {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        let split = start.split(&Snapshot::take(&roles));
        let me = split["me"];
        assert!(me.cpu_ms > 0.0, "{me:?}");
        assert!(me.cores > 0.0, "{me:?}");
    }
}
