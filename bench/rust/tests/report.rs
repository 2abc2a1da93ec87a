//! The report a run ends with: every phase against the ceiling of the same run (and what the
//! ceiling's CPU per request makes on all cores), and the issues' targets judged for the CPU
//! class the run was on.

use std::collections::BTreeMap;

use webhookd_bench::loadgen::storm::{StormResult, classify};
use webhookd_bench::loadgen::{CeilingResult, EmitResult};
use webhookd_bench::percentiles::Percentiles;
use webhookd_bench::procfs::RoleCpu;
use webhookd_bench::report::{CpuClass, render, thousands};

fn cpu(webhookd: f64) -> BTreeMap<String, RoleCpu> {
    let role = |cores: f64| RoleCpu {
        cpu_ms: cores * 6000.0,
        cores,
        context_switches: 1000,
    };
    [
        ("webhookd", role(webhookd)),
        ("receiver", role(0.2)),
        ("loadgen", role(0.3)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn emit(mode: &str, producers: usize, webhooks: usize, delivered: f64, p99_ms: f64) -> EmitResult {
    EmitResult {
        mode: mode.into(),
        producers,
        batch: if mode == "batch" { 50 } else { 1 },
        webhooks,
        instances: 1,
        store: "sled".into(),
        target_rate: (mode == "rate").then_some(1000.0),
        window_s: 6.0,
        accepted_per_s: delivered,
        accepted_events: (delivered * 8.0) as u64,
        delivered_events_per_s: delivered / webhooks as f64,
        deliveries_per_s: delivered,
        arrival_latency: Percentiles {
            n: 1000,
            p50_ms: p99_ms / 3.0,
            p90_ms: p99_ms / 2.0,
            p99_ms,
            p999_ms: p99_ms * 1.5,
            max_ms: p99_ms * 2.0,
        },
        cpu: cpu(1.5),
        webhookd_cpu_ms_per_delivery: Some(9000.0 / (delivered * 6.0)),
        webhookd_peak_rss_mb: Some(150.0),
        receiver_connections: 3,
        ..EmitResult::default()
    }
}

fn write(dir: &std::path::Path, name: &str, value: &impl serde::Serialize) {
    std::fs::write(dir.join(name), serde_json::to_string(value).unwrap()).unwrap();
}

fn run_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ceiling = CeilingResult {
        connections: 64,
        requests_per_s: 120_000.0,
        cpu: cpu(0.0),
        ..CeilingResult::default()
    };
    write(dir.path(), "rs_ceiling.json", &ceiling);
    write(
        dir.path(),
        "rs_rest8.json",
        &emit("rest", 8, 1, 10_000.0, 4.0),
    );
    write(
        dir.path(),
        "rs_rest64.json",
        &emit("rest", 64, 1, 12_000.0, 30.0),
    );
    write(
        dir.path(),
        "rs_rate.json",
        &emit("rate", 0, 1, 1_000.0, 3.0),
    );
    write(
        dir.path(),
        "rs_batch1.json",
        &emit("batch", 8, 1, 30_000.0, 40.0),
    );
    write(
        dir.path(),
        "rs_batch10.json",
        &emit("batch", 8, 10, 20_000.0, 90.0),
    );
    // Not a Rust tool's result: left alone.
    std::fs::write(dir.path().join("ceiling.json"), "{\"rps\": 15000}").unwrap();
    dir
}

fn line<'a>(report: &'a str, starts: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.starts_with(starts))
        .unwrap_or_else(|| panic!("no line starting {starts:?} in\n{report}"))
}

#[test]
fn every_phase_is_a_ratio_to_the_ceiling_of_the_same_run() {
    let dir = run_dir();
    let report = render(dir.path(), "AMD EPYC 7B13").unwrap();
    assert!(report.contains("CPU class: AMD EPYC; store: sled."));
    assert!(line(&report, "| R1 |").contains("120,000 req/s"));
    let rest8 = line(
        &report,
        "| R2 | single-event REST emit (POST /api/v1/events/), 8 producers",
    );
    assert!(rest8.contains("| 8.3% |"), "{rest8}");
    assert!(rest8.contains("| 1.50 / 0.20 / 0.30 |"), "{rest8}");
    assert!(rest8.contains("| 0.150 ms |"), "{rest8}");
    assert!(
        rest8.contains("backlog at end 0, on 3 connections)"),
        "{rest8}"
    );
    let batch10 = line(
        &report,
        "| R4 | batch emit (POST /api/v1/events/batch/, 50 events each), 8 producers, 10 webhooks",
    );
    assert!(
        batch10.contains("20,000 deliveries/s = 2,000 events/s"),
        "{batch10}"
    );
    // Phases in order: REST by producers, then the fixed rate, then batches.
    let order: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("| R"))
        .map(|l| &l[..4])
        .collect();
    assert_eq!(order, ["| R1", "| R2", "| R2", "| R3", "| R4", "| R4"]);
}

