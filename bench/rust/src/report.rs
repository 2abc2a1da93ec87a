//! `report`: the Markdown part of a BENCHMARKS.md section for the Rust tools' results in a run's
//! results directory (`rs_ceiling.json`, then every other `rs_*.json` as an `EmitResult`): one
//! row per phase with its ratio to the ceiling measured in the same run, the CPU split and
//! webhookd's CPU per delivery, then issue 15's and issue 14's targets with met / MISSED and
//! the Svix / Outpost figures the issues measured, for the CPU class of this machine. The
//! kill -9 storm (`storm_*.json`, a `StormResult` per store) gets a table of its own and a
//! target row: nothing acknowledged lost, duplicates <= 1% of the acknowledged events.

use std::fmt::Write;
use std::path::Path;

use anyhow::{Context, Result};

use crate::loadgen::storm::StormResult;
use crate::loadgen::{CeilingResult, EmitResult};

/// The machine classes the issues measured Svix on (from /proc/cpuinfo's model name).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CpuClass {
    Xeon,
    Epyc,
    Other,
}

impl CpuClass {
    pub fn of(model: &str) -> Self {
        if model.contains("EPYC") {
            Self::Epyc
        } else if model.contains("Xeon") {
            Self::Xeon
        } else {
            Self::Other
        }
    }

    /// Issue 15's events/s at 8 producers (10x Svix) and issue 14's (3x Svix).
    fn single_event_targets(self) -> (f64, f64) {
        match self {
            Self::Epyc => (9_400.0, 2_800.0),
            Self::Xeon | Self::Other => (12_600.0, 3_800.0),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Xeon => "Intel Xeon",
            Self::Epyc => "AMD EPYC",
            Self::Other => "neither Xeon nor EPYC: the Xeon targets apply",
        }
    }
}

/// The model name of this machine's first CPU.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_default()
}

