//! The budget of one template render. Templates are code written by tenants, so every render
//! is bounded: by minijinja's fuel and recursion limit (Jinja), by a step count and a nesting
//! depth (handlebars, see `templates`), by a cap on the output it may write, and by a wall
//! time checked whenever the render writes output or enters a handlebars block.
//!
//! Neither engine can be interrupted from outside, so the wall time is a check point, not a
//! preemption: between two check points a render is bounded by fuel (Jinja: each instruction
//! costs about one unit; one instruction is at most a 100,000-item `range`, a sort or join of
//! such a list, or minijinja's 100 MB limit on one repeated string) or by steps and depth
//! (handlebars). Memory is bounded per render process: Jinja renders run in a worker whose
//! data segment is capped (`sandbox`); handlebars has no helper that builds a string, so its
//! memory is bounded by its output cap and the event. Depends on nothing else in the crate.

use std::io;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The limits every render runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Jinja fuel (about one unit per instruction) and handlebars steps (one per element
    /// rendered in a block, per iteration) of one render.
    pub fuel: u64,
    /// Deepest handlebars block/partial nesting.
    pub depth: usize,
    /// minijinja's recursion limit (its frames: loops, macro calls, includes; a macro call
    /// takes several).
    pub recursion: usize,
    /// Longest rendered URL, bytes.
    pub url_bytes: usize,
    /// Longest rendered headers template, bytes.
    pub headers_bytes: usize,
    /// Longest rendered body (and trigger_template), bytes.
    pub body_bytes: usize,
    /// Longest one render may take, checked at every output and handlebars block.
    pub wall_time: Duration,
    /// Largest data segment of a Jinja render process, bytes.
    pub memory_bytes: u64,
}

impl Limits {
    /// The default limits with bodies up to `body_bytes` (the event size limit).
    pub fn with_body_limit(body_bytes: usize) -> Limits {
        Limits {
            fuel: 1_000_000,
            depth: 64,
            recursion: 200,
            url_bytes: 8 * 1024,
            headers_bytes: 64 * 1024,
            body_bytes,
            wall_time: Duration::from_secs(2),
            memory_bytes: 512 * 1024 * 1024,
        }
    }
}

/// Why a render failed; the `reason` label of `webhookd_template_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    /// A syntax or evaluation error of the template itself.
    Error,
    /// It ran out of fuel (Jinja) or steps (handlebars).
    Fuel,
    /// It nested or recursed deeper than the limit.
    Depth,
    /// Its output grew past the cap.
    Output,
    /// It ran longer than the wall time.
    Time,
    /// Its render process ran out of memory (or died otherwise).
    Memory,
}

impl Reason {
    /// Every reason, for exporting the metric at zero.
    pub const ALL: [Reason; 6] = [
        Reason::Error,
        Reason::Fuel,
        Reason::Depth,
        Reason::Output,
        Reason::Time,
        Reason::Memory,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Error => "error",
            Reason::Fuel => "fuel",
            Reason::Depth => "depth",
            Reason::Output => "output_size",
            Reason::Time => "wall_time",
            Reason::Memory => "memory",
        }
    }
}

/// A failed render: why, and the message recorded in the response log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub reason: Reason,
    pub message: String,
}

impl Failure {
    /// A template error (syntax or evaluation).
    pub fn error(message: String) -> Failure {
        Failure {
            reason: Reason::Error,
            message,
        }
    }

    /// The budget a render exceeded, worded for the response log.
    pub fn exceeded(reason: Reason, limits: &Limits, cap: usize) -> Failure {
        let message = match reason {
            Reason::Error => "Template Error: the template failed".to_owned(),
            Reason::Fuel => format!(
                "Template Error: the template ran more than {} steps",
                limits.fuel
            ),
            Reason::Depth => "Template Error: the template nested or recursed too deep".to_owned(),
            Reason::Output => {
                format!("Template Error: the rendered text is longer than {cap} bytes")
            }
            Reason::Time => format!(
                "Template Error: the template ran longer than {} ms",
                limits.wall_time.as_millis()
            ),
            Reason::Memory => format!(
                "Template Error: the template used more than {} MiB of memory",
                limits.memory_bytes / (1024 * 1024)
            ),
        };
        Failure { reason, message }
    }
}

/// The running account of one render: the output so far (up to the cap), the steps used,
/// the deadline, and the first budget it exceeded.
pub struct Meter {
    limits: Limits,
    cap: usize,
    deadline: Instant,
    steps: AtomicU64,
    depth: AtomicU64,
    exceeded: Mutex<Option<Reason>>,
}

impl Meter {
    /// A meter for one render whose output may be `cap` bytes long.
    pub fn new(limits: Limits, cap: usize) -> Meter {
        Meter {
            limits,
            cap,
            deadline: Instant::now() + limits.wall_time,
            steps: AtomicU64::new(0),
            depth: AtomicU64::new(0),
            exceeded: Mutex::new(None),
        }
    }

