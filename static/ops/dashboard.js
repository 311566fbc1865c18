// The staff dashboard's charts (templates/admin/dashboard.html): Chart.js, drawn from the figures the page carries
// as JSON (#dashboard-figures). No inline code: the site's Content-Security-Policy allows none.
"use strict";

(() => {
  const STATUS_COLOURS = {
    completed: "#1a7f37", failed: "#cf222e", interrupted: "#bc4c00", stopped: "#6e7781", running: "#1f6feb",
  };
  const P50 = "#1f6feb";
  const P95 = "#8250df";
  const SERIES_COLOURS = ["#cf222e", "#bc4c00", "#8250df", "#1f6feb"];
  const COPILOT_TOOL_PREFIX = "mcp__copilot__";

  const figures = JSON.parse(document.getElementById("dashboard-figures").textContent);
  const style = getComputedStyle(document.documentElement);
  const foreground = style.getPropertyValue("--body-quiet-color").trim() || "#666";
  const grid = style.getPropertyValue("--hairline-color").trim() || "#e8e8e8";

  function bucketLabel(iso) {
    const time = new Date(iso);
    const options = figures.window === "week"
      ? { weekday: "short", hour: "2-digit", minute: "2-digit" }
      : { hour: "2-digit", minute: "2-digit" };
    return new Intl.DateTimeFormat(undefined, options).format(time);
  }

  function titled(text) {
    return text.replaceAll("_", " ").replace(/^./, (first) => first.toUpperCase());
  }

  const labels = figures.buckets.map(bucketLabel);
  const axes = (stacked, unit) => ({
    x: { stacked, ticks: { color: foreground, maxRotation: 0, autoSkipPadding: 12 }, grid: { color: grid } },
    y: {
      stacked, beginAtZero: true, grid: { color: grid },
      ticks: { color: foreground, precision: unit ? undefined : 0 },
      title: { display: Boolean(unit), text: unit, color: foreground },
    },
  });
  const common = {
    responsive: true, maintainAspectRatio: false, animation: false,
    interaction: { mode: "index", intersect: false },
    plugins: { legend: { labels: { color: foreground, boxWidth: 12 } } },
  };

  function draw(id, config) {
    return new Chart(document.getElementById(id), config);
  }

  function line(label, data, colour, dashed) {
    return {
      label, data, borderColor: colour, backgroundColor: colour, spanGaps: true, tension: 0.2, pointRadius: 2,
      borderDash: dashed ? [6, 4] : [],
    };
  }

  draw("chart-turns", {
    type: "bar",
    data: {
      labels,
      datasets: Object.entries(figures.turns).map(([status, data]) => (
        { label: status, data, backgroundColor: STATUS_COLOURS[status] || "#999" })),
    },
    options: { ...common, scales: axes(true, "") },
  });

  for (const [id, key] of [["chart-ttft", "ttft"], ["chart-duration", "duration"]]) {
    draw(id, {
      type: "line",
      data: { labels, datasets: [line("p50", figures[key].p50, P50, false), line("p95", figures[key].p95, P95, true)] },
      options: { ...common, scales: axes(false, "seconds") },
    });
  }

  draw("chart-tools", {
    type: "bar",
    data: {
      labels: figures.tools.map((tool) => tool.tool.replace(COPILOT_TOOL_PREFIX, "")),
      datasets: [
        { label: "p50", data: figures.tools.map((tool) => tool.p50), backgroundColor: P50 },
        { label: "p95", data: figures.tools.map((tool) => tool.p95), backgroundColor: P95 },
      ],
    },
    options: {
      ...common, indexAxis: "y",
      scales: {
        x: { beginAtZero: true, ticks: { color: foreground }, grid: { color: grid },
             title: { display: true, text: "seconds", color: foreground } },
        y: { ticks: { color: foreground }, grid: { display: false } },
      },
    },
  });

  draw("chart-failures", {
    type: "bar",
    data: {
      labels,
      datasets: Object.entries(figures.failures).map(([name, data], index) => (
        { label: titled(name), data, backgroundColor: SERIES_COLOURS[index % SERIES_COLOURS.length] })),
    },
    options: { ...common, scales: axes(true, "") },
  });

  draw("chart-approvals", {
    type: "bar",
    data: {
      labels,
      datasets: Object.entries(figures.approvals).map(([name, data], index) => (
        { label: titled(name), data, backgroundColor: SERIES_COLOURS[index % SERIES_COLOURS.length] })),
    },
    options: { ...common, scales: axes(true, "") },
  });

  draw("chart-users", {
    type: "line",
    data: { labels, datasets: [{ ...line("users", figures.users, "#1a7f37", false), fill: false }] },
    options: { ...common, plugins: { legend: { display: false } }, scales: axes(false, "") },
  });

  document.querySelector(".ops-dashboard").dataset.drawn = "true";
})();
