// The chat page (templates/chat/session.html): draws the session the server rendered, then follows the session's
// events over the websocket, resuming from the last seq it saw after any drop, so nothing shows twice or goes
// missing. Frames change the state (state.js); once per animation frame the views draw what changed.
// Edits, regenerates and retries go over the socket like sends; switching versions, the model and files use the API.
import { request } from "./api.js";
import { ChatState } from "./state.js";
import { Composer } from "./composer.js";
import { Connection } from "./connection.js";
import { FilesPanel, upload, useSession } from "./files.js";
import { ChatHeader } from "./header.js";
import { Timeline } from "./timeline.js";

const root = document.querySelector(".chat");
const sessionId = root.dataset.sessionId;
const banner = document.getElementById("connection");
const page = JSON.parse(document.getElementById("page-data").textContent);
useSession(sessionId);
const state = new ChatState(JSON.parse(document.getElementById("snapshot").textContent),
  { budget: page.budget_usd, spentToday: page.spent_today_usd });
const timeline = new Timeline(document.getElementById("messages"), state, { onAction });
let pendingSend = null; // the frame that starts a turn, until acknowledged: sent again after a reconnect

const scheme = location.protocol === "https:" ? "wss" : "ws";
const connection = new Connection({
  url: `${scheme}://${location.host}/ws/sessions/${sessionId}/`,
  onOpen() {
    connection.send({ type: "resume", after_seq: state.lastSeq });
    if (pendingSend) connection.send(pendingSend);
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

const header = new ChatHeader({
  sessionId,
  title: document.getElementById("chat-title"),
  cost: document.getElementById("chat-cost"),
  budget: document.getElementById("budget-left"),
  picker: document.getElementById("model-picker"),
  onNotice: notice,
});

const files = new FilesPanel({
  panel: document.getElementById("files-panel"),
  toggle: document.getElementById("files-toggle"),
  onNotice: notice,
});

const composer = new Composer({
  form: document.getElementById("composer"),
  dropZone: root,
  onSend(text) {
    startTurn({ type: "send", text });
  },
  onStop() {
    if (!connection.send({ type: "stop" })) return;
    state.setControls({ stopping: true });
    schedule();
  },
  async onFiles(chosen) {
    for (const file of chosen) {
      notice(`Uploading ${file.name}…`);
      const { ok, body } = await upload(file);
      if (!ok) {
        notice(`${file.name}: ${body?.message || "the upload failed"}`);
        continue;
      }
      composer.attach(body.path);
      notice(`${body.path} is in this chat's files.`);
      files.refresh();
    }
  },
});

/** Send a frame that starts a turn (send, an edit's send, regenerate), again after a reconnect until its ack. */
function startTurn(frame) {
  pendingSend = { ...frame, client_message_id: newId() };
  state.setControls({ running: true, notice: "" });
  timeline.followBottom();
  connection.send(pendingSend);
  schedule();
}

function notice(text) {
  state.setControls({ notice: text });
  schedule();
}

async function onAction(action, messageId, view) {
  const message = state.message(messageId);
  if (!message) return;
  if (state.running) {
    notice("Wait for the copilot to finish first.");
    return;
  }
  if (action === "edit") {
    view.startEditing((text) => startTurn({ type: "send", text, edit_of: messageId }));
  } else if (action === "regenerate" || action === "retry") {
    startTurn({ type: "regenerate", message_id: messageId });
  } else if (action === "branch-previous" || action === "branch-next") {
    const { siblings, index } = message.branch;
    const other = siblings[index + (action === "branch-next" ? 1 : -1)];
    if (other) await showBranch(other);
  }
}

async function showBranch(messageId) {
  const { ok, body } = await request("PATCH", `/api/sessions/${sessionId}/`, { active_leaf: messageId });
  if (!ok) {
    notice(body?.message || "That version could not be shown.");
    return;
  }
  if (body.last_seq >= state.lastSeq) state.load(body);
  schedule();
}

async function reloadSnapshot() {
  const { ok, body } = await request("GET", `/api/sessions/${sessionId}/`);
  if (ok && body.last_seq >= state.lastSeq) state.load(body);
  schedule();
}

function onFrame(frame) {
  switch (frame.type) {
    case "event":
      state.applyEvent(frame);
      if (frame.chunk.type === "finish") files.refresh();
      if (state.stale) {
        state.stale = false;
        reloadSnapshot(); // another tab or device continues a branch this page does not show
      }
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
        if (pendingSend.type === "send" && !pendingSend.edit_of) composer.restore(pendingSend.text);
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
    root.classList.toggle("running", state.running);
    header.draw(state);
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
