// The chat page (templates/chat/session.html): draws the session the server rendered, then follows the session's
// events over the websocket, resuming from the last seq it saw after any drop, so nothing shows twice or goes
// missing. Frames change the state (state.js); once per animation frame the views draw what changed.
import { ChatState } from "./state.js";
import { Composer } from "./composer.js";
import { Connection } from "./connection.js";
import { Timeline } from "./timeline.js";

const root = document.querySelector(".chat");
const banner = document.getElementById("connection");
const state = new ChatState(JSON.parse(document.getElementById("snapshot").textContent));
const timeline = new Timeline(document.getElementById("messages"), state);
let pendingSend = null; // {text, client_message_id} until acknowledged: sent again after a reconnect

const scheme = location.protocol === "https:" ? "wss" : "ws";
const connection = new Connection({
  url: `${scheme}://${location.host}/ws/sessions/${root.dataset.sessionId}/`,
  onOpen() {
    connection.send({ type: "resume", after_seq: state.lastSeq });
    if (pendingSend) connection.send({ type: "send", ...pendingSend });
    state.setControls(); // the socket's state: Send follows it
    schedule();
  },
  onFrame,
  onStatus(text) {
    banner.textContent = text;
    banner.hidden = !text;
    state.setControls(); // the socket's state: Send follows it
    schedule();
  },
});

const composer = new Composer({
  form: document.getElementById("composer"),
  onSend(text) {
    pendingSend = { text, client_message_id: newId() };
    state.setControls({ running: true, notice: "" });
    timeline.followBottom();
    connection.send({ type: "send", ...pendingSend });
    schedule();
  },
  onStop() {
    if (!connection.send({ type: "stop" })) return;
    state.setControls({ stopping: true });
    schedule();
  },
});

function onFrame(frame) {
  switch (frame.type) {
    case "event":
      state.applyEvent(frame);
      break;
    case "snapshot":
      state.load(frame.session);
      break;
    case "ack":
      pendingSend = null;
      state.setControls({ running: true });
      break;
    case "error":
      if (frame.code === "bad_seq") {
        location.reload(); // the server has less than we saw: start again from its snapshot
        return;
      }
      if (pendingSend && frame.code !== "rate_limited") {
        composer.restore(pendingSend.text);
        pendingSend = null;
        state.setControls({ running: false });
      }
      if (frame.code === "nothing_running") state.setControls({ stopping: false });
      state.setControls({ notice: frame.message });
      break;
    default:
      return; // pong, and frames this page does not know (PROTOCOL §3: skip them)
  }
  schedule();
}

let scheduled = false;

function schedule() {
  if (scheduled) return;
  scheduled = true;
  // A hidden tab gets no animation frames: it still keeps up, on a timer.
  if (document.hidden) setTimeout(draw, 0);
  else requestAnimationFrame(draw);
}

function draw() {
  scheduled = false;
  const changes = state.takeChanges();
  timeline.draw(changes);
  if (changes.controls) {
    composer.draw({ running: state.running, stopping: state.stopping, notice: state.notice, connected: connection.isOpen() });
  }
}

function newId() {
  if (crypto.randomUUID) return crypto.randomUUID(); // only in secure contexts (https, localhost)
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

draw();
connection.start();
