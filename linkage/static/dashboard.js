/* placelink hot-spot dashboard: plain JS and inline SVG, nothing fetched from elsewhere.
 * Live mode: sign in with the analyst's OAuth client id and secret; the page trades them at
 * this service's token endpoint for a short-lived access token (kept in sessionStorage; the
 * secret is not kept), then every figure comes
 * from the linkage service's hot-spot API under disclosure control. Snapshot mode: a page
 * written by `placelink demo` embeds published answers in #snapshot and needs no sign-in. */
"use strict";
(function () {
  const TOKEN_KEY = "placelink.analyst-token";
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const state = { options: null, lastQuery: null };

  function el(tag, attrs, ...children) {
    const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4))
      : document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "text") node.textContent = String(value);
      else node.setAttribute(key, String(value));
    }
    for (const child of children) if (child) node.appendChild(child);
    return node;
  }

  function numeric(value) { return typeof value === "number" ? value : null; }

  function colour(value, peak) {
    if (value === "*") return "#d9d9d9";
    if (!value) return "#ffffff";
    const t = Math.min(1, value / (peak || 1));
    const mix = (a, b) => Math.round(a + (b - a) * t);
    return `rgb(${mix(253, 140)},${mix(224, 45)},${mix(208, 25)})`;
  }

  async function api(path, body, accept) {
    const token = sessionStorage.getItem(TOKEN_KEY) || "";
    const init = { headers: { Authorization: `Bearer ${token}`, Accept: accept || "application/json" } };
    if (body !== undefined) {
      init.method = "POST";
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    if (!response.ok) {
      let problem = {};
      try { problem = await response.json(); } catch (e) { problem = {}; }
      const error = new Error(`${problem.title || response.statusText}${problem.detail ? ` (${problem.detail})` : ""}`);
      error.status = response.status;
      throw error;
    }
    return accept === "text/csv" ? response.text() : response.json();
  }

  function checkboxes(container, names, prefix) {
    container.replaceChildren();
    for (const name of names) {
      const box = el("input", { type: "checkbox", value: name, id: `${prefix}-${name}` });
      container.appendChild(el("label", { for: box.id }, box, document.createTextNode(` ${name}`)));
    }
  }

  function fillSelect(select, values, labels, chosen) {
    select.replaceChildren();
    values.forEach((value, i) => {
      const option = el("option", { value, text: labels ? labels[i] : value });
      if (String(value) === String(chosen)) option.selected = true;
      select.appendChild(option);
    });
  }

  function checked(id) {
    return Array.from($(id).querySelectorAll("input:checked")).map((box) => box.value);
  }

  function caption(answer, extra) {
    const counts = answer.treatment_counts;
    const noise = answer.disclosure.noise;
    const parts = [
      `Disclosure: ${answer.disclosure.rule}.`,
      `This answer: ${counts.rounded} rounded, ${counts.zero} zero, ${counts["suppressed-small"]} suppressed (small),`
        + ` ${counts["suppressed-secondary"]} suppressed (secondary), ${counts["suppressed-differencing"]} suppressed (differencing).`,
      noise ? `Noise: ${noise.mechanism}, epsilon ${noise.epsilon}, scale ${noise.scale}.` : "No noise (this policy sets no privacy budget).",
      `Query #${answer.query_id} under policy ${answer.policy_id} v${answer.policy_version} (${answer.policy_hash.slice(0, 12)}).`,
    ];
    if (extra) parts.push(extra);
    return parts.join(" ");
  }

  function areaLayout(areas) {
    const parsed = areas.map((area) => /^(.*?)(\d+)\s+(\d+)$/.exec(area));
    if (parsed.every(Boolean)) {
      const rows = [...new Set(parsed.map((m) => `${m[1]}${m[2]}`))]
        .sort((a, b) => parseInt(a.replace(/\D+/, ""), 10) - parseInt(b.replace(/\D+/, ""), 10));
      return areas.map((area, i) => ({ area, row: rows.indexOf(`${parsed[i][1]}${parsed[i][2]}`),
        col: parseInt(parsed[i][3], 10) - 1, rowLabel: `${parsed[i][1]}${parsed[i][2]}` }));
    }
    const width = Math.ceil(Math.sqrt(areas.length));
    return areas.map((area, i) => ({ area, row: Math.floor(i / width), col: i % width, rowLabel: "" }));
  }

  function renderGrid(table) {
    const measure = table.columns[0];
    const values = Object.fromEntries(table.rows.map((row) => [row.area, row[measure]]));
    const peak = Math.max(0, ...table.rows.map((row) => numeric(row[measure]) || 0));
    const layout = areaLayout(table.rows.map((row) => row.area));
    const size = 62;
    const cols = Math.max(1, ...layout.map((c) => c.col + 1));
    const rows = Math.max(1, ...layout.map((c) => c.row + 1));
    const svg = el("svg:svg", { width: 50 + cols * size, height: rows * size + 4, role: "img",
      "aria-label": "area grid coloured by published count" });
    for (const cell of layout) {
      const value = values[cell.area];
      const group = el("svg:g", { "data-area": cell.area, "data-value": value });
      const x = 50 + cell.col * size;
      const y = cell.row * size;
      group.appendChild(el("svg:rect", { x, y, width: size - 4, height: size - 4, rx: 4,
        fill: colour(value, peak), stroke: "#999" }));
      const ink = numeric(value) && value / (peak || 1) > 0.55 ? "#ffffff" : "#1b1b1b";
      group.appendChild(el("svg:text", { x: x + 5, y: y + 16, fill: ink, text: cell.area }));
      group.appendChild(el("svg:text", { x: x + 5, y: y + 40, fill: ink, "font-weight": "bold", "data-testid": "grid-value", text: value }));
      group.appendChild(el("svg:title", { text: `${cell.area}: ${value} (${treatmentOf(table, cell.area, measure)})` }));
      svg.appendChild(group);
      if (cell.col === 0 && cell.rowLabel) svg.appendChild(el("svg:text", { x: 2, y: y + 30, text: cell.rowLabel }));
    }
    const legend = el("p", { class: "legend", text: `Colour: darker = more people (peak ${peak}); grey = suppressed (*); white = 0.` });
    return [svg, legend];
  }

  function treatmentOf(answer, rowKey, column) {
    const key = answer.kind === "cooccurrence" ? "agency" : "area";
    const row = answer.treatments.find((r) => r[key] === rowKey);
    return row ? row[column] : "";
  }

  function renderRanked(table) {
    const measure = table.columns[0];
    const ranked = [...table.rows].sort((a, b) => (numeric(b[measure]) ?? -1) - (numeric(a[measure]) ?? -1)
      || a.area.localeCompare(b.area));
    const body = el("tbody");
    ranked.forEach((row, i) => {
      const cell = el("td", { "data-testid": "ranked-value", text: row[measure] });
      if (row[measure] === "*") cell.className = "suppressed";
      body.appendChild(el("tr", { "data-area": row.area }, el("td", { text: i + 1 }),
        el("td", { "data-testid": "ranked-area", text: row.area }), cell,
        el("td", { text: treatmentOf(table, row.area, measure) })));
    });
    if (table.total) {
      body.appendChild(el("tr", { "data-area": "total" }, el("td", { text: "" }), el("td", { text: table.total.area }),
        el("td", { "data-testid": "ranked-total", text: table.total[measure] }),
        el("td", { text: table.total_treatments[measure] })));
    }
    const head = el("thead", {}, el("tr", {}, el("th", { text: "#" }), el("th", { text: "area" }),
      el("th", { text: "people (published)" }), el("th", { text: "treatment" })));
    return [el("table", { id: "ranked" }, head, body)];
  }

  function renderTrend(trend, table) {
    const measure = table.columns[0];
    const top = [...table.rows].filter((r) => numeric(r[measure]))
      .sort((a, b) => b[measure] - a[measure]).slice(0, 5).map((r) => r.area);
    const months = trend.columns;
    const series = trend.rows.filter((r) => top.includes(r.area));
    const peak = Math.max(10, ...series.flatMap((r) => months.map((m) => numeric(r[m]) || 0)));
    const width = 560, height = 240, left = 40, bottom = 30;
    const x = (i) => left + (months.length > 1 ? i * (width - left - 10) / (months.length - 1) : 0);
    const y = (v) => height - bottom - v * (height - bottom - 10) / peak;
    const svg = el("svg:svg", { width, height, role: "img", "aria-label": "trend of published counts" });
    svg.appendChild(el("svg:line", { x1: left, y1: y(0), x2: width - 10, y2: y(0), stroke: "#888" }));
    svg.appendChild(el("svg:text", { x: 2, y: y(peak) + 4, text: peak }));
    svg.appendChild(el("svg:text", { x: 2, y: y(0), text: 0 }));
    months.forEach((month, i) => {
      if (i % Math.max(1, Math.ceil(months.length / 6)) === 0) {
        svg.appendChild(el("svg:text", { x: x(i) - 16, y: height - 8, text: month }));
      }
    });
    const palette = ["#b5452b", "#23395b", "#3c8d2f", "#8a5a9e", "#d08c00"];
    series.forEach((row, k) => {
      let path = "";
      let gap = true;
      months.forEach((month, i) => {
        const v = numeric(row[month]);
        if (v === null) {
          svg.appendChild(el("svg:text", { x: x(i) - 3, y: y(0) - 3, fill: palette[k], text: "*" }));
          gap = true;
          return;
        }
        path += `${gap ? "M" : "L"}${x(i).toFixed(1)},${y(v).toFixed(1)} `;
        gap = false;
      });
      svg.appendChild(el("svg:path", { d: path.trim() || "M0,0", fill: "none", stroke: palette[k], "stroke-width": 2, "data-area": row.area }));
    });
    const legend = el("p", { class: "legend" });
    series.forEach((row, k) => { legend.appendChild(el("span", { text: `■ ${row.area}  ` })).style.color = palette[k]; });
    legend.appendChild(document.createTextNode("(top areas of the table; * marks a suppressed month, drawn as a gap)"));
    return [svg, legend];
  }

  function renderMatrix(matrix) {
    const agencies = matrix.columns;
    const peak = Math.max(1, ...matrix.rows.flatMap((r) => agencies.map((a) => numeric(r[a]) || 0)));
    const head = el("tr", {}, el("th", { text: "" }), ...agencies.map((a) => el("th", { text: a })));
    const body = el("tbody");
    for (const row of matrix.rows) {
      const tr = el("tr", {}, el("th", { text: row.agency }));
      for (const agency of agencies) {
        const value = row[agency];
        const td = el("td", { "data-pair": `${row.agency}|${agency}`, title: treatmentOf(matrix, row.agency, agency), text: value });
        if (value === "*") td.className = "suppressed";
        else td.style.background = colour(value, peak);
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    return [el("table", { id: "matrix" }, el("thead", {}, head), body),
      el("p", { class: "legend", text: "Cell: people known to both agencies; diagonal: known to that agency." })];
  }

  function show(id, nodes, text) {
    const figure = $(id);
    figure.querySelector(".body").replaceChildren(...nodes);
    figure.querySelector(".treatment").textContent = text;
  }

  function render(answers) {
    const { table, trend, cooccurrence } = answers;
    show("fig-grid", renderGrid(table), caption(table));
    show("fig-ranked", renderRanked(table), caption(table));
    show("fig-trend", renderTrend(trend, table), caption(trend, "A person counts in each month they were in contact with any agency."));
    show("fig-matrix", renderMatrix(cooccurrence), caption(cooccurrence));
    $("results").hidden = false;
    document.body.dataset.queryIds = [table.query_id, trend.query_id, cooccurrence.query_id].join(",");
  }

  function currentFilter() {
    return {
      min_agencies: parseInt($("min-agencies").value, 10),
      all_of: checked("all-of"), none_of: checked("none-of"), flags: checked("flags"),
      since: $("since").value || null, until: $("until").value || null,
    };
  }

  async function runQuery(event) {
    if (event) event.preventDefault();
    $("query-error").textContent = "";
    const policy = $("policy").value;
    const filter = currentFilter();
    const base = `/v1/policies/${encodeURIComponent(policy)}/hotspots`;
    try {
      const table = await api(base, { kind: "table", filter, measures: [{ name: "people" }] });
      const trend = await api(base, { kind: "trend", filter });
      const cooccurrence = await api(base, { kind: "cooccurrence", filter });
      state.lastQuery = { base, filter };
      $("csv").disabled = false;
      render({ table, trend, cooccurrence });
      const budget = cooccurrence.budget;
      $("budget").textContent = budget ? `Privacy budget: ${budget.epsilon_spent} of ${budget.epsilon_total} spent.` : "";
      document.body.dataset.ready = "yes";
    } catch (error) {
      $("query-error").textContent = error.message;
      if (error.status === 401) signOut();
    }
  }

  async function downloadCsv() {
    const { base, filter } = state.lastQuery;
    const text = await api(`${base}?format=csv`, { kind: "table", filter, measures: [{ name: "people" }] }, "text/csv");
    const link = el("a", { href: URL.createObjectURL(new Blob([text], { type: "text/csv" })), download: "hotspots.csv" });
    link.click();
  }

  async function loadOptions() {
    const options = await api(`/v1/policies/${encodeURIComponent($("policy").value)}/hotspots/options`);
    state.options = options;
    const counts = options.agencies.map((_, i) => i + 1);
    fillSelect($("min-agencies"), counts, null, Math.min(2, counts.length));
    checkboxes($("all-of"), options.agencies, "all");
    checkboxes($("none-of"), options.agencies, "none");
    checkboxes($("flags"), options.flags, "flag");
    $("flags-set").hidden = options.flags.length === 0;
    fillSelect($("since"), ["", ...options.months], ["(first)", ...options.months], "");
    fillSelect($("until"), ["", ...options.months], ["(last)", ...options.months], "");
  }

  async function signedIn() {
    const listed = await api("/v1/policies");
    fillSelect($("policy"), listed.policies.map((p) => p.policy_id), listed.policies.map((p) => `${p.title || p.policy_id} (v${p.version})`));
    await loadOptions();
    $("signin").hidden = true;
    $("query").hidden = false;
    $("who").hidden = false;
    $("who").textContent = "Signed in. Figures below are published figures only.";
  }

  function signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    $("query").hidden = true;
    $("results").hidden = true;
    $("who").hidden = true;
    $("signin").hidden = false;
  }

  async function signIn(event) {
    event.preventDefault();
    $("signin-error").textContent = "";
    const form = new URLSearchParams({
      grant_type: "client_credentials",
      client_id: $("client-id").value.trim(),
      client_secret: $("client-secret").value,
    });
    $("client-secret").value = "";
    try {
      const response = await fetch("/v1/oauth/token", { method: "POST", body: form });
      const answer = await response.json().catch(() => ({}));
      if (!response.ok || !answer.access_token) throw new Error(answer.error || response.statusText);
      sessionStorage.setItem(TOKEN_KEY, answer.access_token);
      await signedIn();
    } catch (error) {
      sessionStorage.removeItem(TOKEN_KEY);
      $("signin-error").textContent = `Sign-in refused: ${error.message}`;
    }
  }

  function start() {
    const snapshot = document.getElementById("snapshot");
    if (snapshot) {
      render(JSON.parse(snapshot.textContent));
      $("who").hidden = false;
      $("who").textContent = "Snapshot written by placelink demo: published figures only.";
      document.body.dataset.ready = "yes";
      return;
    }
    $("signin-form").addEventListener("submit", signIn);
    $("query-form").addEventListener("submit", runQuery);
    $("policy").addEventListener("change", () => loadOptions().catch((e) => { $("query-error").textContent = e.message; }));
    $("csv").addEventListener("click", () => downloadCsv().catch((e) => { $("query-error").textContent = e.message; }));
    $("signout").addEventListener("click", signOut);
    if (sessionStorage.getItem(TOKEN_KEY)) signedIn().catch(signOut);
    else signOut();
  }

  start();
})();
