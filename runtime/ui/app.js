// Stead's web UI: ES modules (this one, and views_ops.js for the schedules and limits
// pages, which imports its helpers from here), no framework, no build step, nothing
// loaded from elsewhere. It reads and acts only through the admin API on its own origin
// (the shapes of GET /services, /invocations, /invocations/{id}, /services/{s}/state/{k},
// /schedules, /limits), so it shows exactly what `stead` and Restate's tools would see.
//
// Pages are hash routes (#/services, #/invocations?service=&handler=&status=&key=,
// #/invocations/{id}, #/state?service=&key=, #/schedules, #/limits): /ui and /ui/ serve
// the same page and a reload or a shared link lands where it was. Lists, one invocation and one key's state
// poll every POLL_MS while they are shown and the tab is visible. Every value from the
// server reaches the page as text (never as HTML): handlers' names and values are
// whatever users made them.

import { limitsPage, schedulesPage } from "./views_ops.js";

const POLL_MS = 1500;
const TOKEN_KEY = "stead.adminToken";
const PAGE_SIZE = 100;
const STATUSES = ["pending", "scheduled", "ready", "running", "paused", "backing-off", "suspended", "completed"];
const KEYED = new Set(["VirtualObject", "Workflow"]);

// ---- DOM ----

const $ = (sel, root = document) => root.querySelector(sel);

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// Replace an element's children by these (arrays flattened, null and false left out).
function fill(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c != null && c !== false));
}

const link = (href, ...children) => h("a", { href }, ...children);
const invHref = (id) => `#/invocations/${encodeURIComponent(id)}`;
const stateHref = (service, key) => `#/state?${new URLSearchParams({ service, key })}`;
const listHref = (params) => `#/invocations?${new URLSearchParams(params)}`;

function badge(text, cls = "") {
  return h("span", { class: `badge ${cls}` }, text);
}

function statusBadge(inv) {
  const failed = inv.completion_result === "failure";
  return h("span", { class: `status s-${inv.status}${failed ? " s-failed" : ""}`, "data-status": inv.status },
    inv.status);
}

// ---- values and times ----

function isBase64(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 1 && "base64" in v;
}

// A value as the API shows it: JSON, or {"base64": ...} for bytes that are not JSON.
function jsonView(v) {
  if (v === undefined) return h("span", { class: "muted" }, "—");
  if (isBase64(v)) return h("code", { class: "json bytes", title: "not JSON: shown as base64" }, `base64:${v.base64}`);
  const compact = JSON.stringify(v);
  if (compact.length <= 80) return h("code", { class: "json" }, compact);
  const pretty = h("pre", { class: "json" }, JSON.stringify(v, null, 2));
  if (compact.length <= 2000) return pretty;
  return h("details", {}, h("summary", {}, `${compact.length} characters of JSON`), pretty);
}

function failureView(f, prefix = "") {
  return h("div", { class: "failure", role: "note" }, prefix, h("strong", {}, `[${f.code}] `), f.message);
}

function relative(ms) {
  const s = Math.round((ms - Date.now()) / 1000);
  const a = Math.abs(s);
  const text = a < 60 ? `${a}s` : a < 3600 ? `${Math.floor(a / 60)}m` : a < 86400 ? `${Math.floor(a / 3600)}h`
    : `${Math.floor(a / 86400)}d`;
  return a < 1 ? "now" : s > 0 ? `in ${text}` : `${text} ago`;
}

// Local time (with the date unless today) and how long ago or ahead; UTC in the tooltip.
function timeText(iso) {
  const d = new Date(iso);
  const today = d.toDateString() === new Date().toDateString();
  return `${today ? d.toLocaleTimeString() : d.toLocaleString()} (${relative(d.getTime())})`;
}

function timeView(iso) {
  return iso ? h("time", { datetime: iso, title: iso }, timeText(iso)) : h("span", { class: "muted" }, "—");
}

