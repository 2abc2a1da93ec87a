// The public REST API, called with the account token as `Authorization: Bearer <token>`.
// The token lives in sessionStorage only (never in a URL, never logged).

const TOKEN_KEY = "webhookd.token";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** An API error with the message of the dialect's error body. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The message of an error body: `{"detail"}`, OnCall's `{"field": ["msg"]}`, or the status. */
function message(status, body) {
  if (body && typeof body === "object") {
    if (typeof body.detail === "string") return body.detail;
    const parts = Object.entries(body).map(([field, msgs]) =>
      `${field}: ${Array.isArray(msgs) ? msgs.join(" ") : String(msgs)}`);
    if (parts.length) return parts.join("; ");
  }
  return `HTTP ${status}`;
}

/** Calls `path` (a path or a same-origin URL) and returns its JSON (null for 204). */
export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json", Authorization: `Bearer ${token()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
    credentials: "omit",
    cache: "no-store",
  });
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!response.ok) throw new ApiError(response.status, message(response.status, parsed));
  return parsed;
}

/** A query string of the entries whose value is not empty (arrays repeat the key). */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== undefined && v !== null && v !== "") search.append(key, v);
    }
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** Every OnCall page of a list (follows `next`, at most `maxPages`). */
export async function allPages(path, maxPages = 20) {
  const results = [];
  let next = path;
  for (let i = 0; i < maxPages; i += 1) {
    const page = await api(next);
    results.push(...page.results);
    if (!page.next) break;
    const url = new URL(page.next, location.href);
    next = url.pathname + url.search;
  }
  return results;
}

/**
 * `fn` applied to every item, at most `limit` calls in flight at once (results in item
 * order), so a page listing many webhooks does not fire one request per webhook at once.
 */
export async function mapLimited(items, limit, fn) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next;
      next += 1;
      results[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * The SSE live tail of the account's delivery changes (`GET /api/v1/deliveries/stream`),
 * read with fetch so the token goes in the Authorization header (EventSource cannot send
 * one). Calls `onStatus(status, cursor)` per event and `onState("live" | "retrying" |
 * "off", detail)`; reconnects with `Last-Event-ID` = the last cursor, so nothing is missed.
 * Returns a function that stops it.
 */
export function tail({ onStatus, onState }) {
  const controller = new AbortController();
  let cursor = "";
  let delay = 500;
  const run = async () => {
    while (!controller.signal.aborted) {
      try {
        const headers = { Accept: "text/event-stream", Authorization: `Bearer ${token()}` };
        if (cursor) headers["Last-Event-ID"] = cursor;
        const response = await fetch("/api/v1/deliveries/stream", {
          headers, signal: controller.signal, credentials: "omit", cache: "no-store",
        });
        if (!response.ok || !response.body) {
          throw new ApiError(response.status, `live tail: HTTP ${response.status}`);
        }
        onState("live", "");
        delay = 500;
        await readEvents(response.body, (event) => {
          if (event.id) cursor = event.id;
          if (!event.data) return;
          let status;
          try {
            status = JSON.parse(event.data);
          } catch {
            return;
          }
          onStatus(status, event.id);
        });
        if (!controller.signal.aborted) onState("retrying", "the stream ended");
      } catch (error) {
        if (controller.signal.aborted) break;
        onState("retrying", error.message);
        if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
          onState("off", error.message);
          return;
        }
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 10000);
    }
    onState("off", "");
  };
  run();
  return () => controller.abort();
}

/** Parses a text/event-stream body, calling `onEvent({id, event, data})` per event. */
async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { id: "", event: "", data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const lines = buffer.split(/\r\n|\r|\n/);
    buffer = lines.pop();
    for (const line of lines) {
      if (line === "") {
        if (event.data.length || event.id) {
          onEvent({ id: event.id, event: event.event, data: event.data.join("\n") });
        }
        event = { id: event.id, event: "", data: [] };
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let val = colon < 0 ? "" : line.slice(colon + 1);
      if (val.startsWith(" ")) val = val.slice(1);
      if (field === "data") event.data.push(val);
      else if (field === "id") event.id = val;
      else if (field === "event") event.event = val;
    }
  }
}