/// Renders the results in `dir`.
pub fn render(dir: &Path, cpu_model: &str) -> Result<String> {
    let (ceiling, mut phases, storms) = load(dir)?;
    phases.sort_by_key(|r| (order(&r.mode), r.instances, r.producers, r.webhooks));
    let class = CpuClass::of(cpu_model);
    let c = ceiling.as_ref().map_or(0.0, |c| c.requests_per_s);
    let ratio = |x: f64| {
        if c > 0.0 {
            format!("{:.1}%", 100.0 * x / c)
        } else {
            "n/a".into()
        }
    };
    let mut out = String::new();
    let mut stores: Vec<String> = phases.iter().map(|r| r.store.clone()).collect();
    stores.sort();
    stores.dedup();
    let stores = if stores.is_empty() {
        String::new()
    } else {
        format!("; store: {}", stores.join(", "))
    };
    let _ = writeln!(
        out,
        "\n### Rust receiver and load generator (issue 15)\n\nCPU class: {}{stores}. \
         Ratios are deliveries/s to the receiver ceiling of this run; CPU in cores over each phase's window \
         (utime + stime from /proc, 2.00 = both cores of a 2-core machine).\n",
        class.label(),
    );
    if ceiling.is_some() || !phases.is_empty() {
        out.push_str(
        "| # | phase | delivered | ratio to ceiling | emit->arrival p50 / p99 | duplicates | CPU webhookd / receiver / loadgen (cores) | webhookd CPU per delivery | webhookd context switches per delivery | webhookd peak RSS |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
        if let Some(ceil) = &ceiling {
            let _ = writeln!(
                out,
                "| R1 | receiver ceiling: loadgen -> receiver, {} keep-alive conns, ~1 KB POSTs | {} req/s (request p50 {:.2} ms, p99 {:.2} ms{}{}) | 100% | - | - | - / {} / {} | - | - | - |",
                ceil.connections,
                thousands(ceil.requests_per_s),
                ceil.latency.p50_ms,
                ceil.latency.p99_ms,
                errors_note(ceil.errors, &ceil.first_error),
                CeilingCpu::of(ceil).map_or(String::new(), |c| format!("; {c}")),
                cores(&ceil.cpu, "receiver"),
                cores(&ceil.cpu, "loadgen"),
            );
        }
        for r in &phases {
            let delivered = if r.webhooks == 1 {
                format!("{} events/s", thousands(r.delivered_events_per_s))
            } else {
                format!(
                    "{} deliveries/s = {} events/s",
                    thousands(r.deliveries_per_s),
                    thousands(r.delivered_events_per_s)
                )
            };
            let _ = writeln!(
                out,
                "| {} | {} | {delivered} (accepted {}/s, backlog at end {}{}{}{}) | {} | {:.2} / {:.2} ms | {} | {} / {} / {} | {} | {} | {} |",
                phase_number(&r.mode),
                describe(r),
                thousands(r.accepted_per_s),
                r.backlog_at_end,
                if r.missing_after_drain != 0 {
                    format!(", missing after drain {}", r.missing_after_drain)
                } else {
                    String::new()
                },
                match r.receiver_connections {
                    0 => String::new(),
                    1 => ", on 1 connection".into(),
                    n => format!(", on {n} connections"),
                },
                errors_note(r.emit_errors, &r.first_error),
                ratio(r.deliveries_per_s),
                r.arrival_latency.p50_ms,
                r.arrival_latency.p99_ms,
                r.duplicates,
                cores(&r.cpu, "webhookd"),
                cores(&r.cpu, "receiver"),
                cores(&r.cpu, "loadgen"),
                r.webhookd_cpu_ms_per_delivery
                    .map_or("n/a".into(), |v| format!("{v:.3} ms")),
                r.webhookd_context_switches_per_delivery
                    .map_or("n/a".into(), |v| format!("{v:.1}")),
                r.webhookd_peak_rss_mb
                    .map_or("n/a".into(), |v| format!("{v:.0} MB")),
            );
        }
    }
    storm_table(&mut out, &storms);
    targets(&mut out, class, ceiling.as_ref(), &phases, &storms);
    Ok(out)
}

/// The kill -9 storm's rows (none when it did not run).
fn storm_table(out: &mut String, storms: &[StormResult]) {
    if storms.is_empty() {
        return;
    }
    out.push_str(
        "\n| # | kill -9 storm | acknowledged | lost | duplicates | duplicates by 2xx answer -> next kill: read after the kill / < 5 ms / 5-50 ms / 50-500 ms / >= 500 ms / no kill between | restart -> ready p50 / max | drain |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for r in storms {
        let [a, b, c, d, e, f] = r.duplicates_by_answer_to_kill;
        let _ = writeln!(
            out,
            "| R5 | {} producers, {} {} instance, {} SIGKILLs in {:.0} s (every {}-{} s), receiver answering {}% 500 ({} of {} requests) | {} ({}/s; {} emits unanswered and repeated{}) | {} | {} = {:.2}% | {a} / {b} / {c} / {d} / {e} / {f} | {:.0} / {:.0} ms | {:.1} s{} |",
            r.producers,
            r.instances,
            r.store,
            r.kills,
            r.storm_s,
            r.kill_interval_s.0,
            r.kill_interval_s.1,
            r.fail_percent,
            thousands(r.failed_answers as f64),
            thousands(r.arrivals as f64),
            thousands(r.acknowledged as f64),
            thousands(r.acknowledged_per_s),
            thousands(r.unanswered_emits as f64),
            if r.unacknowledged_delivered != 0 {
                format!(
                    ", {} delivered events not acknowledged",
                    r.unacknowledged_delivered
                )
            } else {
                String::new()
            },
            r.lost,
            thousands(r.duplicates as f64),
            r.duplicates_pct,
            r.restart_to_ready.p50_ms,
            r.restart_to_ready.max_ms,
            r.drain_s,
            if r.drained {
                ""
            } else {
                " (deadline: not all arrived)"
            },
        );
    }
}

type Loaded = (Option<CeilingResult>, Vec<EmitResult>, Vec<StormResult>);

fn load(dir: &Path) -> Result<Loaded> {
    let mut ceiling = None;
    let mut phases = Vec::new();
    let mut storms = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| (n.starts_with("rs_") || n.starts_with("storm_")) && n.ends_with(".json"))
        .collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let parsing = || format!("parsing {}", path.display());
        if name == "rs_ceiling.json" {
            ceiling = Some(serde_json::from_str(&text).with_context(parsing)?);
        } else if name.starts_with("storm_") {
            storms.push(serde_json::from_str(&text).with_context(parsing)?);
        } else {
            let result = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            phases.push(result);
        }
    }
    Ok((ceiling, phases, storms))
}

