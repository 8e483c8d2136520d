/* opendms console: confirmations, inline connection tests, live refresh (polling every
   2 s), table sorting and filtering, the throughput chart, the selection-rule helper.
   Plain JavaScript, no libraries. */
"use strict";
(function () {
  const POLL_MS = 2000;
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  async function getJSON(url) {
    const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (r.status === 401) { window.location.reload(); throw new Error("logged out"); }
    if (!r.ok) throw new Error(url + ": HTTP " + r.status);
    return r.json();
  }

  function poll(fn) {
    let busy = false;
    const tick = async () => {
      if (busy || document.hidden) return;
      busy = true;
      try { await fn(); } catch (e) { /* the next tick tries again */ } finally { busy = false; }
    };
    tick();
    return setInterval(tick, POLL_MS);
  }

  // -- confirmations ------------------------------------------------------------------
  function confirmations() {
    $$("form[data-confirm]").forEach((form) => {
      form.addEventListener("submit", (ev) => {
        if (!window.confirm(form.dataset.confirm)) { ev.preventDefault(); return; }
        $$("button", form).forEach((b) => { b.disabled = true; });
      });
    });
  }

  // -- endpoints ------------------------------------------------------------------------
  function connectionTests() {
    $$("form.test-conn").forEach((form) => {
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const cell = $(".conn", form.closest("tr"));
        const button = $("button", form);
        button.disabled = true;
        cell.textContent = "";
        const pill = document.createElement("span");
        pill.className = "pill testing";
        pill.textContent = "testing…";
        cell.appendChild(pill);
        try {
          const r = await fetch(form.action, {
            method: "POST", body: new FormData(form), credentials: "same-origin",
            headers: { "X-Requested-With": "fetch" },
          });
          const out = await r.json();
          pill.className = "pill " + out.status;
          pill.textContent = out.status;
          if (out.message) {
            const msg = document.createElement("span");
            msg.className = "msg";
            msg.textContent = out.message;
            cell.appendChild(msg);
          }
        } catch (e) {
          pill.className = "pill failed";
          pill.textContent = "test failed: " + e.message;
        } finally { button.disabled = false; }
      });
    });
  }

  function engineFields() {
    const engine = $("#f-engine");
    const form = $("#endpoint-form");
    if (!engine || !form) return;
    const show = () => {
      $$("[data-engines]", form).forEach((box) => {
        const on = box.dataset.engines.split(" ").includes(engine.value);
        box.hidden = !on;
        $$("input, select, textarea", box).forEach((i) => { i.disabled = !on; });
      });
      const port = $("#f-port");
      if (port) port.placeholder = engine.value === "postgres" ? "5432" : "3306";
    };
    engine.addEventListener("change", show);
    show();
  }

  // -- task list ------------------------------------------------------------------------
  function taskList() {
    const table = $("#tasks[data-poll]");
    if (!table) return;
    poll(async () => {
      const out = await getJSON(table.dataset.poll);
      $("#task-rows").innerHTML = out.html;  // server-rendered, escaped by the templates
    });
  }

  // -- task form: selection-rule helper ------------------------------------------------
  function ruleHelper() {
    const button = $("#add-rule");
    if (!button) return;
    button.addEventListener("click", () => {
      const area = $("#f-mappings");
      const err = $("#rule-error");
      err.hidden = true;
      let doc;
      try {
        doc = area.value.trim() ? JSON.parse(area.value) : { rules: [] };
      } catch (e) {
        err.textContent = "The table mappings are not valid JSON (" + e.message + "); fix them first.";
        err.hidden = false;
        return;
      }
      if (Array.isArray(doc)) doc = { rules: doc };
      if (!doc.rules || !Array.isArray(doc.rules)) doc.rules = [];
      const ids = doc.rules.map((r) => parseInt(r["rule-id"], 10)).filter((n) => !isNaN(n));
      const id = String((ids.length ? Math.max.apply(null, ids) : 0) + 1);
      const action = $("#r-action").value;
      doc.rules.push({
        "rule-type": "selection",
        "rule-id": id,
        "rule-name": action + "-" + id,
        "object-locator": { "schema-name": $("#r-schema").value || "%", "table-name": $("#r-table").value || "%" },
        "rule-action": action,
      });
      area.value = JSON.stringify(doc, null, 2);
    });
  }

  // -- sortable, filterable tables --------------------------------------------------------
  const sortState = {};
  function sortable(table) {
    $$("th[data-sort]", table).forEach((th, index) => {
      $("button", th).addEventListener("click", () => {
        const asc = !(sortState[table.id] && sortState[table.id].index === index && sortState[table.id].asc);
        sortState[table.id] = { index: index, asc: asc, num: th.dataset.sort === "num" };
        applySort(table);
      });
    });
  }
  function applySort(table) {
    const s = sortState[table.id];
    if (!s) return;
    $$("th", table).forEach((th, i) => {
      if (i === s.index) th.setAttribute("aria-sort", s.asc ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    });
    const body = table.tBodies[0];
    const rows = $$("tr", body).filter((r) => !r.classList.contains("empty"));
    const value = (r) => {
      const text = r.cells[s.index] ? r.cells[s.index].textContent.trim() : "";
      return s.num ? (parseFloat(text.replace(/,/g, "")) || 0) : text.toLowerCase();
    };
    rows.sort((a, b) => {
      const x = value(a), y = value(b);
      return (x < y ? -1 : x > y ? 1 : 0) * (s.asc ? 1 : -1);
    });
    rows.forEach((r) => body.appendChild(r));
  }
  function applyFilter(table, text) {
    const wanted = text.trim().toLowerCase();
    $$("tr", table.tBodies[0]).forEach((r) => {
      r.hidden = wanted !== "" && !r.textContent.toLowerCase().includes(wanted);
    });
  }

  // -- the chart ----------------------------------------------------------------------
  const SVG = "http://www.w3.org/2000/svg";
  function svgEl(name, attrs) {
    const el = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach((k) => el.setAttribute(k, attrs[k]));
    return el;
  }
  function drawChart(svg, samples) {
    // the drawing's units are the element's pixels: text keeps its shape at any width
    const W = Math.max(svg.clientWidth || 600, 100), H = 180, top = 14, bottom = 166;
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.appendChild(svgEl("line", { x1: 0, y1: bottom, x2: W, y2: bottom, class: "axis" }));
    svg.appendChild(svgEl("line", { x1: 0, y1: top, x2: W, y2: top, class: "axis" }));
    if (samples.length < 2) {
      const t = svgEl("text", { x: 8, y: H / 2 });
      t.textContent = "collecting samples…";
      svg.appendChild(t);
      return;
    }
    const t0 = samples[0].time, t1 = samples[samples.length - 1].time;
    const span = Math.max(t1 - t0, 1);
    const maxRate = Math.max(1, ...samples.map((s) => s.rate));
    const maxLat = Math.max(1, ...samples.map((s) => s.latency));
    const line = (key, max, cls) => {
      const pts = samples.map((s) => {
        const x = ((s.time - t0) / span) * W;
        const y = bottom - (s[key] / max) * (bottom - top);
        return x.toFixed(1) + "," + y.toFixed(1);
      });
      svg.appendChild(svgEl("polyline", { points: pts.join(" "), class: cls }));
    };
    line("rate", maxRate, "rows");
    line("latency", maxLat, "lat");
    const label = (x, y, text, anchor) => {
      const t = svgEl("text", { x: x, y: y, "text-anchor": anchor || "start" });
      t.textContent = text;
      svg.appendChild(t);
    };
    label(4, top - 3, "max " + Math.round(maxRate) + " rows/s");
    label(W - 4, top - 3, "max " + maxLat.toFixed(1) + " s", "end");
    label(4, H - 1, Math.round(span) + " s ago");
    label(W - 4, H - 1, "now", "end");
  }

  // -- task detail --------------------------------------------------------------------
  function taskDetail() {
    const box = $("#task[data-stats]");
    if (!box) return;
    const stats = $("#table-stats");
    sortable(stats);
    const filter = $("#table-filter");
    filter.addEventListener("input", () => applyFilter(stats, filter.value));
    const svg = $("#chart");
    const samples = [];
    let last = null;
    drawChart(svg, samples);
    poll(async () => {
      const s = await getJSON(box.dataset.stats);
      const status = $("#status");
      status.textContent = s.status;
      status.className = "pill " + s.status;
      $("#phase").textContent = s.phase;
      $("#progress").textContent = s.progress;
      $("#stop-reason").textContent = s.stop_reason || "—";
      $("#tables-body").innerHTML = s.tables;  // server-rendered fragments
      $("#errors-body").innerHTML = s.errors;
      $("#validation-body").innerHTML = s.validation;
      $("#assessment-body").innerHTML = s.assessment;
      applySort(stats);
      applyFilter(stats, filter.value);
      const rate = last ? Math.max(0, (s.changes - last.changes) / Math.max(s.time - last.time, 0.001)) : 0;
      last = s;
      samples.push({ time: s.time, rate: rate, latency: s.latency || 0 });
      if (samples.length > 150) samples.shift();
      $("#rate-now").textContent = rate.toFixed(1);
      $("#lat-now").textContent = (s.latency || 0).toFixed(1);
      drawChart(svg, samples);
    });
    taskLog(box.dataset.log);
  }

  function taskLog(url) {
    const level = $("#log-level"), search = $("#log-search"), body = $("#log-body");
    const load = async () => {
      const q = new URLSearchParams({ level: level.value, q: search.value });
      const out = await getJSON(url + "?" + q.toString());
      const atEnd = body.scrollTop + body.clientHeight >= body.scrollHeight - 8;
      body.innerHTML = out.html;
      if (atEnd) body.scrollTop = body.scrollHeight;
    };
    level.addEventListener("change", load);
    search.addEventListener("input", load);
    poll(load);
  }

  document.addEventListener("DOMContentLoaded", () => {
    confirmations();
    connectionTests();
    engineFields();
    taskList();
    ruleHelper();
    taskDetail();
  });
})();
