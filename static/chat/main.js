// The chat page (templates/chat/session.html): draws the session the server rendered, then follows the session's
// events over the websocket, resuming from the last seq it saw after any drop, so nothing shows twice or goes
// missing. Frames change the state (state.js); once per animation frame the views draw what changed.
// Edits, regenerates and retries go over the socket like sends; switching versions, the model and files use the API.
// Turn control (PROTOCOL §7): the liveness line, Allow / Deny and Cancel on tool cards, "Ask before tools", and
// messages sent during a turn, which wait in the queue (`queue: true`) until their turn starts.
import { request } from "./api.js";
import { ChatState } from "./state.js";
import { Composer } from "./composer.js";
import { Connection } from "./connection.js";
import { FilesPanel, upload, useSession } from "./files.js";
import { ChatHeader } from "./header.js";
import { LivenessLine } from "./liveness.js";
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
const pendingQueued = []; // sends queued behind the running turn, oldest first, until acknowledged: likewise
const FLASH_MS = 6000; // how long a refusal of a decision or a cancel stays in the status line
// Refusals of a decide or a cancel_tool frame: they never concern a send that waits for its ack.
const CONTROL_ERRORS = new Set(["already_decided", "unknown_approval", "not_running"]);
const liveness = new LivenessLine(document.getElementById("liveness"));

const scheme = location.protocol === "https:" ? "wss" : "ws";
const connection = new Connection({
  url: `${scheme}://${location.host}/ws/sessions/${sessionId}/`,
  onOpen() {
    connection.send({ type: "resume", after_seq: state.lastSeq });
    if (pendingSend) connection.send(pendingSend);
    for (const frame of pendingQueued) connection.send(frame);
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
  askToggle: document.getElementById("ask-before-tools"),
  onNotice: notice,
  onApprovalMode(mode) {
    state.setControls({ approvalMode: mode });
    schedule();
  },
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
    // Queued messages go first: between one turn's end and the next one's start, a message still waits its turn.
    if (state.running || state.queued.length) queueMessage(text);
    else startTurn({ type: "send", text });
  },
  onRemoveQueued: removeQueued,
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

/** Send a message that waits for the running turn to end (PROTOCOL §7); the ack says it was queued. */
function queueMessage(text) {
  const frame = { type: "send", text, client_message_id: newId(), queue: true };
  pendingQueued.push(frame);
  timeline.followBottom();
  connection.send(frame);
}

async function removeQueued(turnId) {
  const { ok, status, body } = await request("DELETE", `/api/sessions/${sessionId}/turns/${turnId}/`);
  if (ok || status === 404) state.dropQueued(turnId);
  else {
    composer.removeFailed(turnId);
    flash(status === 409 ? "That message has started: it can no longer be removed." : body?.message || "It could not be removed.");
  }
  schedule();
}

/** Allow, Deny and Cancel on a tool card; their answer is an event (the decision, the call's output). */
function onToolAction(action, button) {
  const part = state.toolParts.get(button.closest(".tool")?.dataset.toolCallId);
  if (!part) return;
  const frame = action === "cancel-tool" ? { type: "cancel_tool", toolCallId: part.toolCallId }
    : { type: "decide", approval_id: button.dataset.approvalId, decision: action === "allow" ? "allow" : "deny" };
  if (!connection.send(frame)) {
    flash("Not connected: try again in a moment.");
    return;
  }
  if (action === "cancel-tool") part.cancelling = true;
  else part.approval = { ...part.approval, sending: true };
  state.touch(part.message, part);
  schedule();
}

/** A decide or cancel_tool was refused: its buttons work again (the event that settles the card may follow). */
function controlRefused() {
  for (const part of state.toolParts.values()) {
    if (!part.cancelling && !part.approval?.sending) continue;
    part.cancelling = false;
    if (part.approval) part.approval = { ...part.approval, sending: false };
    state.touch(part.message, part);
  }
}

/** A notice that goes away by itself (a refusal that needs nothing from the user). */
function flash(text) {
  notice(text);
  setTimeout(() => {
    if (state.notice === text) notice("");
  }, FLASH_MS);
}

function notice(text) {
  state.setControls({ notice: text });
  schedule();
}

async function onAction(action, messageId, view, button) {
  if (action === "allow" || action === "deny" || action === "cancel-tool") {
    onToolAction(action, button);
    return;
  }
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
    case "ack": {
      const queued = pendingQueued.findIndex((sent) => sent.client_message_id === frame.client_message_id);
      if (queued >= 0) {
        const [sent] = pendingQueued.splice(queued, 1);
        if (frame.queued) {
          state.addQueued({ turn_id: frame.turn_id, message_id: frame.message_id, text: sent.text });
          break;
        }
      } else pendingSend = null;
      state.setControls({ running: true }); // no turn ran any more: a queued send started at once
      break;
    }
    case "liveness":
      state.setLiveness(frame);
      break;
    case "error":
      if (frame.code === "bad_seq") {
        location.reload(); // the server has less than we saw: start again from its snapshot
        return;
      }
      if (CONTROL_ERRORS.has(frame.code)) {
        controlRefused();
        flash(frame.message);
        break;
      }
      if (!pendingSend && pendingQueued.length && frame.code !== "rate_limited") {
        composer.restore(pendingQueued.shift().text); // the oldest send waiting for its answer: refused
      } else if (pendingSend && frame.code !== "rate_limited") {
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
    composer.draw({ running: state.running, stopping: state.stopping, notice: state.notice, connected: connection.isOpen(),
      queued: state.queued, queueing: state.running || state.queued.length > 0 });
  }
  // Which tools run is in the cards: a liveness frame may name a call before its card is drawn.
  if (changes.liveness || changes.items.size) liveness.draw(state);
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