    /// The limits this render runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Records `reason` (the first one recorded is the one reported) and returns it.
    fn exceed(&self, reason: Reason) -> Reason {
        self.exceeded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(reason);
        reason
    }

    /// The budget this render exceeded, if any, as the failure to record.
    pub fn failure(&self) -> Option<Failure> {
        let reason = (*self.exceeded.lock().unwrap_or_else(PoisonError::into_inner))?;
        Some(Failure::exceeded(reason, &self.limits, self.cap))
    }

    /// Marks that the engine ran out of its own fuel.
    pub fn out_of_fuel(&self) {
        self.exceed(Reason::Fuel);
    }

    /// Marks that the engine hit its own recursion limit.
    pub fn too_deep(&self) {
        self.exceed(Reason::Depth);
    }

    /// A check point: Err once the wall time is over.
    pub fn check_time(&self) -> Result<(), Reason> {
        if Instant::now() > self.deadline {
            return Err(self.exceed(Reason::Time));
        }
        Ok(())
    }

    /// Enters a nested block costing `steps`: Err when that exceeds the steps, the depth or
    /// the wall time. Every successful `enter` is paired with a [`Meter::leave`].
    pub fn enter(&self, steps: u64) -> Result<(), Reason> {
        self.check_time()?;
        let used = self.steps.fetch_add(steps, Ordering::Relaxed) + steps;
        if used > self.limits.fuel {
            return Err(self.exceed(Reason::Fuel));
        }
        let depth = self.depth.fetch_add(1, Ordering::Relaxed) + 1;
        if depth > self.limits.depth as u64 {
            self.depth.fetch_sub(1, Ordering::Relaxed);
            return Err(self.exceed(Reason::Depth));
        }
        Ok(())
    }

    /// Leaves a block entered with [`Meter::enter`].
    pub fn leave(&self) {
        self.depth.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where a render writes: keeps at most the meter's cap of bytes and fails the write that
/// would pass it (so an engine stops there), and checks the wall time at every write.
pub struct Sink<'m> {
    meter: &'m Meter,
    out: Vec<u8>,
}

impl<'m> Sink<'m> {
    pub fn new(meter: &'m Meter) -> Sink<'m> {
        Sink {
            meter,
            out: Vec::new(),
        }
    }

    /// Appends `bytes`, or fails (recording why) when over the cap or the wall time.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), Reason> {
        self.meter.check_time()?;
        if self.out.len() + bytes.len() > self.meter.cap {
            return Err(self.meter.exceed(Reason::Output));
        }
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    /// The text written.
    pub fn into_string(self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }
}

impl io::Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.push(buf)
            .map_err(|reason| io::Error::other(reason.as_str()))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl handlebars::Output for Sink<'_> {
    fn write(&mut self, seg: &str) -> io::Result<()> {
        io::Write::write(self, seg.as_bytes()).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            fuel: 10,
            depth: 2,
            recursion: 2,
            url_bytes: 8,
            headers_bytes: 8,
            body_bytes: 8,
            wall_time: Duration::from_secs(60),
            memory_bytes: 1024 * 1024,
        }
    }

    #[test]
    fn the_sink_keeps_output_up_to_the_cap_and_refuses_the_write_past_it() {
        let meter = Meter::new(limits(), 8);
        let mut sink = Sink::new(&meter);
        sink.push(b"12345").unwrap();
        sink.push(b"678").unwrap();
        assert_eq!(sink.push(b"9"), Err(Reason::Output));
        assert_eq!(sink.into_string(), "12345678");
        let failure = meter.failure().unwrap();
        assert_eq!(failure.reason, Reason::Output);
        assert!(
            failure.message.contains("longer than 8 bytes"),
            "{failure:?}"
        );
    }

    #[test]
    fn steps_and_depth_are_counted_per_render() {
        let meter = Meter::new(limits(), 8);
        meter.enter(4).unwrap();
        meter.enter(4).unwrap();
        assert_eq!(meter.enter(1), Err(Reason::Depth));
        meter.leave();
        meter.leave();
        assert_eq!(meter.enter(3), Err(Reason::Fuel));
        // The first budget exceeded is the one reported.
        assert_eq!(meter.failure().unwrap().reason, Reason::Depth);
        assert!(Meter::new(limits(), 8).failure().is_none());
    }

    #[test]
    fn a_render_past_its_wall_time_fails_at_the_next_check_point() {
        let meter = Meter::new(
            Limits {
                wall_time: Duration::ZERO,
                ..limits()
            },
            8,
        );
        let deadline_passed = Instant::now() + Duration::from_millis(1);
        while Instant::now() <= deadline_passed {
            std::hint::spin_loop();
        }
        assert_eq!(Sink::new(&meter).push(b"x"), Err(Reason::Time));
        assert_eq!(meter.failure().unwrap().reason, Reason::Time);
    }

    #[test]
    fn every_reason_has_its_own_label() {
        let labels: std::collections::HashSet<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), Reason::ALL.len());
    }
}
