(function () {
  "use strict";
  // Everything shown is set with textContent: titles and questions are user text.
  const $ = (id) => document.getElementById(id);
  const keyBox = $("key");
  keyBox.value = sessionStorage.getItem("unsource-agent-key") || "";

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function table(headers, rows) {
    const t = el("table"), head = el("tr");
    headers.forEach((h) => head.appendChild(el("th", h)));
    t.appendChild(head);
    rows.forEach((cells) => {
      const tr = el("tr");
      cells.forEach((c) => tr.appendChild(c instanceof Node ? (() => { const td = el("td"); td.appendChild(c); return td; })() : el("td", c)));
      t.appendChild(tr);
    });
    return t;
  }
  function fill(id, node) {
    const body = $(id).querySelector(".body");
    body.className = "body";
    body.replaceChildren(node);
    $(id).dataset.loaded = "true";
  }
  async function get(path) {
    const r = await fetch(path, { headers: { "X-API-Key": keyBox.value } });
    if (!r.ok) throw new Error(path + ": HTTP " + r.status);
    return r.json();
  }
  function pct(x) { return x === null || x === undefined ? "–" : (100 * x).toFixed(1) + " %"; }
  function hours(ms) {
    const h = Math.abs(ms) / 3.6e6;
    return h >= 48 ? (h / 24).toFixed(1) + " d" : h.toFixed(1) + " h";
  }

  function escalations(data) {
    const now = Date.now();
    if (!data.escalations.length) return el("p", "No unanswered question.", "muted");
    return table(["question", "category", "SLA left", "triage", "reasons"], data.escalations.map((q) => {
      const left = Date.parse(q.due_at) - now;
      const sla = left < 0 ? el("span", "overdue by " + hours(left), "late") : el("span", hours(left));
      const reasons = (q.triage.reasons || []).map((r) => r.kind + ": " + r.label).join("; ");
      return [q.id + ": " + q.title, q.category, sla,
              q.triage.route + (q.triage.queue ? " → " + q.triage.queue : ""), reasons || "–"];
    }));
  }
  function gaps(data) {
    if (!data.gaps.length) return el("p", data.questions + " unanswered questions, no gap of 3 or more.", "muted");
    const box = el("div");
    data.gaps.forEach((g, i) => {
      const d = el("div", null, "gap");
      d.appendChild(el("strong", "#" + (i + 1) + ": " + g.size + " questions (" + (g.trend >= 0 ? "+" : "") + g.trend + ")"));
      d.appendChild(el("div", "languages: " + Object.entries(g.languages).map(([k, v]) => k + " " + v).join(", "), "muted"));
      if (g.missing && g.missing.length) d.appendChild(el("div", "missing from the forum: " + g.missing.join(", "), "muted"));
      g.questions.forEach((q) => d.appendChild(el("div", "“" + q + "”")));
      d.appendChild(el("div", "nearest thread: " + (g.nearest_title || "–") + " (" + (g.nearest_similarity ?? "–") + ")", "muted"));
      box.appendChild(d);
    });
    return box;
  }
  function chart(data) {
    const rows = data.rows;
    if (!rows.length) return el("p", "No suggest requests yet.", "muted");
    const W = 460, H = 170, L = 36, B = 22, ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 " + W + " " + H); svg.setAttribute("width", "100%");
    const x = (i) => L + (rows.length === 1 ? (W - L) / 2 : i * (W - L - 10) / (rows.length - 1));
    const y = (v) => H - B - (v || 0) * (H - B - 10);
    [0, 0.5, 1].forEach((v) => {
      const t = document.createElementNS(ns, "text");
      t.setAttribute("x", 2); t.setAttribute("y", y(v) + 4); t.textContent = (100 * v) + "%";
      svg.appendChild(t);
    });
    [["deflection_rate", "#2e8b57"], ["staff_rate", "#b00020"]].forEach(([field, colour]) => {
      const line = document.createElementNS(ns, "polyline");
      line.setAttribute("points", rows.map((r, i) => x(i) + "," + y(r[field])).join(" "));
      line.setAttribute("fill", "none"); line.setAttribute("stroke", colour); line.setAttribute("stroke-width", "2");
      line.setAttribute("class", "series-" + field);
      svg.appendChild(line);
      rows.forEach((r, i) => {
        const c = document.createElementNS(ns, "circle");
        c.setAttribute("cx", x(i)); c.setAttribute("cy", y(r[field])); c.setAttribute("r", 3); c.setAttribute("fill", colour);
        svg.appendChild(c);
      });
    });
    const first = document.createElementNS(ns, "text");
    first.setAttribute("x", L); first.setAttribute("y", H - 4); first.textContent = rows[0].key + " … " + rows[rows.length - 1].key;
    svg.appendChild(first);
    const box = el("div");
    box.appendChild(svg);
    box.appendChild(el("div", "green: deflection rate · red: staff rate", "muted"));
    return box;
  }
  function languages(data) {
    if (!data.rows.length) return el("p", "No suggest requests yet.", "muted");
    return table(["language", "requests", "no match", "staff rate", "deflection rate"],
      data.rows.map((r) => [r.key, r.suggest_count, r.no_match, pct(r.staff_rate), pct(r.deflection_rate)]));
  }
  function leaders(data) {
    if (!data.leaders.length) return el("p", "No helpful votes on authored answers yet.", "muted");
    return table(["author", "questions deflected", "helpful votes"],
      data.leaders.map((l) => [l.author, l.deflected, l.helpful_votes]));
  }

  async function load() {
    sessionStorage.setItem("unsource-agent-key", keyBox.value);
    $("status").textContent = "loading…";
    const panels = [
      ["escalations", "/v1/escalations?include_open=true&limit=50", escalations],
      ["gaps", "/v1/insights/gaps", gaps],
      ["rates", "/v1/insights/daily?days=30", chart],
      ["languages", "/v1/insights/languages", languages],
      ["leaders", "/v1/community/leaders?limit=10", leaders],
    ];
    const results = await Promise.allSettled(panels.map(async ([id, path, render]) => fill(id, render(await get(path)))));
    const failed = results.filter((r) => r.status === "rejected");
    $("status").textContent = failed.length ? "failed: " + failed.map((f) => f.reason.message).join(", ") : "loaded " + new Date().toLocaleTimeString();
  }
  $("load").addEventListener("click", load);
  if (keyBox.value) load();
})();
