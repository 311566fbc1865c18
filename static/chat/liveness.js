// The liveness line (PROTOCOL §7): what the running turn does right now — starting, thinking, writing, which tools
// run and for how long, waiting for the user's approval, or no sign of life for a while — from the `liveness`
// frames, with Stop at hand in the composer. Only what it says changes is announced (role=status, polite): the
// seconds that tick beside it are not part of the live region, so a screen reader hears a change of state, not
// every second.
import { setText } from "./dom.js";
import { toolLabel } from "./tool-card.js";

const TICK_MS = 1000;

export class LivenessLine {
  /** @param line the element (#liveness) holding `.liveness-state` (the live region) and `.liveness-time` */
  constructor(line) {
    this.line = line;
    this.said = line.querySelector(".liveness-state");
    this.time = line.querySelector(".liveness-time");
    this.timeText = null; // () → the text beside the state ("· 12 s"), redrawn every second
    setInterval(() => this.tick(), TICK_MS);
  }

  draw(state) {
    const liveness = state.liveness;
    const what = liveness ? describe(liveness, state) : { text: "", time: null };
    this.line.dataset.state = liveness ? liveness.state : "idle";
    setText(this.said, what.text);
    this.timeText = what.time;
    this.tick();
  }

  tick() {
    setText(this.time, this.timeText ? this.timeText() : "");
  }
}

/** What a liveness says, and the time beside it (a function: it keeps running between frames). */
function describe(liveness, state) {
  const tools = state.toolPartsOf(liveness.running_tools);
  const running = tools.length ? `running ${names(tools)}` : "";
  const oldestStart = Math.min(...tools.map((part) => Date.parse(part.startedAt)).filter(Number.isFinite));
  const forTools = Number.isFinite(oldestStart) ? () => ` · ${secondsSince(oldestStart)}` : null;
  switch (liveness.state) {
    case "starting":
      return { text: "Starting: waiting for a model process or for capacity…", time: null };
    case "thinking":
      return { text: "Thinking…", time: null };
    case "streaming":
      return { text: "Writing…", time: null };
    case "tools":
      return { text: tools.length ? `Running ${names(tools)}` : "Running tools", time: forTools };
    case "awaiting_approval": {
      const waiting = state.toolPartsOf(state.callsAwaiting(liveness.pending_approvals));
      const text = `Waiting for your approval${waiting.length ? ` of ${names(waiting)}` : ""}`;
      return { text: running ? `${text}; ${running}` : text, time: null };
    }
    case "stalled": {
      const lastSign = liveness.receivedAt - liveness.idle_ms;
      return { text: `No sign of life${running ? ` (${running})` : ""}`, time: () => ` for ${secondsSince(lastSign)}` };
    }
    default:
      return { text: "Working…", time: null };
  }
}

function secondsSince(at) {
  return `${Math.max(0, Math.floor((Date.now() - at) / 1000))} s`;
}

function names(parts) {
  const counts = new Map();
  for (const part of parts) counts.set(toolLabel(part), (counts.get(toolLabel(part)) || 0) + 1);
  return [...counts].map(([name, count]) => (count > 1 ? `${name} ×${count}` : name)).join(", ");
}