// ---- the admin API ----

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// One request (with `json`, if given, as its JSON body); a 401 asks for the admin token
// (kept in sessionStorage) and tries again.
async function api(method, path, json) {
  for (;;) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const headers = { accept: "application/json" };
    if (token) headers.authorization = `Bearer ${token}`;
    const init = { method, headers, cache: "no-store" };
    if (json !== undefined) {
      headers["content-type"] = "application/json";
      init.body = JSON.stringify(json);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, `the server did not answer (${err.message})`);
    }
    const text = await resp.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (resp.ok) return body;
    if (resp.status === 401) {
      if (token) sessionStorage.removeItem(TOKEN_KEY);
      await askToken(token ? "Token refused, try again:" : "Admin token:");
      continue;
    }
    throw new ApiError(resp.status, (body && body.message) || text || resp.statusText);
  }
}

function errorText(err) {
  return err instanceof ApiError && err.status ? `${err.message} (HTTP ${err.status})` : err.message;
}

// ---- the admin token ----

let tokenWaiters = [];

function askToken(label) {
  $("#token-forget").hidden = true;
  $("#token-label").textContent = label;
  $("#token-form").hidden = false;
  $("#token-input").focus();
  return new Promise((resolve, reject) => tokenWaiters.push({ resolve, reject }));
}

function settleToken(ok) {
  $("#token-form").hidden = true;
  $("#token-input").value = "";
  const waiters = tokenWaiters;
  tokenWaiters = [];
  for (const w of waiters) ok ? w.resolve() : w.reject(new ApiError(401, "this needs the server's admin token"));
  $("#token-forget").hidden = !sessionStorage.getItem(TOKEN_KEY);
}

function setUpToken() {
  $("#token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("#token-input").value.trim());
    settleToken(true);
  });
  $("#token-cancel").addEventListener("click", () => settleToken(false));
  $("#token-forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $("#token-forget").hidden = true;
  });
  $("#token-forget").hidden = !sessionStorage.getItem(TOKEN_KEY);
}

// ---- pages ----

// What a page owns: its root element and its polling, stopped when the route changes.
class Page {
  constructor(root) {
    this.root = root;
    this.alive = true;
    this.timer = 0;
    this.generation = 0;
  }

  stop() {
    this.alive = false;
    clearTimeout(this.timer);
  }

  // Run `fn` now and every POLL_MS until the page is left, `fn` answers false, or
  // poll() is called again (a new filter); skipped while the tab is hidden. Pages redraw
  // only what changed, so an open <details> or a text selection survives the polls.
  poll(fn) {
    clearTimeout(this.timer);
    const generation = ++this.generation;
    const tick = async () => {
      if (!this.alive || generation !== this.generation) return;
      let again = true;
      try {
        if (!document.hidden) again = await fn();
      } catch (err) {
        console.error("stead ui: refreshing the page failed", err); // a bug here: keep polling
      }
      // What was not redrawn (nothing changed) still counts its seconds.
      for (const t of this.root.querySelectorAll("time[datetime]")) t.textContent = timeText(t.dateTime);
      if (this.alive && generation === this.generation && again !== false) {
        this.timer = setTimeout(tick, POLL_MS);
      }
    };
    tick();
  }
}

let services = null; // GET /services, fetched once per page load (and by the services page)

async function loadServices(force = false) {
  if (!services || force) services = (await api("GET", "/services")).services.sort((a, b) => a.name.localeCompare(b.name));
  return services;
}

// Select `value` in a <select>, adding it as an option if it is not one (a link's filter).
function select(sel, value) {
  if (value && ![...sel.options].some((o) => o.value === value)) sel.append(h("option", { value }, value));
  sel.value = value || "";
}

function schemaSummary(schema) {
  if (!schema) return "—";
  if (schema.title) return schema.title;
  if (schema.type) return Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type;
  const alts = schema.anyOf || schema.oneOf;
  if (alts) return alts.map(schemaSummary).join(" | ");
  return "any";
}

const OPTIONS = ["idempotency_retention", "journal_retention", "workflow_completion_retention", "inactivity_timeout",
  "abort_timeout"];

