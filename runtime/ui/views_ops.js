// The operations pages of Stead's web UI, an ES module that app.js imports (and whose
// helpers it imports back: they are only called once app.js has run):
//
//   #/schedules   GET /schedules: each cron schedule, what it fires, when next, its last
//                 firing and its invocation; Pause / Resume (PATCH /schedules/{id}
//                 {"paused": true | false}) and Remove (DELETE /schedules/{id})
//   #/limits      GET /limits: each handler under a concurrency or rate limit, the limits,
//                 how many of its invocations run and how many wait in its queue, the same
//                 per limit key
//
// Both poll like the other pages and redraw only what changed: a Remove button waiting
// for its confirming click, or an open list of upcoming fire times, survives the polls.

import {
  actionButton, api, confirmButton, errorText, fill, freshness, h, invHref, link, listHref, timeView,
} from "./app.js";

const none = (text = "—") => h("span", { class: "muted" }, text);

// A duration in milliseconds as the API's own strings write it: 1s, 5m, 2h, 250ms.
function duration(ms) {
  for (const [unit, size] of [["d", 86400000], ["h", 3600000], ["m", 60000], ["s", 1000]]) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

function flash(el, text, error = false) {
  el.className = error ? "flash error" : "flash";
  el.setAttribute("role", error ? "alert" : "status");
  el.textContent = text;
}

// ---- schedules ----

function targetLink(s) {
  const filter = { service: s.service, handler: s.handler };
  if (s.key != null) filter.key = s.key;
  return link(listHref(filter), s.target);
}

function whenView(s) {
  return s.cron
    ? [h("code", {}, s.cron), h("span", { class: "muted small" }, ` ${s.timezone || "UTC"}`)]
    : ["every ", h("code", {}, s.every)];
}

function nextView(s) {
  if (s.paused || !s.next_fire_at) return none();
  const later = (s.upcoming || []).slice(1);
  return [timeView(s.next_fire_at),
    later.length ? h("details", { class: "upcoming" }, h("summary", { class: "muted small" }, `then ${later.length} more`),
      h("ol", {}, later.map((t) => h("li", {}, timeView(t))))) : null];
}

function lastView(s) {
  if (!s.last_fire_at) return none("not yet");
  const inv = s.last_invocation_id;
  return [timeView(s.last_fire_at),
    inv ? h("div", { class: "small" }, link(invHref(inv), h("code", {}, inv)),
      s.running_invocation_id === inv ? h("span", { class: "muted" }, " running") : null) : null];
}

function countsView(s) {
  const counts = [["fired", s.fired], ["missed", s.missed], ["caught up", s.caught_up], ["overlapped", s.overlapped],
    ["failed", s.failed]].filter(([name, n]) => n || name === "fired").map(([name, n]) => `${name} ${n}`);
  return [h("span", { class: "small" }, counts.join(" · ")),
    s.last_error ? h("div", { class: "small failed-text" }, s.last_error) : null];
}

export async function schedulesPage(page) {
  const message = h("p", { class: "flash", role: "status" });
  const fresh = h("p", { class: "muted small fresh" });
  const tbody = h("tbody", {});
  const body = h("div", { id: "schedules" });
  const rows = new Map(); // id -> {tr, keys: the data each cell shows now}

  async function act(id, verb, call, done) {
    flash(message, `${verb} ${id}…`);
    try {
      flash(message, `${verb} ${id}: ${done(await call())}`);
    } catch (err) {
      flash(message, `${verb} ${id} refused: ${errorText(err)}`, true);
    }
    page.poll(refresh);
  }

  const path = (id) => `/schedules/${encodeURIComponent(id)}`;
  const pause = (id, paused) => act(id, paused ? "pause" : "resume", () => api("PATCH", path(id), { paused }),
    (answer) => (answer.paused ? "paused" : "active"));

  // Each column: its title, the data it shows (redrawn only when that changes), the cells.
  const columns = [
    ["Schedule", (s) => [s.id, s.origin], (s) => [h("code", {}, s.id), s.origin === "code"
      ? h("span", { class: "badge", title: "declared in the app's code (app(..., schedules=[...])): "
        + "created again at the next start if removed" }, "in code") : null]],
    ["Target", (s) => s.target, targetLink],
    ["When", (s) => [s.cron, s.timezone, s.every], whenView],
    ["State", (s) => s.paused, (s) => h("span", { class: `status ${s.paused ? "s-paused" : "s-active"}` },
      s.paused ? "paused" : "active")],
    ["Next", (s) => [s.paused, s.upcoming], nextView],
    ["Last firing", (s) => [s.last_fire_at, s.last_invocation_id, s.running_invocation_id], lastView],
    ["Firings", (s) => [s.fired, s.missed, s.caught_up, s.overlapped, s.failed, s.last_error], countsView],
    ["", (s) => s.paused, (s) => h("div", { class: "buttons" },
      s.paused
        ? actionButton("Resume", "Fire again from the next fire time on", () => pause(s.id, false))
        : actionButton("Pause", "Fire nothing until resumed", () => pause(s.id, true)),
      confirmButton("Remove", "Delete the schedule (the invocations it started are left as they are)",
        () => act(s.id, "remove", () => api("DELETE", path(s.id)), (answer) => answer.status)))],
  ];
  const table = h("table", { class: "invocations schedules" },
    h("thead", {}, h("tr", {}, columns.map(([title]) => h("th", {}, title)))), tbody);
  fill(page.root, h("h1", {}, "Schedules"), fresh, h("div", { id: "actions" }, message), body);

  function update(s, index) {
    let row = rows.get(s.id);
    if (!row) {
      row = { tr: h("tr", { "data-id": s.id }, columns.map(() => h("td", {}))), keys: [] };
      rows.set(s.id, row);
    }
    columns.forEach(([, data, render], i) => {
      const key = JSON.stringify(data(s));
      if (key === row.keys[i]) return;
      row.keys[i] = key;
      const td = row.tr.children[i];
      const open = td.querySelector("details[open]") !== null;
      fill(td, render(s));
      if (open && td.querySelector("details")) td.querySelector("details").open = true;
    });
    // Moved only when out of place: a row under the pointer stays put between polls.
    if (tbody.children[index] !== row.tr) tbody.insertBefore(row.tr, tbody.children[index] || null);
  }

  async function refresh() {
    let list;
    try {
      list = (await api("GET", "/schedules")).schedules;
    } catch (err) {
      if (!page.alive) return false;
      freshness(fresh, err);
      return true;
    }
    if (!page.alive) return false;
    freshness(fresh);
    const ids = new Set(list.map((s) => s.id));
    for (const [id, row] of rows) {
      if (!ids.has(id)) {
        row.tr.remove();
        rows.delete(id);
      }
    }
    list.forEach(update);
    if (!list.length) {
      fill(body, h("p", { class: "muted" }, "No schedules. Declare them in code (app(..., schedules=[...])), "
        + "or add one: POST /schedules, or `stead schedules add`."));
    } else if (!table.isConnected) fill(body, table);
    return true;
  }

  page.poll(refresh);
}

// ---- limits ----

function limitsView(item) {
  const lines = [[`${item.service} (all its handlers)`, item.service_limits], [item.handler, item.handler_limits]];
  return lines.map(([who, l]) => {
    const parts = [];
    if (l.concurrency != null) parts.push(`at most ${l.concurrency} at once`);
    if (l.concurrency_per_limit_key != null) parts.push(`${l.concurrency_per_limit_key} at once per limit key`);
    if (l.rate_limit) parts.push(`${l.rate_limit.starts} starts per ${duration(l.rate_limit.per_ms)}`);
    return parts.length ? h("div", {}, h("span", { class: "muted" }, `${who}: `), parts.join(", ")) : null;
  });
}

function limitRows(item) {
  const filter = { service: item.service, handler: item.handler };
  const count = (n, status) => (n ? link(listHref({ ...filter, status }), String(n)) : String(n));
  const keyed = item.limit_keys.some((k) => k.limit_key != null);
  return [
    h("tr", { "data-handler": `${item.service}/${item.handler}`, class: "limited" },
      h("td", {}, link(listHref(filter), h("code", {}, `${item.service}/${item.handler}`))),
      h("td", {}, limitsView(item)),
      h("td", { class: "num running" }, count(item.running, "running")),
      h("td", { class: "num queued", title: "waiting for a slot: listed as \"ready\" among the invocations" },
        count(item.queued, "ready"))),
    keyed ? item.limit_keys.map((k) => h("tr", { class: "limit-key", "data-limit-key": k.limit_key ?? "" },
      h("td", {}, k.limit_key == null ? none("no limit key") : ["limit key ", h("code", {}, k.limit_key)]),
      h("td", {}),
      h("td", { class: "num running" }, String(k.running)),
      h("td", { class: "num queued" }, String(k.queued)))) : [],
  ];
}

export async function limitsPage(page) {
  const fresh = h("p", { class: "muted small fresh" });
  const body = h("div", { id: "limits" });
  fill(page.root, h("h1", {}, "Limits"), fresh, body);
  let shown = "";
  page.poll(async () => {
    try {
      const items = (await api("GET", "/limits")).limits;
      if (!page.alive) return false;
      freshness(fresh);
      const answer = JSON.stringify(items);
      if (answer === shown) return true;
      shown = answer;
      fill(body, items.length
        ? h("table", { class: "invocations limits" },
          h("thead", {}, h("tr", {}, ["Handler", "Limits", "Running", "Queued"].map((t) => h("th", {}, t)))),
          h("tbody", {}, items.map(limitRows)))
        : h("p", { class: "muted" }, "No handler is under a limit. Declare them in code: ",
          h("code", {}, "Service(..., concurrency=)"), ", ",
          h("code", {}, "@handler(concurrency=, concurrency_per_limit_key=, rate_limit=)"), "."));
    } catch (err) {
      if (!page.alive) return false;
      freshness(fresh, err);
    }
    return true;
  });
}
