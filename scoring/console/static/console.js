// fraudstream analyst console: queue polling and keyboard shortcuts. No dependencies.
"use strict";
(function () {
  const page = document.body.dataset.page;
  const csrf = (document.querySelector('meta[name="csrf"]') || {}).content || "";
  const typing = (e) => /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName);

  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify(body || {}),
    });
  }

  function cell(text, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text == null ? "" : String(text);
    return td;
  }

  function badge(text, cls) {
    const td = document.createElement("td");
    const span = document.createElement("span");
    span.className = cls;
    span.textContent = text;
    td.appendChild(span);
    return td;
  }

  if (page === "queue") {
    const table = document.getElementById("queue");
    const tbody = table.querySelector("tbody");
    let selected = 0;

    const rows = () => Array.from(tbody.querySelectorAll("tr[data-href]"));
    function select(i) {
      const all = rows();
      if (!all.length) return;
      selected = Math.max(0, Math.min(i, all.length - 1));
      all.forEach((r, j) => r.classList.toggle("selected", j === selected));
      all[selected].scrollIntoView({block: "nearest"});
    }
    function open() {
      const r = rows()[selected];
      if (r) window.location = r.dataset.href;
    }
    tbody.addEventListener("click", (e) => {
      const tr = e.target.closest("tr[data-href]");
      if (tr) window.location = tr.dataset.href;
    });

    function render(data) {
      const keep = (rows()[selected] || {dataset: {}}).dataset.href;
      tbody.textContent = "";
      data.rows.forEach((r) => {
        const tr = document.createElement("tr");
        tr.dataset.href = "/console/case/" + encodeURIComponent(r.transaction_id);
        tr.appendChild(cell((r.received || "").slice(11, 19)));
        tr.appendChild(cell(r.transaction_id, "mono"));
        tr.appendChild(badge(r.decision, "badge " + r.decision));
        tr.appendChild(cell(Number(r.score).toFixed(3), "num"));
        tr.appendChild(cell(r.amount + " " + (r.currency || ""), "num"));
        tr.appendChild(cell(r.channel));
        tr.appendChild(cell(r.country));
        tr.appendChild(cell(r.card_id, "mono"));
        tr.appendChild(cell("v" + r.model_batch));
        tr.appendChild(cell((r.reasons || "").split(";")[0], "reason"));
        tr.appendChild(badge(r.state + (r.claimed_by ? " · " + r.claimed_by : ""),
                             "state state-" + r.state));
        tbody.appendChild(tr);
      });
      if (!data.rows.length) {
        const tr = document.createElement("tr");
        tr.className = "empty";
        const td = cell("No alerts match. New alerts appear here as they arrive.");
        td.colSpan = 11;
        tr.appendChild(td);
        tbody.appendChild(tr);
      }
      const again = rows().findIndex((r) => r.dataset.href === keep);
      select(again >= 0 ? again : 0);
      for (const chip of document.querySelectorAll("#counts .chip")) {
        chip.querySelector("b").textContent = data.counts[chip.dataset.state];
      }
      document.getElementById("total").textContent = data.total + " matching";
    }

    function refresh() {
      fetch("/console/api/alerts?" + table.dataset.query, {credentials: "same-origin"})
        .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
        .then(render)
        .catch((status) => { if (status === 401) window.location = "/console/login"; });
    }
    setInterval(refresh, 2000);

    document.addEventListener("keydown", (e) => {
      if (typing(e)) {
        if (e.key === "Escape") e.target.blur();
        return;
      }
      if (e.key === "j" || e.key === "ArrowDown") { select(selected + 1); e.preventDefault(); }
      else if (e.key === "k" || e.key === "ArrowUp") { select(selected - 1); e.preventDefault(); }
      else if (e.key === "Enter" || e.key === "o") { open(); }
      else if (e.key === "/") { document.querySelector("#filters select, #filters input").focus(); e.preventDefault(); }
      else if (e.key === "r") { refresh(); }
      else if (e.key === "e") { window.location = document.getElementById("export-csv").href; }
    });
  }

  if (page === "case") {
    const box = document.getElementById("case");
    const tid = box.dataset.tid;
    const base = "/console/case/" + encodeURIComponent(tid);
    const result = document.getElementById("verdict-result");
    const note = document.getElementById("note");
    let sent = false;

    function give(verdict) {
      if (box.dataset.mine !== "yes" || sent) return;
      sent = true;
      result.textContent = "recording " + verdict + "…";
      post(base + "/verdict", {verdict: verdict, note: note.value})
        .then((r) => r.json().then((body) => ({ok: r.ok, body: body})))
        .then(({ok, body}) => {
          if (!ok) { sent = false; result.textContent = body.detail; result.className = "error"; return; }
          box.dataset.mine = "no";
          document.getElementById("case-state").textContent = verdict;
          result.className = "ok";
          result.textContent = "Recorded " + verdict + " as " + body.actor +
            (body.label ? " (sent to labels)" : " (audit only)") + ". Next case in a moment…";
          setTimeout(() => { window.location = body.next; }, 1200);
        })
        .catch(() => { sent = false; result.textContent = "network error, try again"; });
    }

    document.querySelectorAll("button[data-verdict]").forEach((b) =>
      b.addEventListener("click", () => give(b.dataset.verdict)));

    function back() {
      const go = () => { window.location = "/console"; };
      if (box.dataset.mine === "yes") post(base + "/release").then(go, go); else go();
    }

    document.addEventListener("keydown", (e) => {
      if (typing(e)) {
        if (e.key === "Escape") e.target.blur();
        else if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) e.target.blur();
        return;
      }
      if (e.key === "f") give("fraud");
      else if (e.key === "g") give("genuine");
      else if (e.key === "u") give("unsure");
      else if (e.key === "n") { note.focus(); e.preventDefault(); }
      else if (e.key === "x") { window.location = base + "/export.json"; }
      else if (e.key === "Escape") back();
    });
  }
})();
