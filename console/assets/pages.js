// The console's pages. Each renders into `view` from the public REST API; every value
// from the API is text (dom.js). Buttons are real <button>s, inputs have labels.

import { api, allPages, mapLimited, query } from "./api.js";
import { h, replace, time, rate, badge, stateName, pretty, fromLocalInput, when } from "./dom.js";
import { hourlyChart } from "./chart.js";

const STATES = ["queued", "retrying", "succeeded", "failed", "skipped", "cancelled"];

/** Shows a message in the flash line (role=alert). */
export function flash(text, kind = "error") {
  const el = document.getElementById("flash");
  el.className = `flash ${kind}`;
  replace(el, text);
  el.hidden = !text;
}

/** Runs an action of a button: disables it meanwhile and reports the outcome. */
async function act(button, action, done) {
  button.disabled = true;
  try {
    const result = await action();
    flash(done(result), "ok");
  } catch (error) {
    flash(error.message);
  } finally {
    button.disabled = false;
  }
}

function section(title, ...children) {
  return h("section", { class: "panel" }, h("h2", {}, title), ...children);
}

/** Sign in with an account token. */
export function signIn(view, onToken) {
  const input = h("input", {
    id: "token", name: "token", type: "password", autocomplete: "off", required: true,
    spellcheck: "false",
  });
  const form = h("form", { class: "sign-in panel", "aria-labelledby": "sign-in-title" },
    h("h1", { id: "sign-in-title" }, "Sign in"),
    h("p", {}, "Use an account token (the scopes webhooks:read, and webhooks:write to replay, cancel or re-enable). It stays in this tab only."),
    h("label", { for: "token" }, "Account token"),
    input,
    h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      await onToken(input.value.trim());
    } catch (error) {
      flash(error.message);
      input.focus();
    } finally {
      button.disabled = false;
    }
  });
  replace(view, form);
  input.focus();
}

function healthRow(webhook, health, refresh) {
  const cells = [];
  const enabled = webhook.is_webhook_enabled;
  const state = !enabled
    ? h("span", { class: "badge state-failed" }, "disabled")
    : health?.breaker_state === "OPEN" || health?.breaker_state === "HALF_OPEN"
      ? h("span", { class: "badge state-retrying" }, `breaker ${health.breaker_state.toLowerCase().replace("_", "-")}`)
      : health?.failing_since
        ? h("span", { class: "badge state-retrying" }, "failing")
        : h("span", { class: "badge state-succeeded" }, "healthy");
  cells.push(h("td", { "data-label": "Webhook" },
    h("a", { href: `#/webhooks/${encodeURIComponent(webhook.id)}` }, webhook.name),
    h("div", { class: "muted url" }, webhook.url)));
  cells.push(h("td", { "data-label": "State" }, state,
    webhook.is_webhook_enabled || !health?.disabled_reason ? null
      : h("div", { class: "muted" }, health.disabled_reason)));
  cells.push(h("td", { "data-label": "Last success" }, time(health?.last_success_at)));
  cells.push(h("td", { "data-label": "Last failure" }, time(health?.last_failure_at)));
  cells.push(h("td", { "data-label": "Breaker" }, health ? health.breaker_state.toLowerCase().replace("_", "-") : "—"));
  cells.push(h("td", { "data-label": "Pending", class: "num" }, health ? health.pending_count : "—"));
  cells.push(h("td", { "data-label": "Success 1 h", class: "num" }, health ? rate(health.last_hour) : "—"));
  cells.push(h("td", { "data-label": "Success 24 h", class: "num" }, health ? rate(health.last_day) : "—"));
  cells.push(h("td", { "data-label": "Last 24 h" }, health
    ? hourlyChart(health.hourly, `Attempts per hour of ${webhook.name}: ${health.last_day.succeeded} succeeded, ${health.last_day.failed} failed in 24 h`)
    : "—"));
  const actions = h("td", { "data-label": "Actions", class: "actions" },
    h("a", { class: "button", href: `#/webhooks/${encodeURIComponent(webhook.id)}` }, "Delivery log"));
  if (!enabled) {
    const button = h("button", { type: "button" }, "Re-enable");
    button.addEventListener("click", () => act(button,
      () => api(`/api/v1/webhooks/${encodeURIComponent(webhook.id)}/`, {
        method: "PUT", body: { is_webhook_enabled: true },
      }),
      () => { refresh(); return `${webhook.name} is enabled again.`; }));
    actions.append(button);
  }
  cells.push(actions);
  return h("tr", { "data-webhook": webhook.id }, cells);
}