fn order(mode: &str) -> u8 {
    match mode {
        "rest" => 0,
        "rate" => 1,
        _ => 2,
    }
}

fn phase_number(mode: &str) -> &'static str {
    match mode {
        "rest" => "R2",
        "rate" => "R3",
        _ => "R4",
    }
}

fn describe(r: &EmitResult) -> String {
    let on = format!(
        "{} webhook{}, {} {} instance{}",
        r.webhooks,
        if r.webhooks == 1 { "" } else { "s" },
        r.instances,
        r.store,
        if r.instances == 1 { "" } else { "s" }
    );
    match r.mode.as_str() {
        "rest" => format!(
            "single-event REST emit (POST /api/v1/events/), {} producers, {on}",
            r.producers
        ),
        "rate" => format!(
            "fixed {} events/s (POST /api/v1/events/, open loop{}), {on}",
            thousands(r.target_rate.unwrap_or(0.0)),
            if r.not_sent_client_saturated > 0 {
                format!(", {} ticks dropped", r.not_sent_client_saturated)
            } else {
                String::new()
            }
        ),
        _ => format!(
            "batch emit (POST /api/v1/events/batch/, {} events each), {} producers, {on}",
            r.batch, r.producers
        ),
    }
}

fn targets(
    out: &mut String,
    class: CpuClass,
    ceiling: Option<&CeilingResult>,
    phases: &[EmitResult],
    storms: &[StormResult],
) {
    let (ten_x, three_x) = class.single_event_targets();
    let one = |mode: &str, producers: usize, webhooks: usize| {
        phases.iter().find(|r| {
            r.mode == mode
                && r.instances == 1
                && r.webhooks == webhooks
                && (mode == "rate" || r.producers == producers)
        })
    };
    let verdict = |ok: Option<bool>| match ok {
        Some(true) => "**met**",
        Some(false) => "**MISSED**",
        None => "n/a (not run)",
    };
    let svix8 =
        "Svix 1,261/s, p99 14 ms (Xeon), ~940/s (EPYC); Outpost (tuned) 1,714/s, p99 71 ms (Xeon)";
    out.push_str(
        "\n| target | measured | verdict | reference (same machine class) |\n|---|---|---|---|\n",
    );
    let mut row = |target: String, measured: String, ok: Option<bool>, reference: &str| {
        let _ = writeln!(
            out,
            "| {target} | {measured} | {} | {reference} |",
            verdict(ok)
        );
    };
    let rps = ceiling.map(|c| c.requests_per_s);
    let projected = ceiling.and_then(CeilingCpu::of).map_or(String::new(), |c| {
        format!(
            " ({:.2} of {} cores used; at {} cores this CPU per request makes {} req/s)",
            c.cores_used,
            c.machine_cores,
            c.machine_cores,
            thousands(c.at_all_cores)
        )
    });
    row(
        "(15) receiver ceiling >= 100,000 req/s: the bench sees the limit".into(),
        rps.map_or("-".into(), |v| format!("{} req/s{projected}", thousands(v))),
        rps.map(|v| v >= 100_000.0),
        "Go receiver of issue 7: ~15,500 req/s",
    );
    let rest8 = one("rest", 8, 1);
    row(
        format!(
            "(15.1) single-event REST emit, 8 producers, 1 webhook: >= {} events/s delivered (10x Svix, {})",
            thousands(ten_x),
            class.label()
        ),
        rest8.map_or("-".into(), |r| {
            format!("{} events/s", thousands(r.delivered_events_per_s))
        }),
        rest8.map(|r| r.delivered_events_per_s >= ten_x),
        svix8,
    );
    let rest64 = one("rest", 64, 1);
    row(
        "(15.1) the same at 64 producers: >= 18,000 events/s (15x Svix)".into(),
        rest64.map_or("-".into(), |r| {
            format!("{} events/s", thousands(r.delivered_events_per_s))
        }),
        rest64.map(|r| r.delivered_events_per_s >= 18_000.0),
        "Svix 1,205/s, p99 120 ms; Outpost (tuned) 2,389/s, p99 126 ms (Xeon)",
    );
    row(
        "(15.1) p99 emit->arrival <= 5 ms at 8 producers".into(),
        rest8.map_or("-".into(), |r| {
            format!("{:.2} ms", r.arrival_latency.p99_ms)
        }),
        rest8.map(|r| r.arrival_latency.n > 0 && r.arrival_latency.p99_ms <= 5.0),
        "Svix p99 14 ms, Outpost p99 71 ms at 8 producers",
    );
    let rate = one("rate", 0, 1);
    row(
        "(15.1) p99 emit->arrival <= 5 ms at a fixed 1,000 events/s (rate achieved, none missing)"
            .into(),
        rate.map_or("-".into(), |r| {
            format!(
                "{:.2} ms at {}/s accepted, {} missing, {} dropped",
                r.arrival_latency.p99_ms,
                thousands(r.accepted_per_s),
                r.missing_after_drain,
                r.not_sent_client_saturated
            )
        }),
        rate.map(|r| {
            let wanted = r.target_rate.unwrap_or(0.0);
            r.arrival_latency.n > 0
                && r.arrival_latency.p99_ms <= 5.0
                && r.accepted_per_s >= 0.95 * wanted
                && r.missing_after_drain <= 0
                && r.not_sent_client_saturated == 0
        }),
        "",
    );
    let rss = phases
        .iter()
        .filter_map(|r| r.webhookd_peak_rss_mb)
        .reduce(f64::max);
    row(
        "(15.1) webhookd peak RSS under load <= 200 MB (largest of the phases)".into(),
        rss.map_or("-".into(), |v| format!("{v:.0} MB")),
        rss.map(|v| v <= 200.0),
        "issue 15 as landed: 90-160 MB",
    );
    for webhooks in [1, 10] {
        let b = phases.iter().find(|r| {
            r.mode == "batch" && r.instances == 1 && r.webhooks == webhooks && r.batch == 50
        });
        row(
            format!(
                "(15.2) batch emit of 50 events, {webhooks} webhook(s) per event: >= 25,000 deliveries/s end to end"
            ),
            b.map_or("-".into(), |r| {
                format!("{} deliveries/s", thousands(r.deliveries_per_s))
            }),
            b.map(|r| r.deliveries_per_s >= 25_000.0),
            "",
        );
    }
    let single: Vec<&EmitResult> = phases
        .iter()
        .filter(|r| r.webhooks == 1 && r.instances == 1 && r.mode != "rate")
        .collect();
    let cpu: Vec<(String, f64)> = single
        .iter()
        .filter_map(|r| {
            let name = match r.mode.as_str() {
                "rest" => format!("REST x{}", r.producers),
                _ => format!("batch x{}", r.producers),
            };
            Some((name, r.webhookd_cpu_ms_per_delivery?))
        })
        .collect();
    row(
        "(15.3) webhookd CPU <= 0.1 ms per event+delivery, 1 webhook (every closed-loop 1-webhook phase)".into(),
        if cpu.is_empty() {
            "-".into()
        } else {
            cpu.iter()
                .map(|(n, v)| format!("{n}: {v:.3} ms"))
                .collect::<Vec<_>>()
                .join(", ")
        },
        (!cpu.is_empty()).then(|| cpu.iter().all(|(_, v)| *v <= 0.1)),
        "",
    );
    let dups: u64 = phases.iter().map(|r| r.duplicates).sum();
    row(
        "(15) no duplicate deliveries without failures".into(),
        format!("{dups} duplicates over {} phases", phases.len()),
        (!phases.is_empty()).then_some(dups == 0),
        "issue 15 as landed: zero",
    );
    let storm = storms.iter().find(|r| r.store == "sled").or(storms.first());
    row(
        "(15.4) kill -9 storm (SIGKILL every 1.5-3 s under load, receiver answering 10% 500): nothing acknowledged lost, duplicates <= 1% of acknowledged events".into(),
        storm.map_or("-".into(), |r| {
            format!(
                "{} lost, {:.2}% duplicates ({} of {}) on {}",
                r.lost,
                r.duplicates_pct,
                thousands(r.duplicates as f64),
                thousands(r.acknowledged as f64),
                r.store
            )
        }),
        storm.map(|r| r.drained && r.lost == 0 && r.duplicates_pct <= 1.0),
        "issue 15: 3.2% measured",
    );
    row(
        format!(
            "(14) >= 3x Svix on one instance at 8 producers: >= {} events/s ({}), p99 < 20 ms (issue 14 asks it of PostgreSQL)",
            thousands(three_x),
            class.label()
        ),
        rest8.map_or("-".into(), |r| {
            format!(
                "{} events/s, p99 {:.2} ms on {}",
                thousands(r.delivered_events_per_s),
                r.arrival_latency.p99_ms,
                r.store
            )
        }),
        rest8.map(|r| {
            r.delivered_events_per_s >= three_x
                && r.arrival_latency.n > 0
                && r.arrival_latency.p99_ms < 20.0
        }),
        svix8,
    );
}

