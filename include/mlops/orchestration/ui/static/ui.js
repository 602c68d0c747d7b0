// Actions of the ML platform pages. They call Airflow's own REST API with the user's session
// cookie (same origin), so Airflow authenticates and authorises each one as for its own UI.
"use strict";

async function airflow(method, path, body) {
  const response = await fetch(`/api/v2${path}`, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) {
    let detail = text;
    try { detail = JSON.parse(text).detail || text; } catch (e) { /* plain text */ }
    throw new Error(`${response.status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
  }
  return text ? JSON.parse(text) : {};
}

function wire(form, act) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const out = form.querySelector("output");
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      out.textContent = await act(event.submitter, new FormData(form));
      out.className = "ok";
    } catch (error) {
      out.textContent = `Refused: ${error.message}`;
      out.className = "error";
      buttons.forEach((b) => { b.disabled = false; });
    }
  });
}

document.querySelectorAll("form.approval").forEach((form) => wire(form, async (button, data) => {
  const choice = button ? button.value : "Reject";
  const { dagId, runId } = form.dataset;
  const path = `/dags/${encodeURIComponent(dagId)}/dagRuns/${encodeURIComponent(runId)}/taskInstances/approve_promotion/-1/hitlDetails`;
  await airflow("PATCH", path, { chosen_options: [choice], params_input: { comment: data.get("comment") || "" } });
  return `${choice === "Approve" ? "Approved" : "Rejected"}: the training run records it and ${choice === "Approve" ? "moves the champion" : "leaves production as it is"} within a minute.`;
}));

const rollback = document.querySelector("form.rollback");
if (rollback) wire(rollback, async (button, data) => {
  const run = await airflow("POST", `/dags/${encodeURIComponent(rollback.dataset.dagId)}/dagRuns`, {
    logical_date: null,
    conf: { version: data.get("version"), reason: data.get("reason") },
  });
  return `Rollback to v${data.get("version")} started: run ${run.dag_run_id}.`;
});

const picker = document.getElementById("use-case");
if (picker) picker.addEventListener("change", () => {
  const page = picker.form.dataset.page;
  window.location.href = `/mlops/ui/${encodeURIComponent(picker.value)}/${page}`;
});