#[test]
fn the_targets_follow_the_cpu_class() {
    let dir = run_dir();
    let epyc = render(dir.path(), "AMD EPYC 7B13").unwrap();
    assert!(line(&epyc, "| (15) receiver ceiling").contains("**met**"));
    let ten_x = line(&epyc, "| (15.1) single-event REST emit, 8 producers");
    assert!(
        ten_x.contains(">= 9,400 events/s") && ten_x.contains("**met**"),
        "{ten_x}"
    );
    assert!(line(&epyc, "| (15.1) the same at 64 producers").contains("**MISSED**"));
    assert!(line(&epyc, "| (15.1) p99 emit->arrival <= 5 ms at 8 producers").contains("**met**"));
    assert!(line(&epyc, "| (15.1) p99 emit->arrival <= 5 ms at a fixed").contains("**met**"));
    assert!(line(&epyc, "| (15.1) webhookd peak RSS").contains("**met**"));
    assert!(line(&epyc, "| (15.2) batch emit of 50 events, 1 webhook").contains("**met**"));
    assert!(line(&epyc, "| (15.2) batch emit of 50 events, 10 webhook").contains("**MISSED**"));
    assert!(line(&epyc, "| (15.3) webhookd CPU").contains("**MISSED**"));
    let three_x = line(&epyc, "| (14) >= 3x Svix");
    assert!(
        three_x.contains(">= 2,800 events/s") && three_x.contains("**met**"),
        "{three_x}"
    );
    assert!(three_x.contains("Svix 1,261/s"), "{three_x}");

    let xeon = render(dir.path(), "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz").unwrap();
    let ten_x = line(&xeon, "| (15.1) single-event REST emit, 8 producers");
    assert!(
        ten_x.contains(">= 12,600 events/s") && ten_x.contains("**MISSED**"),
        "{ten_x}"
    );
    assert!(line(&xeon, "| (14) >= 3x Svix").contains(">= 3,800 events/s"));
}

#[test]
fn a_ceiling_below_the_target_says_what_its_cpu_per_request_makes_on_all_cores() {
    let dir = tempfile::tempdir().unwrap();
    let role = |cores: f64| RoleCpu {
        cpu_ms: cores * 5000.0,
        cores,
        context_switches: 0,
    };
    let ceiling = CeilingResult {
        connections: 64,
        window_s: 5.0,
        requests_per_s: 35_000.0,
        requests: 175_000,
        cpu: [("receiver", role(0.4)), ("loadgen", role(0.3))]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        machine_cores: 2,
        ..CeilingResult::default()
    };
    write(dir.path(), "rs_ceiling.json", &ceiling);
    let report = render(dir.path(), "AMD EPYC").unwrap();
    let r1 = line(&report, "| R1 |");
    assert!(
        r1.contains("CPU per request: receiver 11.4 us + loadgen 8.6 us"),
        "{r1}"
    );
    let target = line(&report, "| (15) receiver ceiling");
    assert!(
        target.contains("35,000 req/s (0.70 of 2 cores used; at 2 cores this CPU per request makes 100,000 req/s)"),
        "{target}"
    );
    assert!(
        target.contains("**MISSED**"),
        "what counts is what was measured"
    );
}

#[test]
fn phases_not_run_are_not_judged() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rs_rest8.json",
        &emit("rest", 8, 1, 10_000.0, 4.0),
    );
    let report = render(dir.path(), "AMD EPYC").unwrap();
    assert!(
        line(&report, "| R2 |").contains("| n/a |"),
        "no ceiling, no ratio"
    );
    assert!(line(&report, "| (15) receiver ceiling").contains("n/a (not run)"));
    assert!(line(&report, "| (15.2) batch emit of 50 events, 1 webhook").contains("n/a (not run)"));
    assert!(render(&dir.path().join("missing"), "AMD EPYC").is_err());
}