/// The ceiling's CPU per request: on a machine other work shares, the processes get less than
/// all cores, and the req/s they would make on all of them is what bounds the bench.
struct CeilingCpu {
    receiver_us: f64,
    loadgen_us: f64,
    cores_used: f64,
    machine_cores: usize,
    at_all_cores: f64,
}

impl CeilingCpu {
    fn of(ceil: &CeilingResult) -> Option<Self> {
        let requests = ceil.requests_per_s * ceil.window_s;
        let (receiver, loadgen) = (ceil.cpu.get("receiver")?, ceil.cpu.get("loadgen")?);
        if requests <= 0.0 || receiver.cpu_ms <= 0.0 || loadgen.cpu_ms <= 0.0 {
            return None;
        }
        let per_request_us = |cpu_ms: f64| cpu_ms * 1000.0 / requests;
        let (receiver_us, loadgen_us) = (
            per_request_us(receiver.cpu_ms),
            per_request_us(loadgen.cpu_ms),
        );
        let machine_cores = ceil.machine_cores.max(1);
        Some(Self {
            receiver_us,
            loadgen_us,
            cores_used: receiver.cores + loadgen.cores,
            machine_cores,
            at_all_cores: machine_cores as f64 * 1e6 / (receiver_us + loadgen_us),
        })
    }
}

impl std::fmt::Display for CeilingCpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CPU per request: receiver {:.1} us + loadgen {:.1} us",
            self.receiver_us, self.loadgen_us
        )
    }
}

fn cores(cpu: &std::collections::BTreeMap<String, crate::procfs::RoleCpu>, role: &str) -> String {
    cpu.get(role)
        .map_or("n/a".into(), |r| format!("{:.2}", r.cores))
}

fn errors_note(errors: u64, first: &Option<String>) -> String {
    match first {
        Some(e) if errors > 0 => format!(", {errors} errors, first: {}", e.replace('|', "/")),
        _ => String::new(),
    }
}

/// 12345.6 -> "12,346".
pub fn thousands(x: f64) -> String {
    let n = x.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}
