/*
 * app.js - Batchy's dashboard: the overview of every workflow (/ui) and a
 * workflow's steps and history (/ui/<wf>), kept live by /events.
 *
 * Everything from Redis reaches the page as text (textContent, attribute
 * values), never as HTML: a step named <script> shows as that text. The
 * token, when one is entered, lives in this tab's memory only and goes in
 * an Authorization header, never in a URL.
 */
"use strict";

(function () {
  const STATE_FIELDS = new Set(["status", "batch_id", "from_date", "to_date", "batch_start",
    "batch_end", "error_message"]);
  const STATUSES = ["failed", "open", "new", "success", "abandoned"];
  const HISTORY_PAGE = 20;
  const POLL_MS = 5000;

  let token = null;         // entered in this tab; forgotten on reload
  let tokenRequired = false;
  let view = null;          // {kind: "overview"} or {kind: "workflow", wf, before, newer: []}
  let source = null;        // the EventSource, while it lives
  let pollTimer = null;
  let refreshTimer = null;
  let refreshing = null;    // the refresh under way, if any
  let again = false;        // a change came during it: refresh once more

  const $ = (id) => document.getElementById(id);

  /* An element with attributes and children; text is always text. */
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = String(v);
      else if (k === "onclick") e.addEventListener("click", v);
      else e.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c !== null && c !== undefined && c !== false)
        e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  /* ------------------------------------------------------------ formats */

  /* Batchy's times are UTC without a zone: 2026-11-20T06:10:00.000000. */
  function parseTime(s) {
    if (typeof s !== "string") return null;
    const m = /^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?$/.exec(s);
    if (!m) return null;
    const ms = m[7] ? Math.floor(Number((m[7] + "00000").slice(0, 6)) / 1000) : 0;
    const d = new Date(0);
    d.setUTCFullYear(+m[1], +m[2] - 1, +m[3]);
    d.setUTCHours(+m[4], +m[5], +m[6], ms);
    return d;
  }

  /* In the viewer's time zone; UTC, as stored, on hover. */
  function timeCell(s) {
    const d = parseTime(s);
    if (!d) return el("span", { class: "muted", text: s === undefined || s === null ? "–" : s });
    return el("time", { datetime: d.toISOString(), title: s.replace("T", " ") + " UTC",
                        text: d.toLocaleString() });
  }

  function humanDuration(seconds) {
    if (!(seconds >= 0)) return "–";
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    let s = Math.round(seconds);
    const parts = [];
    for (const [unit, size] of [["d", 86400], ["h", 3600], ["min", 60]]) {
      if (s >= size) {
        parts.push(Math.floor(s / size) + " " + unit);
        s %= size;
      }
    }
    if (s || !parts.length) parts.push(s + " s");
    return parts.slice(0, 2).join(" ");
  }

  function duration(start, end) {
    const a = parseTime(start), b = parseTime(end);
    return a && b ? humanDuration((b - a) / 1000) : "–";
  }

  function badge(status, text) {
    return el("span", { class: "badge " + (STATUSES.includes(status) || status === "late" ? status : "new"),
                        text: text });
  }

  function countBadges(counts) {
    const keys = Object.keys(counts || {}).sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : 1));
    return el("span", { class: "badges" }, keys.map((k) => badge(k, counts[k] + " " + k)));
  }

  function rank(status) {
    const i = STATUSES.indexOf(status);
    return i < 0 ? STATUSES.length : i;
  }

  function paramText(v) {
    return typeof v === "string" ? v : JSON.stringify(v);
  }

  /* ------------------------------------------------------------ the API */

  async function api(path, options) {
    const r = await fetch(path, Object.assign({ cache: "no-store",
                                                headers: { Accept: "application/json" } }, options));
    let body = null;
    try {
      body = await r.json();
    } catch (e) {
      body = null;
    }
    if (!r.ok) {
      const err = new Error(body && body.error ? body.error : "HTTP " + r.status);
      err.status = r.status;
      throw err;
    }
    return body;
  }

  /* A write, with the token in its header and its parameters in the body. */
  function write(endpoint, wf, params) {
    return api("/" + endpoint + "/" + encodeURIComponent(wf), {
      method: "POST",
      headers: { Accept: "application/json", Authorization: "Bearer " + token,
                 "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(params).toString(),
    });
  }

  /* ------------------------------------------------------------ overview */

  function rowRank(w) {
    if (w.error || (w.counts && w.counts.failed)) return 0;
    return w.late ? 1 : 2;
  }

  function buildOverview() {
    const params = new URLSearchParams(location.search);
    const q = el("input", { id: "filter", type: "search", placeholder: "Filter by name",
                            "aria-label": "Filter by name", value: params.get("q") || "" });
    const status = el("select", { id: "status", "aria-label": "Status" },
      el("option", { value: "", text: "Every status" }),
      ["failed", "late", "open", "new", "success", "abandoned"].map(
        (s) => el("option", { value: s, text: s })));
    status.value = params.get("status") || "";
    const onFilter = () => {
      const p = new URLSearchParams();
      if (q.value) p.set("q", q.value);
      if (status.value) p.set("status", status.value);
      history.replaceState(null, "", "/ui" + (p.toString() ? "?" + p : ""));
      renderOverview();
    };
    q.addEventListener("input", onFilter);
    status.addEventListener("change", onFilter);
    $("main").replaceChildren(
      el("div", { class: "filters" }, q, status),
      el("p", { id: "summary", class: "summary" }),
      el("div", { id: "list" }));
  }

  function renderOverview() {
    const rows = view.rows || [];
    const q = $("filter").value.trim().toLowerCase();
    const want = $("status").value;
    const shown = rows.filter((w) => {
      if (q && !w.name.toLowerCase().includes(q)) return false;
      if (want === "late") return w.late === true;
      if (want) return !!(w.counts && w.counts[want]);
      return true;
    }).sort((a, b) => rowRank(a) - rowRank(b) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const failed = rows.filter((w) => rowRank(w) === 0).length;
    const late = rows.filter((w) => w.late).length;
    $("summary").textContent = rows.length + " workflows" +
      (shown.length !== rows.length ? ", " + shown.length + " shown" : "") +
      (failed ? ", " + failed + " with a failed step" : "") + (late ? ", " + late + " late" : "");
    const body = el("tbody");
    for (const w of shown) {
      const cls = ["workflow", rowRank(w) === 0 ? "failed" : w.late ? "late" : ""].join(" ").trim();
      body.append(el("tr", { class: cls, "data-name": w.name },
        el("td", { "data-label": "Workflow" },
           el("a", { class: "name", href: "/ui/" + encodeURIComponent(w.name), text: w.name })),
        el("td", { "data-label": "Steps", text: w.error ? "–" : w.steps }),
        el("td", { "data-label": "Status", class: "status" },
           w.error ? el("span", { class: "error", text: w.error }) : countBadges(w.counts),
           w.late ? [" ", badge("late", "late")] : null),
        el("td", { "data-label": "Batch", text: w.batch_id || "–" }),
        el("td", { "data-label": "Last change" }, timeCell(w.updated))));
    }
    $("list").replaceChildren(shown.length ? el("table", { id: "workflows" },
      el("thead", {}, el("tr", {}, ["Workflow", "Steps", "Status", "Batch", "Last change"].map(
        (h) => el("th", { text: h })))), body)
      : el("p", { class: "muted", text: rows.length ? "No workflow matches." :
        "No workflow is loaded yet: load_cfg/<wf> loads one." }));
  }

  async function refreshOverview() {
    const data = await api("/workflows");
    view.rows = data.workflows;
    renderOverview();
  }

  /* ------------------------------------------------------------ a workflow */

  function buildWorkflow() {
    $("where").textContent = view.wf;
    document.title = view.wf + " · Batchy";
    $("main").replaceChildren(
      el("p", {}, el("a", { href: "/ui", text: "← every workflow" })),
      el("h1", { text: "Steps" }),
      el("div", { id: "steps" }),
      el("h2", { text: "History" }),
      el("div", { id: "history" }),
      el("div", { class: "pager" },
        el("button", { id: "newer", type: "button", text: "← Newer", onclick: newer }),
        el("button", { id: "older", type: "button", text: "Older →", onclick: older }),
        el("span", { id: "page", class: "muted" })));
  }

  function renderSteps(doc) {
    const names = Object.keys(doc).sort();
    const actions = tokenRequired && token !== null;
    const body = el("tbody");
    for (const name of names) {
      const r = doc[name] || {};
      const params = Object.keys(r).filter((k) => !STATE_FIELDS.has(k)).sort()
        .map((k) => el("div", { text: k + " = " + paramText(r[k]) }));
      body.append(el("tr", { class: r.status === "failed" ? "step failed" : "step", "data-step": name },
        el("td", { "data-label": "Step", class: "name", text: name }),
        el("td", { "data-label": "Status" }, badge(r.status || "new", r.status || "new")),
        el("td", { "data-label": "Window" }, timeCell(r.from_date), " → ", timeCell(r.to_date)),
        el("td", { "data-label": "Start" }, timeCell(r.batch_start)),
        el("td", { "data-label": "End" }, timeCell(r.batch_end)),
        el("td", { "data-label": "Duration",
                   text: r.status === "open" ? "running" : duration(r.batch_start, r.batch_end) }),
        el("td", { "data-label": "Error", class: "error", text: r.error_message || "" }),
        el("td", { "data-label": "Parameters", class: "params" }, params),
        actions ? el("td", { "data-label": "Actions" }, stepActions(name, r)) : null));
    }
    const heads = ["Step", "Status", "Window", "Start", "End", "Duration", "Error", "Parameters"];
    if (actions) heads.push("Actions");
    $("steps").replaceChildren(el("table", { id: "step-table" },
      el("thead", {}, el("tr", {}, heads.map((h) => el("th", { text: h })))), body));
  }

  function renderHistory(h) {
    const body = el("tbody");
    for (const b of h.batches) {
      const steps = b.steps || {};
      const counts = {};
      const errors = [];
      for (const [name, s] of Object.entries(steps)) {
        counts[s.status] = (counts[s.status] || 0) + 1;
        if (s.error_message) errors.push(el("div", { text: name + ": " + s.error_message }));
      }
      body.append(el("tr", { class: counts.failed || b.error ? "batch failed" : "batch",
                             "data-batch": b.batch_id },
        el("td", { "data-label": "Batch", text: b.batch_id }),
        el("td", { "data-label": "Started" }, timeCell(b.batch_start)),
        el("td", { "data-label": "Ended" }, timeCell(b.batch_end)),
        el("td", { "data-label": "Duration", text: duration(b.batch_start, b.batch_end) }),
        el("td", { "data-label": "Steps" },
           b.error ? el("span", { class: "error", text: b.error }) : countBadges(counts)),
        el("td", { "data-label": "Errors", class: "error" }, errors)));
    }
    $("history").replaceChildren(h.batches.length ? el("table", { id: "history-table" },
      el("thead", {}, el("tr", {}, ["Batch", "Started", "Ended", "Duration", "Steps", "Errors"]
        .map((t) => el("th", { text: t })))), body)
      : el("p", { class: "muted", text: "No batch yet." }));
    view.next = h.next_before;
    $("older").disabled = !h.next_before;
    $("newer").disabled = view.newer.length === 0;
    $("page").textContent = "page " + (view.newer.length + 1);
  }

  async function refreshWorkflow() {
    const wf = encodeURIComponent(view.wf);
    let path = "/history/" + wf + "?limit=" + HISTORY_PAGE;
    if (view.before) path += "&before=" + encodeURIComponent(view.before);
    let doc, hist;
    try {
      [doc, hist] = await Promise.all([api("/get_status/" + wf), api(path)]);
    } catch (e) {
      if (e.status === 404) {
        $("steps").replaceChildren(el("p", { class: "error", text: e.message }));
        $("history").replaceChildren();
        return;
      }
      throw e;
    }
    renderSteps(doc);
    renderHistory(hist);
  }

  function older() {
    if (!view.next) return;
    view.newer.push(view.before);
    view.before = view.next;
    refresh();
  }

  function newer() {
    if (!view.newer.length) return;
    view.before = view.newer.pop();
    refresh();
  }

  /* ------------------------------------------------------------ actions */

  /* Ask, with what will be done in words; resolve to the input's value
   * (or "" without one), or null when cancelled. */
  function ask(title, text, field) {
    const d = $("dialog");
    $("dialog-title").textContent = title;
    $("dialog-text").textContent = text;
    $("dialog-error").hidden = true;
    $("dialog-field").hidden = !field;
    const input = $("dialog-input");
    input.value = field && field.value ? field.value : "";
    input.type = field && field.secret ? "password" : "text";
    $("dialog-label").textContent = field ? field.label : "";
    return new Promise((resolve) => {
      const done = (value) => {
        $("dialog-form").onsubmit = null;
        $("dialog-cancel").onclick = null;
        d.onclose = null;
        if (d.open) d.close();
        resolve(value);
      };
      $("dialog-form").onsubmit = (ev) => {
        ev.preventDefault();
        if (field && field.required && !input.value.trim()) {
          $("dialog-error").textContent = field.label + " is needed.";
          $("dialog-error").hidden = false;
          return;
        }
        done(field ? input.value : "");
      };
      $("dialog-cancel").onclick = () => done(null);
      d.onclose = () => done(null);
      d.showModal();
      if (field) input.focus();
    });
  }

  function stepActions(name, r) {
    const wf = view.wf;
    const out = [];
    if (r.status === "open") {
      out.push(el("button", { type: "button", text: "Close", onclick: async () => {
        const ok = await ask("Close " + name + "?", "This ends batch " + r.batch_id + " of step " +
          name + " in " + wf + " as a success (close_batch), as the job itself would.");
        if (ok !== null) act("close_batch", { step: name, batch_id: r.batch_id });
      } }));
      out.push(el("button", { type: "button", class: "danger", text: "Fail", onclick: async () => {
        const why = await ask("Fail " + name + "?", "This ends batch " + r.batch_id + " of step " +
          name + " in " + wf + " as failed (fail_batch), with this error message.",
          { label: "Error message", required: true, value: "stopped by hand" });
        if (why !== null) act("fail_batch", { step: name, batch_id: r.batch_id, error: why });
      } }));
    } else {
      out.push(el("button", { type: "button", text: "Rewind", onclick: async () => {
        const when = await ask("Rewind " + name + "?", "The next open of step " + name + " in " +
          wf + " will start its window exactly at this time (UTC, rewind), whatever it last " +
          "processed.", { label: "From (UTC, YYYY-MM-DDTHH:MM:SS)", required: true,
          value: r.from_date || "" });
        if (when !== null) act("rewind", { step: name, from_date: when.trim() });
      } }));
    }
    return el("span", { class: "actions" }, out);
  }

  async function act(endpoint, params) {
    try {
      await write(endpoint, view.wf, params);
    } catch (e) {
      if (e.status === 401) token = null;
      await ask("Not done", e.status === 401 ? "The token was refused; enter it again." : e.message);
    }
    refresh();
  }

  async function unlock() {
    if (token !== null) {
      token = null;
      $("unlock").textContent = "Actions…";
      refresh();
      return;
    }
    const t = await ask("Actions", "Rewind, close or fail steps by hand. Batchy asks for its " +
      "token; this page keeps it in this tab's memory only, until it is reloaded.",
      { label: "Token", secret: true, required: true });
    if (t === null) return;
    token = t;
    $("unlock").textContent = "Lock actions";
    refresh();
  }

  /* ------------------------------------------------------------ live */

  function setLive(text, on) {
    $("live").textContent = text;
    $("live").className = "live " + (on ? "on" : "off");
  }

  async function refresh() {
    if (refreshing) {
      again = true;
      return refreshing;
    }
    refreshing = (async () => {
      do {
        again = false;
        try {
          if (view.kind === "overview") await refreshOverview();
          else await refreshWorkflow();
          // when the page first and last showed fresh data, in ms since it
          // was opened (what the benchmark reads)
          const now = String(Math.round(performance.now()));
          document.body.dataset.refreshed = now;
          if (!document.body.dataset.firstShown) document.body.dataset.firstShown = now;
        } catch (e) {
          setLive("Batchy did not answer: " + e.message, false);
        }
      } while (again);
    })();
    try {
      await refreshing;
    } finally {
      refreshing = null;
    }
  }

  /* Events come one per change; a burst makes one refresh. */
  function soon() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, 100);
  }

  function poll(on) {
    clearInterval(pollTimer);
    pollTimer = on ? setInterval(refresh, POLL_MS) : null;
  }

  function follow() {
    if (!window.EventSource) {
      setLive("refreshing every " + POLL_MS / 1000 + " s", false);
      poll(true);
      return;
    }
    const url = view.kind === "workflow" ? "/events?wf=" + encodeURIComponent(view.wf) : "/events";
    source = new EventSource(url);
    source.onopen = () => {
      setLive("live", true);
      poll(false);
      soon(); // what changed while the stream was down
    };
    source.onmessage = soon;
    source.onerror = () => {
      // EventSource tries again by itself; meanwhile the page polls.
      setLive("reconnecting; refreshing every " + POLL_MS / 1000 + " s", false);
      poll(true);
    };
  }

  /* ------------------------------------------------------------ start */

  async function start() {
    const parts = location.pathname.split("/").filter(Boolean);
    if (parts.length >= 2) {
      view = { kind: "workflow", wf: decodeURIComponent(parts[1]), before: null, newer: [] };
      buildWorkflow();
    } else {
      view = { kind: "overview" };
      buildOverview();
    }
    $("unlock").addEventListener("click", unlock);
    try {
      const health = await api("/healthz");
      tokenRequired = health.token === true;
    } catch (e) {
      tokenRequired = false; // Redis down: the refresh below says so
    }
    $("unlock").hidden = !tokenRequired;
    await refresh();
    follow();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