function serviceCard(s) {
  const keyed = KEYED.has(s.ty);
  const options = OPTIONS.filter((o) => s[o]).map((o) => `${o.replaceAll("_", " ")} ${s[o]}`);
  if (s.retry_policy) {
    const r = s.retry_policy;
    options.push(`retries: every ${r.initial_interval ?? "?"} ×${r.exponentiation_factor ?? 1} up to ${r.max_interval ?? "∞"}`
      + (r.max_attempts ? `, ${r.max_attempts} attempts then ${r.on_max_attempts ?? "fail"}` : ""));
  }
  return h("section", { class: "card", "data-service": s.name },
    h("div", { class: "card-head" },
      h("h2", {}, s.name),
      badge(s.ty, "ty"),
      s.public ? null : badge("private"),
      h("span", { class: "muted" }, s.deployment_id ? `deployment ${s.deployment_id}` : "in-process"),
      h("span", { class: "spacer" }),
      link(listHref({ service: s.name }), "Invocations"),
      keyed ? link(stateHref(s.name, ""), "State") : null),
    s.documentation ? h("p", {}, s.documentation) : null,
    options.length ? h("p", { class: "muted small" }, options.join(" · ")) : null,
    h("table", { class: "handlers" },
      h("thead", {}, h("tr", {}, h("th", {}, "Handler"), h("th", {}, "Kind"), h("th", {}, "Input"),
        h("th", {}, "Output"), h("th", {}, ""))),
      h("tbody", {}, s.handlers.map((hd) => h("tr", { "data-handler": hd.name },
        h("td", {}, h("code", {}, hd.name), hd.public ? null : badge("private"),
          hd.documentation ? h("div", { class: "muted small" }, hd.documentation) : null),
        h("td", {}, hd.ty ?? "—"),
        h("td", { title: hd.input_json_schema ? JSON.stringify(hd.input_json_schema) : hd.input_description },
          schemaSummary(hd.input_json_schema)),
        h("td", { title: hd.output_json_schema ? JSON.stringify(hd.output_json_schema) : hd.output_description },
          schemaSummary(hd.output_json_schema)),
        h("td", {}, link(listHref({ service: s.name, handler: hd.name }), "invocations")))))));
}

async function servicesPage(page) {
  let list;
  try {
    list = await loadServices(true);
  } catch (err) {
    fill(page.root, h("h1", {}, "Services"), h("p", { class: "error" }, errorText(err)));
    return;
  }
  if (!page.alive) return;
  fill(page.root,
    h("h1", {}, "Services"),
    list.length ? list.map(serviceCard) : h("p", { class: "muted" }, "No services: the server serves no app and no deployment is registered."));
}

function freshness(el, err, live = true) {
  fill(el, err ? h("span", { class: "error" }, `not refreshed: ${errorText(err)}`)
    : `${live ? "live · updated" : "read"} ${new Date().toLocaleTimeString()}`);
}

function invocationRow(inv) {
  return h("tr", { "data-id": inv.id },
    h("td", {}, link(invHref(inv.id), h("code", {}, inv.id))),
    h("td", {}, inv.target),
    h("td", {}, statusBadge(inv),
      inv.completion_result === "failure" ? h("span", { class: "small failed-text", title: inv.completion_failure }, " failed") : null,
      inv.cancel_requested && inv.status !== "completed" ? h("span", { class: "small muted" }, " cancelling") : null),
    h("td", {}, timeView(inv.created_at)),
    h("td", {}, timeView(inv.modified_at)),
    h("td", { class: "num" }, inv.retry_count),
    h("td", { class: "num" }, inv.journal_size));
}

