// The console's entry: sign-in, the hash router (#/webhooks, #/webhooks/{id}, #/events,
// #/events/{id}, #/tail) and the live tail, which runs from sign-in to sign-out so no
// change is missed while another page is shown.

import { api, setToken, tail, token } from "./api.js";
import { replace } from "./dom.js";
import * as pages from "./pages.js";

const view = document.getElementById("view");
const nav = document.getElementById("nav");
const tailBadge = document.getElementById("tail-state");
const MAX_TAIL_ROWS = 500;

const live = { rows: [], state: "off", detail: "", paused: false };
let stopTail = null;
let onTailChange = null;

function startTail() {
  stopTail?.();
  live.rows = [];
  stopTail = tail({
    onStatus(status) {
      live.rows.unshift({ ...status, received: new Date().toISOString() });
      live.rows.length = Math.min(live.rows.length, MAX_TAIL_ROWS);
      onTailChange?.();
    },
    onState(state, detail) {
      live.state = state;
      live.detail = detail;
      tailBadge.className = `pill ${state}`;
      replace(tailBadge, state);
      onTailChange?.();
    },
  });
}

function signOut() {
  stopTail?.();
  stopTail = null;
  setToken(null);
  nav.hidden = true;
  location.hash = "";
  route();
}

async function signIn(value) {
  if (!value) throw new Error("Enter an account token.");
  setToken(value);
  try {
    await api("/api/v1/webhooks/?perpage=1");
  } catch (error) {
    setToken(null);
    throw error;
  }
  pages.flash("");
  nav.hidden = false;
  startTail();
  location.hash = "#/webhooks";
  route();
}

async function route() {
  onTailChange = null;
  if (!token()) {
    nav.hidden = true;
    pages.signIn(view, signIn);
    return;
  }
  nav.hidden = false;
  if (!stopTail) startTail();
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  for (const link of nav.querySelectorAll("a")) {
    const current = link.getAttribute("href") === `#/${parts[0] || "webhooks"}`;
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  try {
    if (parts[0] === "events" && parts[1]) await pages.event(view, parts[1]);
    else if (parts[0] === "events") await pages.events(view);
    else if (parts[0] === "tail") onTailChange = pages.tailPage(view, live);
    else if (parts[0] === "webhooks" && parts[1]) await pages.deliveryLog(view, parts[1]);
    else await pages.webhooks(view);
    document.title = `${view.querySelector("h1")?.textContent ?? "console"} · webhookd`;
  } catch (error) {
    if (error.status === 401) {
      signOut();
      pages.flash(error.message);
      return;
    }
    pages.flash(error.message);
  }
}

document.getElementById("sign-out").addEventListener("click", signOut);
window.addEventListener("hashchange", () => {
  pages.flash("");
  route().then(() => view.focus({ preventScroll: true }));
});
route();
