// DOM helpers. Every value from the API becomes a text node (never HTML): `h` appends
// strings and numbers as text, so an event containing `<script>` shows as text.

/** An element with attributes (`on*` functions become listeners) and children. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Appends children (nodes, or strings/numbers as text; arrays are flattened). */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A time for people: local date and time, or an em dash. */
export function when(value) {
  if (!value) return "—";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

/** A <time> element of an RFC 3339 value. */
export function time(value) {
  return value ? h("time", { datetime: value }, when(value)) : "—";
}

/** A percentage of successes, or an em dash with no attempts. */
export function rate(bucket) {
  const total = (bucket?.succeeded ?? 0) + (bucket?.failed ?? 0);
  return total === 0 ? "—" : `${Math.round((100 * bucket.succeeded) / total)}%`;
}

/** A delivery state as the REST API and its SSE stream name it (QUEUED, FAILED, ...). */
export function stateName(state) {
  return String(state ?? "").toUpperCase();
}

/** A state badge. */
export function badge(state) {
  const name = stateName(state);
  return h("span", { class: `badge state-${name.toLowerCase()}` }, name || "—");
}

/** Pretty JSON of a value, or the text as it is when it is not JSON. */
export function pretty(text) {
  if (text === null || text === undefined) return "";
  if (typeof text !== "string") return JSON.stringify(text, null, 2);
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

/** An RFC 3339 string of a datetime-local input's value (empty stays empty). */
export function fromLocalInput(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString();
}
