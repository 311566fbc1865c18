// The agent page: while a run on it is queued or running, follow it over the API and show the page again when it
// ends (the page is drawn on the server; its outputs, timings and chart are there).

const FOLLOW_EVERY_MS = 1000;

const unfinished = [...document.querySelectorAll("[data-run-id]")].filter(
  (run) => run.dataset.runStatus === "queued" || run.dataset.runStatus === "running");

async function follow() {
  let statuses = ["running"];
  try {
    statuses = await Promise.all(unfinished.map(async (run) => {
      const response = await fetch(`/api/runs/${run.dataset.runId}/`, { credentials: "same-origin" });
      if (response.status === 404) return "gone";
      return response.ok ? (await response.json()).status : "running"; // a refusal (429, 5xx): ask again
    }));
  } catch {
    // the network dropped for a moment: ask again
  }
  if (statuses.every((status) => !["queued", "running"].includes(status))) window.location.reload();
  else setTimeout(follow, FOLLOW_EVERY_MS);
}

if (unfinished.length) setTimeout(follow, FOLLOW_EVERY_MS);
