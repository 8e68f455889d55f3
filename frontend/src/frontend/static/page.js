// The page: roll the chosen die through the frontend's API and show what came back.
// Tracing is not here: tracing.js instruments fetch, so this call is traced, and
// carries its trace to the frontend, without a line of this file knowing.
"use strict";

const grafana = document.querySelector('meta[name="grafana-url"]').content;
const form = document.getElementById("roll-form");
const result = document.getElementById("result");
const traceLink = document.getElementById("trace-link");

// Grafana Explore on the Tempo data source, showing one trace; "Logs for this span"
// there leads to both services' lines.
function exploreUrl(traceId) {
  const pane = {
    datasource: "tempo",
    queries: [{ refId: "A", datasource: { type: "tempo", uid: "tempo" },
                queryType: "traceql", query: traceId }],
    range: { from: "now-1h", to: "now" },
  };
  return `${grafana}/explore?schemaVersion=1&orgId=1&panes=${encodeURIComponent(JSON.stringify({ roll: pane }))}`;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const die = new FormData(form).get("die");
  result.className = "";
  result.textContent = "rolling...";
  traceLink.hidden = true;
  let body = {};
  let status = 0;
  try {
    const response = await fetch(`/api/roll?die=${encodeURIComponent(die)}`);
    status = response.status;
    body = await response.json();
  } catch (error) {
    body = { detail: `The frontend did not answer (${error.message}).` };
  }
  if (status === 200) {
    result.textContent = `${body.roll}`;
  } else {
    result.className = "failed";
    result.textContent = body.detail || `The roll failed (HTTP ${status}).`;
  }
  if (body.trace_id) {
    traceLink.href = exploreUrl(body.trace_id);
    traceLink.dataset.traceId = body.trace_id;
    traceLink.hidden = false;
  }
});

// Stage 4: roll the chosen die several times at once. The dice-roller rolls them
// concurrently, each in a span of its own: the trace link shows them side by side.
const batchButton = document.getElementById("roll-batch");
if (batchButton) {
  batchButton.addEventListener("click", async () => {
    const die = new FormData(form).get("die");
    const times = document.getElementById("times").value;
    result.className = "";
    result.textContent = "rolling...";
    traceLink.hidden = true;
    let body = {};
    let status = 0;
    try {
      const params = new URLSearchParams({ die, times });
      const response = await fetch(`/api/roll-async?${params}`);
      status = response.status;
      body = await response.json();
    } catch (error) {
      body = { detail: `The frontend did not answer (${error.message}).` };
    }
    if (status === 200) {
      const failed = body.failed ? ` (${body.failed} failed)` : "";
      result.textContent = `${body.rolls.join(", ")}${failed}`;
    } else {
      result.className = "failed";
      result.textContent = typeof body.detail === "string" ? body.detail : `The batch failed (HTTP ${status}).`;
    }
    if (body.trace_id) {
      traceLink.href = exploreUrl(body.trace_id);
      traceLink.dataset.traceId = body.trace_id;
      traceLink.hidden = false;
    }
  });
}
