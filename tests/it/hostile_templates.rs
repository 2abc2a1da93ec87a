//! Templates are code written by tenants. An attacker's webhooks with templates that recurse,
//! loop for hours or render 100 MB are each recorded as a template error, while the server
//! keeps answering health checks and CRUD while they render and another account's events
//! are delivered.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::*;
use webhookd::grpc::pb;

/// The attacker's webhooks, one per hostile case.
fn hostile_webhooks(url: &str) -> Vec<pb::Webhook> {
    let nested_ranges =
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}";
    let hostile = |name: &str, engine: &str| pb::Webhook {
        forward_all: Some(false),
        template_engine: engine.into(),
        ..webhook(name, url)
    };
    vec![
        pb::Webhook {
            data: Some(r#"{{#*inline "p"}}{{> p}}{{/inline}}{{> p}}"#.into()),
            ..hostile("recursive partial", "handlebars")
        },
        pb::Webhook {
            trigger_template: Some(format!("{nested_ranges}true")),
            ..hostile("endless trigger", "jinja")
        },
        pb::Webhook {
            headers: Some(format!(r#"{{"x": "{nested_ranges}"}}"#)),
            ..hostile("endless headers", "jinja")
        },
        pb::Webhook {
            data: Some(
                "{% for a in items %}{% for b in items %}{% for c in items %}{% endfor %}{% endfor %}{% endfor %}"
                    .into(),
            ),
            ..hostile("triple for", "jinja")
        },
        pb::Webhook {
            data: Some(
                "{{#each items}}{{#each ../items}}{{#each ../../items}}{{/each}}{{/each}}{{/each}}"
                    .into(),
            ),
            ..hostile("triple each", "handlebars")
        },
        pb::Webhook {
            url: format!(r#"{url}/{{{{ "a" * 100000000 }}}}"#),
            ..hostile("100 MB url", "jinja")
        },
    ]
}

/// Event data with a 20,000-item list.
fn big_event() -> serde_json::Value {
    json!({
        "alert_group": {"id": "I1", "title": "hostile"},
        "items": (0..20_000).collect::<Vec<_>>(),
    })
}

/// `/healthz` answers OK.
async fn assert_healthy(server: &TestServer) {
    let (status, body) = server.healthz().await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// GetWebhook answers webhook `id`.
async fn assert_readable(server: &TestServer, token: &str, id: &str) {
    let mut client = server.webhooks().await;
    let got = client
        .get_webhook(authed(token, pb::GetWebhookRequest { id: id.into() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.id, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_templates_are_template_errors_and_the_server_stays_responsive() {
    // Each template here is stopped by its fuel, depth or output cap; a wall time of 60 s
    // (2 by default) keeps a loaded machine from stopping one by time first.
    let server =
        TestServer::start_with(|config| config.render_wall_time = Duration::from_secs(60)).await;
    let attacker_sink = Receiver::start().await;
    let victim_sink = Receiver::start().await;
    let attacker = server.writer("mallory").await;
    let victim = server.writer("acme").await;
    let mut client = server.webhooks().await;

    let mut hostile = Vec::new();
    for hook in hostile_webhooks(&attacker_sink.url("/hook")) {
        hostile.push(create(&mut client, &attacker, hook).await);
    }
    let victim_hook = create(
        &mut client,
        &victim,
        webhook("victim", &victim_sink.url("/hook")),
    )
    .await;

    // Two events of the attacker: twelve hostile renders.
    let emits: Vec<_> = (0..2)
        .map(|_| {
            let mut client = client.clone();
            let attacker = attacker.clone();
            tokio::spawn(async move {
                emit_all(&mut client, &attacker, "alert group created", big_event()).await
            })
        })
        .collect();

    // While they render: health, CRUD and another account's events answer at once.
    let victim_emit = {
        let mut client = client.clone();
        let victim = victim.clone();
        tokio::spawn(async move {
            emit_all(
                &mut client,
                &victim,
                "alert group created",
                json!({"alert_group": {"id": "V1"}}),
            )
            .await
        })
    };
    // Each round of answers counts if the hostile renders were still running after it.
    let mut answered_while_rendering = 0;
    while !victim_emit.is_finished() || emits.iter().any(|e| !e.is_finished()) {
        assert_healthy(&server).await;
        assert_readable(&server, &victim, &victim_hook.id).await;
        assert_readable(&server, &attacker, &hostile[0].id).await;
        if emits.iter().any(|e| !e.is_finished()) {
            answered_while_rendering += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        answered_while_rendering > 0,
        "no health check or read was answered while the hostile templates rendered"
    );
    let victim_statuses = victim_emit.await.unwrap();
    assert_eq!(states(&victim_statuses), ["QUEUED", "SUCCEEDED"]);
    assert_eq!(victim_sink.next().await.json()["alert_group"]["id"], "V1");

    for emit in emits {
        let statuses = emit.await.unwrap();
        let failed = states(&statuses).iter().filter(|s| **s == "FAILED").count();
        assert_eq!(failed, hostile.len(), "{statuses:?}");
    }
    attacker_sink.assert_quiet().await;

    // Each one is logged like OnCall logs a template error, and the log stays small.
    let expected = [
        ("recursive partial", "Data", "nested or recursed too deep"),
        ("endless trigger", "Trigger", "ran more than"),
        ("endless headers", "Headers", "ran more than"),
        ("triple for", "Data", "ran more than"),
        ("triple each", "Data", "ran more than"),
        (
            "100 MB url",
            "URL",
            "rendered text is longer than 8192 bytes",
        ),
    ];
    for (hook, (name, template, reason)) in hostile.iter().zip(expected) {
        assert_eq!(hook.name, name);
        let log = responses(&mut client, &attacker, &hook.id).await;
        assert_eq!(log.len(), 2, "{name}");
        for entry in &log {
            assert_eq!(entry.status_code, None, "{name}");
            assert_eq!(entry.content, None, "{name}");
            let data = entry.request_data.as_deref().unwrap();
            // A budget is a wall time too: a slow machine may stop a loop by time first.
            let stopped = data.contains(reason) || data.contains("ran longer than");
            assert!(data.starts_with(template) && stopped, "{name}: {data}");
            assert!(
                entry.url.len() < 1024,
                "{name}: a {} byte url",
                entry.url.len()
            );
        }
    }

    // And counted by reason, without user data in the labels.
    let (status, _, metrics) = http_raw(
        Method::GET,
        &format!("http://{}/metrics", server.http_addr),
        None,
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let failed: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("webhookd_template_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(failed, 12.0, "{metrics}");
    assert!(metrics.contains(r#"webhookd_template_errors_total{reason="depth"} 2"#));
    assert!(metrics.contains(r#"webhookd_template_errors_total{reason="output_size"} 2"#));
}

/// The attacker's Jinja webhooks that build strings of many GiB: minijinja has no limit on
/// memory, the render process has.
fn memory_hungry_webhooks(url: &str) -> Vec<pb::Webhook> {
    let hungry = |name: &str, data: &str| pb::Webhook {
        forward_all: Some(false),
        template_engine: "jinja".into(),
        data: Some(data.into()),
        ..webhook(name, url)
    };
    vec![
        hungry(
            "namespace doubling",
            r#"{% set ns = namespace(s="a" * 1000) %}{% for i in range(30) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}"#,
        ),
        hungry(
            "recursive macro doubling",
            r#"{% macro d(s, n) %}{% if n == 0 %}{{ s | length }}{% else %}{{ d(s ~ s, n - 1) }}{% endif %}{% endmacro %}{{ d("a" * 1000, 30) }}"#,
        ),
        hungry(
            "replace blow-up",
            r#"{{ alert_group.title | replace("", alert_group.title) | length }}"#,
        ),
    ]
}

/// The server's `webhookd_template_errors_total` line for `reason`.
async fn template_errors(server: &TestServer, reason: &str) -> String {
    let (status, _, metrics) = http_raw(
        Method::GET,
        &format!("http://{}/metrics", server.http_addr),
        None,
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let prefix = format!(r#"webhookd_template_errors_total{{reason="{reason}"}} "#);
    metrics
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {prefix}: {metrics}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_that_build_huge_strings_are_memory_errors_and_the_next_render_works() {
    // A cap of 128 MiB (512 by default) and a wall time of 60 s (2 by default): even on a
    // machine loaded so much that a worker gets a tenth of a core, the render fails for its
    // memory, not its time.
    let server = TestServer::start_with(|config| {
        config.render_worker_memory_bytes = 128 * 1024 * 1024;
        config.render_wall_time = Duration::from_secs(60);
    })
    .await;
    let attacker_sink = Receiver::start().await;
    let victim_sink = Receiver::start().await;
    let attacker = server.writer("mallory").await;
    let victim = server.writer("acme").await;
    let mut client = server.webhooks().await;

    let mut hungry = Vec::new();
    for hook in memory_hungry_webhooks(&attacker_sink.url("/hook")) {
        hungry.push(create(&mut client, &attacker, hook).await);
    }
    let victim_hook = create(
        &mut client,
        &victim,
        webhook("victim", &victim_sink.url("/hook")),
    )
    .await;

    // An event with a 600 KB title, which `replace("", title)` would square.
    let attack = {
        let mut client = client.clone();
        let attacker = attacker.clone();
        tokio::spawn(async move {
            let title = "x".repeat(600_000);
            let event = json!({"alert_group": {"id": "I1", "title": title}});
            emit_all(&mut client, &attacker, "alert group created", event).await
        })
    };
    let victim_emit = {
        let mut client = client.clone();
        let victim = victim.clone();
        tokio::spawn(async move {
            let event = json!({"alert_group": {"id": "V1"}});
            emit_all(&mut client, &victim, "alert group created", event).await
        })
    };
    let mut answered_while_rendering = 0;
    while !victim_emit.is_finished() || !attack.is_finished() {
        assert_healthy(&server).await;
        assert_readable(&server, &victim, &victim_hook.id).await;
        if !attack.is_finished() {
            answered_while_rendering += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        answered_while_rendering > 0,
        "no health check or read was answered while the hungry templates rendered"
    );
    assert_eq!(states(&victim_emit.await.unwrap()), ["QUEUED", "SUCCEEDED"]);
    assert_eq!(victim_sink.next().await.json()["alert_group"]["id"], "V1");
    let statuses = attack.await.unwrap();
    let failed = states(&statuses).iter().filter(|s| **s == "FAILED").count();
    assert_eq!(failed, hungry.len(), "{statuses:?}");
    attacker_sink.assert_quiet().await;

    for hook in &hungry {
        let log = responses(&mut client, &attacker, &hook.id).await;
        assert_eq!(log.len(), 1, "{}", hook.name);
        assert_eq!(log[0].status_code, None, "{}", hook.name);
        assert_eq!(log[0].content, None, "{}", hook.name);
        let data = log[0].request_data.as_deref().unwrap();
        assert!(
            data.starts_with("Data") && data.contains("used more than 128 MiB of memory"),
            "{}: {data}",
            hook.name
        );
    }
    assert_eq!(
        template_errors(&server, "memory").await,
        r#"webhookd_template_errors_total{reason="memory"} 3"#
    );

    // The workers that died were replaced: the attacker's next Jinja render works.
    create(
        &mut client,
        &attacker,
        pb::Webhook {
            trigger_type: "acknowledge".into(),
            forward_all: Some(false),
            template_engine: "jinja".into(),
            data: Some(r#"{"id": "{{ alert_group.id }}", "n": {{ 6 * 7 }}}"#.into()),
            ..webhook("after the attack", &attacker_sink.url("/hook"))
        },
    )
    .await;
    let event = json!({"alert_group": {"id": "I2"}});
    let statuses = emit_all(&mut client, &attacker, "acknowledge", event).await;
    assert_eq!(states(&statuses), ["QUEUED", "SUCCEEDED"]);
    assert_eq!(
        attacker_sink.next().await.json(),
        json!({"id": "I2", "n": 42})
    );
}

#[tokio::test]
async fn a_server_whose_render_worker_cannot_run_stops_at_start_with_a_clear_error() {
    for (program, expected) in [
        ("/nonexistent/webhookd", "cannot start the render worker"),
        ("/bin/true", "did not answer"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        config.render_worker = program.into();
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let ended = tokio::time::timeout(
            Duration::from_secs(10),
            webhookd::run(config, grpc, http, shutdown),
        )
        .await
        .expect("the server neither started nor stopped");
        let error = ended.unwrap_err().to_string();
        assert!(
            error.contains(expected) && error.contains(program),
            "{program}: {error}"
        );
    }
}

/// What one Jinja render costs in a worker process next to one in this process (printed;
/// `cargo test --test it sandboxed_render -- --nocapture`).
#[test]
fn a_sandboxed_render_gives_what_an_in_process_render_gives_and_its_cost_is_printed() {
    use webhookd::model::Engine;
    use webhookd::render::{Limits, Sandbox, Templates};

    let errors = || {
        prometheus::IntCounterVec::new(
            prometheus::Opts::new("template_errors_total", "failed renders"),
            &["reason"],
        )
        .unwrap()
    };
    let limits = Limits::with_body_limit(1024 * 1024);
    let worker = std::path::Path::new(env!("CARGO_BIN_EXE_webhookd"));
    let sandbox = Sandbox::start(worker, 1, &limits).unwrap();
    let sandboxed = Templates::sandboxed(limits, errors(), sandbox);
    let in_process = Templates::new(limits, errors());
    let source = r#"{"title": "{{ alert_group.title | upper }}", "n": {{ alerts | length }}}"#;
    let context = json!({"alert_group": {"title": "disk full"}, "alerts": [1, 2, 3]});
    let render = |templates: &Templates| templates.render(Engine::Jinja, source, &context, 1024);
    assert_eq!(
        render(&sandboxed).unwrap(),
        r#"{"title": "DISK FULL", "n": 3}"#
    );
    assert_eq!(render(&sandboxed), render(&in_process));
    let failure = sandboxed
        .render(Engine::Jinja, "{{ 1 + }}", &context, 1024)
        .unwrap_err();
    assert_eq!(
        failure,
        in_process
            .render(Engine::Jinja, "{{ 1 + }}", &context, 1024)
            .unwrap_err()
    );

    let per_render = |templates: &Templates| {
        let started = Instant::now();
        for _ in 0..500 {
            render(templates).unwrap();
        }
        started.elapsed() / 500
    };
    let (sandboxed, in_process) = (per_render(&sandboxed), per_render(&in_process));
    println!("one Jinja render: {sandboxed:?} in a worker process, {in_process:?} in process");
}

#[test]
fn a_worker_past_the_wall_time_is_killed_and_replaced() {
    use webhookd::model::Engine;
    use webhookd::render::budget::Reason;
    use webhookd::render::{Limits, Sandbox, Templates};

    let errors = prometheus::IntCounterVec::new(
        prometheus::Opts::new("template_errors_total", "failed renders"),
        &["reason"],
    )
    .unwrap();
    let limits = Limits {
        wall_time: Duration::from_millis(100),
        ..Limits::with_body_limit(1024 * 1024)
    };
    let worker = std::path::Path::new(env!("CARGO_BIN_EXE_webhookd"));
    let templates =
        Templates::sandboxed(limits, errors, Sandbox::start(worker, 1, &limits).unwrap());
    // Seconds of work that write nothing, so the worker reaches no check point of its own.
    let silent =
        r#"{% for i in range(1000) %}{% set x = range(100000) | reverse | join %}{% endfor %}"#;
    let failure = templates
        .render(Engine::Jinja, silent, &json!({}), 1024)
        .unwrap_err();
    assert_eq!(failure.reason, Reason::Time);
    assert_eq!(
        failure.message,
        "Template Error: the template ran longer than 100 ms"
    );
    let rendered = templates.render(Engine::Jinja, "{{ 6 * 7 }}", &json!({}), 1024);
    assert_eq!(rendered.unwrap(), "42");
}