async function invocationsPage(page, params) {
  const filter = {};
  for (const k of ["service", "handler", "status", "key"]) if (params.get(k)) filter[k] = params.get(k);
  let cursors = []; // the cursors of the pages before this one
  let cursor = "";

  const serviceSel = h("select", { name: "service" }, h("option", { value: "" }, "all services"));
  const handlerSel = h("select", { name: "handler" }, h("option", { value: "" }, "all handlers"));
  const statusSel = h("select", { name: "status" }, h("option", { value: "" }, "any status"),
    h("option", { value: STATUSES.filter((s) => s !== "completed").join(",") }, "not completed"),
    STATUSES.map((s) => h("option", { value: s }, s)));
  const keyInput = h("input", { name: "key", type: "search", placeholder: "any key", size: 14 });
  const table = h("div", { id: "invocations" });
  const pager = h("div", { class: "pager" });
  const fresh = h("p", { class: "muted small fresh" });
  const form = h("form", { class: "filters", onsubmit: (ev) => ev.preventDefault() },
    h("label", {}, "Service ", serviceSel), h("label", {}, "Handler ", handlerSel),
    h("label", {}, "Status ", statusSel), h("label", {}, "Key ", keyInput),
    link("#/invocations", "clear"));
  fill(page.root, h("h1", {}, "Invocations"), form, fresh, table, pager);

  function fillHandlers() {
    const svc = (services || []).find((s) => s.name === serviceSel.value);
    fill(handlerSel, h("option", { value: "" }, "all handlers"),
      (svc ? svc.handlers : []).map((hd) => h("option", { value: hd.name }, hd.name)));
    handlerSel.disabled = !svc;
  }
  try {
    for (const s of await loadServices()) serviceSel.append(h("option", { value: s.name }, s.name));
  } catch {
    // The list below still works; its own error says what is wrong.
  }
  select(serviceSel, filter.service); // one no longer served is still offered
  fillHandlers();
  select(handlerSel, filter.handler);
  select(statusSel, filter.status);
  keyInput.value = filter.key || "";

  let shown = "";

  async function refresh() {
    const q = new URLSearchParams({ ...filter, limit: String(PAGE_SIZE) });
    if (cursor) q.set("cursor", cursor);
    try {
      const pageData = await api("GET", `/invocations?${q}`);
      if (!page.alive) return false;
      freshness(fresh);
      const answer = JSON.stringify([cursors.length, pageData]);
      if (answer === shown) return true;
      shown = answer;
      // In the API's order, by id (so by creation): Next → goes on to later ones.
      const rows = pageData.invocations;
      fill(table, rows.length
        ? h("table", { class: "invocations" },
          h("thead", {}, h("tr", {}, ["Invocation", "Target", "Status", "Created", "Modified", "Retries", "Journal"]
            .map((t) => h("th", {}, t)))),
          h("tbody", {}, rows.map(invocationRow)))
        : h("p", { class: "muted" }, Object.keys(filter).length ? "No invocation matches these filters." : "No invocations yet."));
      fill(pager,
        cursors.length ? h("button", { type: "button", onclick: () => move(cursors.pop()) }, "← Previous") : null,
        pageData.next_cursor ? h("button", { type: "button", onclick: () => { cursors.push(cursor); move(pageData.next_cursor); } }, "Next →") : null);
    } catch (err) {
      if (!page.alive) return false;
      freshness(fresh, err);
    }
    return true;
  }

  function move(to) {
    cursor = to;
    shown = "";
    page.poll(refresh);
  }

  function apply() {
    if (!page.alive) return; // a late keystroke's timer after the page was left
    for (const [k, el] of [["service", serviceSel], ["handler", handlerSel], ["status", statusSel], ["key", keyInput]]) {
      if (el.value) filter[k] = el.value;
      else delete filter[k];
    }
    history.replaceState(null, "", listHref(filter));
    cursors = [];
    move("");
  }

  serviceSel.addEventListener("change", () => {
    fillHandlers();
    handlerSel.value = "";
    apply();
  });
  handlerSel.addEventListener("change", apply);
  statusSel.addEventListener("change", apply);
  let typing = 0;
  keyInput.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(apply, 300);
  });
  move("");
}

// ---- one invocation ----

function field(label, ...value) {
  return [h("dt", {}, label), h("dd", {}, ...value)];
}

function targetView(inv) {
  const parts = [link(`#/services`, inv.target_service_name)];
  if (inv.target_service_key != null) {
    parts.push("/", link(stateHref(inv.target_service_name, inv.target_service_key), inv.target_service_key));
  }
  parts.push("/", inv.target_handler_name);
  return parts;
}