/** Health requests the webhooks page keeps in flight while it fills its table. */
const HEALTH_REQUESTS_IN_FLIGHT = 4;

/** The webhooks of the account with their health. */
export async function webhooks(view) {
  const body = h("tbody", {});
  const table = h("table", { class: "grid" },
    h("caption", { class: "sr-only" }, "Webhooks and their delivery health"),
    h("thead", {}, h("tr", {}, ["Webhook", "State", "Last success", "Last failure", "Breaker",
      "Pending", "Success 1 h", "Success 24 h", "Last 24 h", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
    body);
  const refreshButton = h("button", { type: "button" }, "Refresh");
  const load = async () => {
    const list = await allPages("/api/v1/webhooks/");
    const healths = await mapLimited(list, HEALTH_REQUESTS_IN_FLIGHT, (w) =>
      api(`/api/v1/webhooks/${encodeURIComponent(w.id)}/health/`).catch(() => null));
    replace(body, list.length
      ? list.map((w, i) => healthRow(w, healths[i], load))
      : h("tr", {}, h("td", { colspan: 10 }, "No webhooks yet.")));
  };
  refreshButton.addEventListener("click", () => act(refreshButton, load, () => "Refreshed."));
  replace(view, h("h1", {}, "Webhooks"), h("div", { class: "toolbar" }, refreshButton),
    h("div", { class: "scroll" }, table));
  await load();
}

function deliveryRow(delivery, refresh) {
  const name = stateName(delivery.state);
  const actions = h("td", { "data-label": "Actions", class: "actions" });
  const replay = h("button", { type: "button", "data-action": "replay" }, "Replay");
  replay.addEventListener("click", () => act(replay,
    () => api(`/api/v1/deliveries/${encodeURIComponent(delivery.id)}/redeliver/`, { method: "POST" }),
    (r) => { refresh(); return `Replay queued: ${r.delivery_ids.join(", ")}`; }));
  actions.append(replay);
  if (name === "QUEUED" || name === "RETRYING") {
    const cancel = h("button", { type: "button", "data-action": "cancel" }, "Cancel");
    cancel.addEventListener("click", () => act(cancel,
      () => api(`/api/v1/deliveries/${encodeURIComponent(delivery.id)}/cancel/`, { method: "POST" }),
      () => { refresh(); return `Delivery ${delivery.id} cancelled.`; }));
    actions.append(cancel);
  }
  return h("tr", { "data-delivery": delivery.id },
    h("td", { "data-label": "Delivery" }, h("code", {}, delivery.id)),
    h("td", { "data-label": "Event" }, h("a", { href: `#/events/${encodeURIComponent(delivery.event_id)}` }, delivery.event_id)),
    h("td", { "data-label": "State" }, badge(delivery.state)),
    h("td", { "data-label": "Attempts", class: "num" }, delivery.attempts ?? 0),
    h("td", { "data-label": "Last status" }, delivery.last_status_code ?? "—",
      delivery.last_error ? h("div", { class: "muted" }, delivery.last_error) : null),
    h("td", { "data-label": "Next attempt" }, time(delivery.next_attempt_at)),
    h("td", { "data-label": "Created" }, time(delivery.created_at)),
    actions);
}

function attempt(entry) {
  return h("details", { class: "attempt" },
    h("summary", {}, h("span", { class: entry.status_code >= 200 && entry.status_code < 300 ? "ok-text" : "bad-text" },
      entry.status_code ?? "no answer"), " ", when(entry.timestamp), " ", h("span", { class: "muted url" }, entry.url)),
    h("div", { class: "pair" },
      h("div", {}, h("h4", {}, "Request headers"), h("pre", {}, pretty(entry.request_headers))),
      h("div", {}, h("h4", {}, "Request body"), h("pre", {}, pretty(entry.request_data)))),
    h("div", { class: "pair" },
      h("div", {}, h("h4", {}, "Response"), h("pre", {}, entry.content ?? "")),
      h("div", {}, h("h4", {}, "Event"), h("pre", {}, pretty(entry.event_data)))));
}

/** One webhook's deliveries (filter by state; replay, cancel, replay all failed since) and attempts. */
export async function deliveryLog(view, webhookId) {
  const webhook = await api(`/api/v1/webhooks/${encodeURIComponent(webhookId)}/`);
  const filter = h("select", { id: "state-filter", name: "state" },
    h("option", { value: "" }, "every state"), STATES.map((s) => h("option", { value: s }, s)));
  const body = h("tbody", {});
  const more = h("button", { type: "button", hidden: true }, "More deliveries");
  const attempts = h("div", { class: "attempts" });
  let pageToken = "";
  const loadDeliveries = async (reset = true) => {
    if (reset) { pageToken = ""; body.replaceChildren(); }
    const page = await api(`/api/v1/deliveries/${query({
      webhook_id: webhookId, state: filter.value, page_token: pageToken,
    })}`);
    const rows = page.deliveries ?? [];
    if (reset && !rows.length) body.append(h("tr", {}, h("td", { colspan: 8 }, "No deliveries.")));
    body.append(...rows.map((d) => deliveryRow(d, refresh)));
    pageToken = page.next_page_token ?? "";
    more.hidden = !pageToken;
  };
  const loadAttempts = async () => {
    const page = await api(`/api/v1/webhooks/${encodeURIComponent(webhookId)}/responses/`);
    replace(attempts, page.results.length ? page.results.map(attempt) : h("p", {}, "No attempts yet."));
  };
  const refresh = () => Promise.all([loadDeliveries(), loadAttempts()]).catch((e) => flash(e.message));
  filter.addEventListener("change", () => loadDeliveries().catch((e) => flash(e.message)));
  more.addEventListener("click", () => act(more, () => loadDeliveries(false), () => ""));

  const since = h("input", { id: "failed-since", name: "since", type: "datetime-local" });
  const replayFailed = h("button", { type: "submit" }, "Replay all failed since");
  const replayForm = h("form", { class: "inline" },
    h("label", { for: "failed-since" }, "Failed since (empty: all)"), since, replayFailed);
  replayForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = fromLocalInput(since.value);
    act(replayFailed,
      () => api(`/api/v1/webhooks/${encodeURIComponent(webhookId)}/redeliver/`, {
        method: "POST", body: value ? { since: value } : {},
      }),
      (r) => { refresh(); return `${r.delivery_ids.length} failed deliveries queued again.`; });
  });

  replace(view,
    h("p", { class: "crumbs" }, h("a", { href: "#/webhooks" }, "Webhooks"), " / ", webhook.name),
    h("h1", {}, `Delivery log: ${webhook.name}`),
    h("p", { class: "muted url" }, `${webhook.http_method} ${webhook.url}`),
    section("Deliveries",
      h("div", { class: "toolbar" }, h("label", { for: "state-filter" }, "State"), filter, replayForm),
      h("div", { class: "scroll" }, h("table", { class: "grid" },
        h("thead", {}, h("tr", {}, ["Delivery", "Event", "State", "Attempts", "Last status",
          "Next attempt", "Created", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
        body)),
      more),
    section("Attempts (newest first; secrets masked)", attempts));
  await refresh();
}

function eventRow(event) {
  return h("tr", { "data-event": event.id },
    h("td", { "data-label": "Event" }, h("a", { href: `#/events/${encodeURIComponent(event.id)}` }, event.id)),
    h("td", { "data-label": "Type" }, event.event_type),
    h("td", { "data-label": "Created" }, time(event.created_at)),
    h("td", { "data-label": "Deliveries" }, (event.deliveries ?? []).map((d) => [badge(d.state), " "])),
    h("td", { "data-label": "Data" }, h("pre", { class: "data" }, pretty(event.data))));
}

/** Event search by type and time. */
export async function events(view) {
  const type = h("input", { id: "event-type", name: "event_type", type: "text", placeholder: "e.g. alert group created" });
  const after = h("input", { id: "created-after", name: "created_after", type: "datetime-local" });
  const before = h("input", { id: "created-before", name: "created_before", type: "datetime-local" });
  const search = h("button", { type: "submit" }, "Search");
  const body = h("tbody", {});
  const more = h("button", { type: "button", hidden: true }, "More events");
  let pageToken = "";
  const load = async (reset) => {
    if (reset) { pageToken = ""; body.replaceChildren(); }
    const page = await api(`/api/v1/events/${query({
      event_type: type.value.trim(),
      created_after: fromLocalInput(after.value),
      created_before: fromLocalInput(before.value),
      page_token: pageToken,
    })}`);
    const rows = page.events ?? [];
    if (reset && !rows.length) body.append(h("tr", {}, h("td", { colspan: 5 }, "No events found.")));
    body.append(...rows.map(eventRow));
    pageToken = page.next_page_token ?? "";
    more.hidden = !pageToken;
  };
  const form = h("form", { class: "toolbar", role: "search" },
    h("label", { for: "event-type" }, "Type"), type,
    h("label", { for: "created-after" }, "From"), after,
    h("label", { for: "created-before" }, "Before"), before, search);
  form.addEventListener("submit", (e) => { e.preventDefault(); act(search, () => load(true), () => ""); });
  more.addEventListener("click", () => act(more, () => load(false), () => ""));
  replace(view, h("h1", {}, "Events"), form,
    h("div", { class: "scroll" }, h("table", { class: "grid" },
      h("thead", {}, h("tr", {}, ["Event", "Type", "Created", "Deliveries", "Data"].map((t) => h("th", { scope: "col" }, t)))),
      body)), more);
  await load(true);
}

/** One event with its deliveries. */
export async function event(view, id) {
  const ev = await api(`/api/v1/events/${encodeURIComponent(id)}/`);
  const body = h("tbody", {});
  const refresh = async () => {
    const fresh = await api(`/api/v1/events/${encodeURIComponent(id)}/`);
    replace(body, (fresh.deliveries ?? []).map((d) => deliveryRow(d, refresh)));
  };
  replace(body, (ev.deliveries ?? []).map((d) => deliveryRow(d, refresh)));
  replace(view,
    h("p", { class: "crumbs" }, h("a", { href: "#/events" }, "Events"), " / ", ev.id),
    h("h1", {}, `Event ${ev.id}`),
    h("p", {}, h("strong", {}, ev.event_type), " · ", time(ev.created_at)),
    section("Data", h("pre", { class: "data" }, pretty(ev.data))),
    section("Deliveries", h("div", { class: "scroll" }, h("table", { class: "grid" },
      h("thead", {}, h("tr", {}, ["Delivery", "Event", "State", "Attempts", "Last status",
        "Next attempt", "Created", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
      body))));
}

/** The live tail: `rows` are the statuses received since sign-in (newest first). */
export function tailPage(view, live) {
  const body = h("tbody", { id: "tail-rows" });
  const state = h("p", { class: "muted", role: "status", id: "tail-detail" });
  const pause = h("button", { type: "button", "aria-pressed": String(live.paused) },
    live.paused ? "Resume" : "Pause");
  const row = (s) => h("tr", { "data-delivery": s.delivery_id, "data-state": stateName(s.state) },
    h("td", { "data-label": "Received" }, when(s.received)),
    h("td", { "data-label": "State" }, badge(s.state)),
    h("td", { "data-label": "Delivery" }, h("code", {}, s.delivery_id)),
    h("td", { "data-label": "Webhook" }, h("a", { href: `#/webhooks/${encodeURIComponent(s.webhook_id)}` }, s.webhook_id)),
    h("td", { "data-label": "Event" }, h("a", { href: `#/events/${encodeURIComponent(s.event_id)}` }, s.event_id)),
    h("td", { "data-label": "Attempt", class: "num" }, s.attempt ?? 0),
    h("td", { "data-label": "Status" }, s.status_code ?? "—", s.error ? h("div", { class: "muted" }, s.error) : null));
  const render = () => {
    replace(body, live.rows.length ? live.rows.map(row)
      : h("tr", {}, h("td", { colspan: 7 }, "Waiting for delivery changes…")));
    replace(state, `Stream: ${live.state}${live.detail ? ` (${live.detail})` : ""}`);
  };
  pause.addEventListener("click", () => {
    live.paused = !live.paused;
    pause.setAttribute("aria-pressed", String(live.paused));
    replace(pause, live.paused ? "Resume" : "Pause");
    if (!live.paused) render();
  });
  replace(view, h("h1", {}, "Live tail"),
    h("div", { class: "toolbar" }, pause, state),
    h("div", { class: "scroll" }, h("table", { class: "grid" },
      h("thead", {}, h("tr", {}, ["Received", "State", "Delivery", "Webhook", "Event", "Attempt", "Status"]
        .map((t) => h("th", { scope: "col" }, t)))),
      body)));
  render();
  return () => { if (!live.paused) render(); };
}
