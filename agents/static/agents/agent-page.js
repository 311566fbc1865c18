// The agent page: while a run on it is queued or running, follow it over the API and show the page again when it
// ends (the page is drawn on the server; its outputs, timings and chart are there).

const FOLLOW_EVERY_MS = 1000;

// Every run the page shows unfinished, in the history or among the runs: the two are read one after the other, so
// a run may end between them and show as running in one only.
const unfinished = [...new Set([...document.querySelectorAll("[data-run-id]")].filter(
  (run) => run.dataset.runStatus === "queued" || run.dataset.runStatus === "running").map((run) => run.dataset.runId))];

async function follow() {
  let statuses = ["running"];
  try {
    statuses = await Promise.all(unfinished.map(async (runId) => {
      const response = await fetch(`/api/runs/${runId}/`, { credentials: "same-origin" });
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