function entryView(e) {
  const waiting = !e.completed;
  const lines = [];
  const done = e.completion;
  if (e.kind === "Sleep") {
    lines.push(h("div", {}, waiting ? "sleeps until " : "woke up at ", timeView(e.wakeup_at)));
  } else if (e.kind === "Call" || e.kind === "OneWayCall" || e.kind === "AttachInvocation") {
    const what = e.kind === "Call" ? "calls " : e.kind === "OneWayCall" ? "sends to " : "attaches to ";
    const label = e.invoked_target || e.invoked_id || "?";
    lines.push(h("div", {}, what, e.invoked_id ? link(invHref(e.invoked_id), label) : label,
      e.invoked_id && e.invoked_target ? h("span", { class: "muted small" }, ` ${e.invoked_id}`) : null));
  } else if (e.value !== null && e.value !== undefined) {
    lines.push(h("div", {}, e.kind === "Run" ? "result " : "value ", jsonView(e.value)));
  }
  if (e.failure) lines.push(failureView(e.failure, e.kind === "Run" ? "step failed " : "failed "));
  if (done) {
    if (done.failure) lines.push(failureView(done.failure, "completed with failure "));
    else if (e.kind !== "Sleep" && done.value !== null && done.value !== undefined) {
      lines.push(h("div", {}, e.kind === "Awakeable" ? "resolved with " : "result ", jsonView(done.value)));
    }
  } else if (waiting && e.kind !== "Sleep") {
    const why = { Awakeable: "waiting to be resolved", Call: "waiting for the result",
      GetPromise: "waiting for the promise", AttachInvocation: "waiting for the result" }[e.kind] || "waiting";
    lines.push(h("div", { class: "muted" }, why, "…"));
  }
  const cls = `entry k-${e.kind.toLowerCase()}${waiting ? " waiting" : ""}${e.failure || (done && done.failure) ? " failed" : ""}`;
  const showName = e.name && !(e.kind === "Call" || e.kind === "OneWayCall");
  return h("li", { class: cls, "data-index": e.index, "data-kind": e.kind },
    h("div", { class: "entry-head" },
      h("span", { class: "idx" }, `#${e.index}`), h("span", { class: "kind" }, e.kind),
      showName ? h("span", { class: "name" }, e.name) : null),
    lines);
}

// The journal between the invocation's start and its end (or what it waits for now).
function timelineView(inv) {
  const items = [h("li", { class: "entry edge" },
    h("div", { class: "entry-head" }, h("span", { class: "kind" }, "Invoked")),
    h("div", {}, "by ", inv.invoked_by_id ? link(invHref(inv.invoked_by_id), inv.invoked_by_id) : inv.invoked_by,
      " at ", timeView(inv.created_at)))];
  items.push(...(inv.journal || []).map(entryView));
  if (inv.status === "completed") {
    items.push(h("li", { class: `entry edge ${inv.failure ? "failed" : "ok"}` },
      h("div", { class: "entry-head" }, h("span", { class: "kind" }, inv.failure ? "Failed" : "Succeeded")),
      h("div", {}, "at ", timeView(inv.completed_at)),
      inv.failure ? failureView(inv.failure) : h("div", {}, "output ", jsonView(inv.output))));
  } else if (inv.next_retry_at) {
    items.push(h("li", { class: "entry edge waiting" },
      h("div", { class: "entry-head" }, h("span", { class: "kind" }, `Retry ${inv.retry_count + 1}`)),
      h("div", {}, "next attempt at ", timeView(inv.next_retry_at))));
  } else {
    items.push(h("li", { class: "entry edge waiting" },
      h("div", { class: "entry-head" }, h("span", { class: "kind" }, `${inv.status} now`))));
  }
  return h("ol", { class: "timeline", id: "journal" }, items);
}