fn storm(acknowledged: u64, duplicates: u64, lost: u64) -> StormResult {
    StormResult {
        producers: 8,
        instances: 1,
        store: "sled".into(),
        storm_s: 60.0,
        kill_interval_s: (1.5, 3.0),
        fail_percent: 10,
        kills: 26,
        acknowledged,
        acknowledged_per_s: acknowledged as f64 / 60.0,
        lost,
        duplicates,
        duplicates_pct: 100.0 * duplicates as f64 / acknowledged as f64,
        duplicates_by_answer_to_kill: [0, duplicates, 0, 0, 0, 0],
        drained: lost == 0,
        ..StormResult::default()
    }
}

#[test]
fn the_storm_reports_loss_and_duplicates_against_the_one_percent_target() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "storm_sled.json", &storm(120_000, 600, 0));
    let report = render(dir.path(), "AMD EPYC").unwrap();
    let row = line(
        &report,
        "| R5 | 8 producers, 1 sled instance, 26 SIGKILLs in 60 s",
    );
    assert!(row.contains("| 120,000 (2,000/s;"), "{row}");
    assert!(
        row.contains("| 0 | 600 = 0.50% | 0 / 600 / 0 / 0 / 0 / 0 |"),
        "{row}"
    );
    assert!(line(&report, "| (15.4) kill -9 storm").contains("**met**"));

    // One acknowledged event lost fails the target whatever the duplicates.
    write(dir.path(), "storm_sled.json", &storm(120_000, 600, 1));
    let report = render(dir.path(), "AMD EPYC").unwrap();
    assert!(line(&report, "| R5 |").contains("(deadline: not all arrived)"));
    assert!(line(&report, "| (15.4) kill -9 storm").contains("**MISSED**"));
    write(dir.path(), "storm_sled.json", &storm(100_000, 3_200, 0));
    let report = render(dir.path(), "AMD EPYC").unwrap();
    assert!(line(&report, "| (15.4) kill -9 storm").contains("3.20% duplicates"));
    assert!(line(&report, "| (15.4) kill -9 storm").contains("**MISSED**"));

    let other_run = run_dir();
    let without = render(other_run.path(), "AMD EPYC").unwrap();
    assert!(line(&without, "| (15.4) kill -9 storm").contains("n/a (not run)"));
}

#[test]
fn a_duplicate_is_placed_by_the_time_from_its_2xx_to_the_next_kill() {
    let ms = 1_000_000;
    let kills = [1_000 * ms, 2_000 * ms];
    let duplicates = [
        (999 * ms, 1_100 * ms),   // answered 1 ms before the first kill
        (980 * ms, 1_100 * ms),   // 20 ms
        (1_700 * ms, 2_100 * ms), // 300 ms before the second
        (1_001 * ms, 1_500 * ms), // read by the receiver 1 ms after the kill
        (1_200 * ms, 1_500 * ms), // no kill between the answer and its repeat
        (100 * ms, 1_200 * ms),   // 900 ms
    ];
    assert_eq!(classify(&duplicates, &kills), [1, 1, 1, 1, 1, 1]);
}

#[test]
fn a_broken_result_names_its_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rs_rest8.json"), "{\"mode\": ").unwrap();
    let error = format!("{:#}", render(dir.path(), "AMD EPYC").unwrap_err());
    assert!(error.contains("rs_rest8.json"), "{error}");
}

#[test]
fn cpu_classes_and_numbers() {
    assert_eq!(CpuClass::of("AMD EPYC 7B13"), CpuClass::Epyc);
    assert_eq!(
        CpuClass::of("Intel(R) Xeon(R) CPU @ 2.20GHz"),
        CpuClass::Xeon
    );
    assert_eq!(CpuClass::of("Apple M2"), CpuClass::Other);
    assert_eq!(thousands(1234567.4), "1,234,567");
    assert_eq!(thousands(999.5), "1,000");
    assert_eq!(thousands(-12345.0), "-12,345");
}