// A button that acts on its second click (within 4 s): kill and purge cannot be undone.
function confirmButton(label, title, action) {
  const button = h("button", { type: "button", class: "action", title }, label);
  let armed = 0;
  const disarm = () => {
    clearTimeout(armed);
    armed = 0;
    button.textContent = label;
    button.classList.remove("armed");
  };
  button.addEventListener("click", async () => {
    if (!armed) {
      armed = setTimeout(disarm, 4000);
      button.textContent = `Confirm ${label.toLowerCase()}`;
      button.classList.add("armed");
      return;
    }
    disarm();
    button.disabled = true;
    try {
      await action();
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

// A button that acts on its first click: pause and resume are undone by each other.
function actionButton(label, title, action) {
  const button = h("button", { type: "button", class: "action", title }, label);
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await action();
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

async function invocationPage(page, id) {
  const header = h("div", {});
  const summary = h("dl", { class: "summary" });
  const buttons = h("div", { class: "buttons" });
  const message = h("p", { class: "flash", role: "status" });
  const details = h("div", {});
  const fresh = h("p", { class: "muted small fresh" });
  fill(page.root, header, fresh, h("div", { class: "actions", id: "actions" }, buttons, message), summary, details);
  let shownState = null;
  let shown = "";

  async function act(verb) {
    message.className = "flash";
    message.setAttribute("role", "status");
    message.textContent = `${verb}…`;
    try {
      const answer = await api("PATCH", `/invocations/${encodeURIComponent(id)}/${verb}`);
      message.textContent = `${verb}: ${answer.status}`;
      if (verb === "purge") {
        shownState = null;
        page.poll(refresh);
        return;
      }
    } catch (err) {
      message.className = "flash error";
      message.setAttribute("role", "alert");
      message.textContent = `${verb} refused: ${errorText(err)}`;
    }
    page.poll(refresh);
  }

  // state: "completed", "paused", "waiting" (pending or scheduled: not started) or "active".
  function renderButtons(state) {
    if (state === shownState) return; // keeps a button that waits for its confirming click
    shownState = state;
    const pauseOrResume = state === "paused"
      ? [actionButton("Resume", "Run it again: it replays from its journal with a fresh set of attempts", () => act("resume"))]
      : state === "active"
        ? [actionButton("Pause", "It runs nothing, and keeps its key, until resumed", () => act("pause"))]
        : [];
    fill(buttons, ...(state === "completed"
      ? [confirmButton("Purge", "Delete the record, journal and idempotency entry of this completed invocation", () => act("purge"))]
      : [...pauseOrResume,
        confirmButton("Cancel", "Cooperative: the handler sees a cancellation at its next await and can compensate; callees are cancelled too", () => act("cancel")),
        confirmButton("Kill", "Stops at once, no compensation; callees are killed too", () => act("kill"))]));
  }

  async function refresh() {
    let inv;
    try {
      inv = await api("GET", `/invocations/${encodeURIComponent(id)}`);
    } catch (err) {
      if (!page.alive) return false;
      if (err.status === 404) {
        fill(header, h("h1", {}, h("code", {}, id)));
        fill(summary);
        fill(details, h("p", {}, "No such invocation (never existed, or purged)."));
        fill(buttons);
        shownState = null;
        shown = "";
        fill(fresh);
        return false;
      }
      freshness(fresh, err);
      return true;
    }
    if (!page.alive) return false;
    const completed = inv.status === "completed";
    freshness(fresh, null, !completed);
    renderButtons(completed ? "completed" : inv.status === "paused" ? "paused"
      : inv.status === "pending" || inv.status === "scheduled" ? "waiting" : "active");
    const answer = JSON.stringify(inv);
    if (answer === shown) return true;
    shown = answer;
    fill(header, h("h1", {}, h("span", {}, targetView(inv)), statusBadge(inv)), h("p", { class: "sub" }, h("code", { class: "inv-id" }, inv.id)));
    fill(summary, ...[
      field("Status", statusBadge(inv), inv.cancel_requested && !completed ? " (cancel requested)" : ""),
      field("Created", timeView(inv.created_at)),
      field("Modified", timeView(inv.modified_at)),
      completed ? field("Completed", timeView(inv.completed_at)) : [],
      field("Retries", String(inv.retry_count)),
      inv.next_retry_at ? field("Next retry", timeView(inv.next_retry_at)) : [],
      field("Invoked by", inv.invoked_by_id ? link(invHref(inv.invoked_by_id), inv.invoked_by_id) : inv.invoked_by),
      inv.idempotency_key ? field("Idempotency key", h("code", {}, inv.idempotency_key)) : [],
      field("Deployment", inv.pinned_deployment_id || "in-process"),
      field("Journal", `${inv.journal_size} entries`),
    ].flat());
    fill(details,
      inv.failure ? h("section", {}, h("h2", {}, "Failure"), failureView(inv.failure)) : null,
      h("section", { class: "io" },
        h("div", {}, h("h2", {}, "Input"), jsonView(inv.input)),
        completed && !inv.failure ? h("div", {}, h("h2", {}, "Output"), jsonView(inv.output)) : null),
      h("section", {}, h("h2", {}, "Journal"), timelineView(inv)),
      inv.headers && inv.headers.length
        ? h("details", {}, h("summary", {}, `Headers (${inv.headers.length})`),
          h("table", { class: "kv" }, h("tbody", {}, inv.headers.map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, v))))))
        : null);
    return !completed; // a completed invocation no longer changes (a purge refreshes by itself)
  }

  page.poll(refresh);
}

// ---- one key's state ----

async function statePage(page, params) {
  const service = params.get("service") || "";
  const key = params.get("key") || "";
  const serviceSel = h("select", { name: "service", required: true });
  const keyInput = h("input", { name: "key", type: "text", placeholder: "key", value: key, required: true });
  const result = h("div", { id: "state" });
  const fresh = h("p", { class: "muted small fresh" });
  const form = h("form", {
    class: "filters",
    onsubmit: (ev) => {
      ev.preventDefault();
      location.hash = stateHref(serviceSel.value, keyInput.value);
    },
  }, h("label", {}, "Service ", serviceSel), h("label", {}, "Key ", keyInput), h("button", { type: "submit" }, "Show"));
  fill(page.root, h("h1", {}, "State"), form, fresh, result);
  try {
    const keyed = (await loadServices()).filter((s) => KEYED.has(s.ty));
    serviceSel.append(...keyed.map((s) => h("option", { value: s.name }, s.name)));
    if (!keyed.length) fill(result, h("p", { class: "muted" }, "No virtual object or workflow is served: nothing has state."));
  } catch (err) {
    fill(result, h("p", { class: "error" }, errorText(err)));
  }
  if (service) select(serviceSel, service);
  if (!service || !key) {
    keyInput.focus();
    return;
  }

  let shown = "";
  page.poll(async () => {
    try {
      const st = await api("GET", `/services/${encodeURIComponent(service)}/state/${encodeURIComponent(key)}`);
      if (!page.alive) return false;
      freshness(fresh);
      const answer = JSON.stringify(st);
      if (answer === shown) return true;
      shown = answer;
      const names = Object.keys(st.state);
      fill(result,
        h("h2", {}, `${st.service} / ${st.object_key}`),
        h("p", { class: "muted small" }, "version ", h("code", { id: "state-version" }, st.version), " · ",
          link(listHref({ service, key }), "invocations on this key")),
        names.length
          ? h("table", { class: "kv state" }, h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Value"))),
            h("tbody", {}, names.map((n) => h("tr", { "data-name": n }, h("td", {}, h("code", {}, n)), h("td", {}, jsonView(st.state[n]))))))
          : h("p", { class: "muted" }, "No state for this key."));
    } catch (err) {
      if (!page.alive) return false;
      if (err.status === 404) {
        fill(result, h("p", { class: "error" }, errorText(err)));
        fill(fresh);
        return false;
      }
      freshness(fresh, err);
    }
    return true;
  });
}

// ---- routing ----

let current = null;

function route() {
  if (current) current.stop();
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  const segs = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query);
  const name = segs[0] || "services";
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const page = new Page($("#view"));
  current = page;
  if (name === "services") {
    document.title = "Services · Stead";
    servicesPage(page);
  } else if (name === "invocations" && segs[1]) {
    document.title = `${segs[1]} · Stead`;
    invocationPage(page, segs[1]);
  } else if (name === "invocations") {
    document.title = "Invocations · Stead";
    invocationsPage(page, params);
  } else if (name === "state") {
    document.title = "State · Stead";
    statePage(page, params);
  } else if (name === "schedules") {
    document.title = "Schedules · Stead";
    schedulesPage(page);
  } else if (name === "limits") {
    document.title = "Limits · Stead";
    limitsPage(page);
  } else {
    fill(page.root, h("h1", {}, "Not found"), h("p", {}, "No such page: ", link("#/services", "services")));
  }
}

async function showVersion() {
  try {
    const v = await api("GET", "/version");
    $("#version").textContent = `stead ${v.version}`;
    if (v.ingress_endpoint) $("#version").title = `ingress ${v.ingress_endpoint}`;
  } catch {
    // The pages say what is wrong with the server.
  }
}

// For views_ops.js (it only calls them, once this module has run: the import cycle is safe).
export {
  actionButton, api, confirmButton, errorText, fill, freshness, h, invHref, link, listHref, timeView,
};

setUpToken();
window.addEventListener("hashchange", route);
route();
showVersion();
