// The chat page: renders the session snapshot, then follows the session's event stream over a websocket
// (PROTOCOL §3), resuming from the last seq it saw after any drop, so nothing shows twice or goes missing.
import { renderMarkdown } from "./markdown.js";

const root = document.querySelector(".chat");
const sessionId = root.dataset.sessionId;
const list = document.getElementById("messages");
const form = document.getElementById("composer");
const input = document.getElementById("message-input");
const sendButton = document.getElementById("send");
const stopButton = document.getElementById("stop");
const banner = document.getElementById("connection");
const composerStatus = document.getElementById("composer-status");

let state = JSON.parse(document.getElementById("snapshot").textContent);
let lastSeq = state.last_seq;
let running = Boolean(state.active_turn);
let current = null; // the assistant message the stream is filling
let socket = null;
let reconnectAttempt = 0;
let pendingSend = null; // {text, client_message_id} until acknowledged: resent after a reconnect
let stopping = false;
let notice = "";
let lastFrameAt = Date.now();
const PING_EVERY_MS = 10000; // a socket silent for two pings is dead even if nobody closed it
const DEAD_AFTER_MS = 25000;
const openCards = new Set(); // tool cards the user expanded stay expanded across renders

const TOOL_LABELS = { running: "running", done: "done", error: "error", interrupted: "interrupted" };

function toolKind(part) {
  if (part.state === "output-available") return "done";
  if (part.state === "output-error") return /interrupted/i.test(part.errorText || "") ? "interrupted" : "error";
  return "running";
}

function timeline() {
  // Messages and background reports (agent runs and builds) in the order they happened.
  const items = state.messages.map((message) => ({ at: message.created_at, node: () => renderMessage(message) }));
  for (const report of state.reports || []) items.push({ at: report.created_at, node: () => renderReport(report) });
  return items.sort((a, b) => Date.parse(a.at) - Date.parse(b.at)).map((item) => item.node());
}

function nowAfterEverything() {
  // A live report goes last, even when this computer's clock is behind the server's.
  const times = [Date.now(), ...state.messages.map((m) => Date.parse(m.created_at) + 1),
    ...(state.reports || []).map((r) => Date.parse(r.created_at) + 1)].filter(Number.isFinite);
  return new Date(Math.max(...times)).toISOString();
}

function renderReport(report) {
  const { type, data } = report.chunk;
  const item = document.createElement("li");
  item.className = `message report ${data.status}`;
  item.setAttribute("role", "status");
  const title = document.createElement("strong");
  title.textContent = type === "data-agent-run" ? `Agent run ${data.status}` : `Agent “${data.name}” ${data.status}`;
  item.append(title);
  const detail = type === "data-agent-run" ? data.outputs : data.error;
  if (detail && (typeof detail === "string" || Object.keys(detail).length)) {
    const body = document.createElement("pre");
    body.textContent = pretty(detail);
    item.append(body);
  }
  return item;
}

function render() {
  list.replaceChildren(...timeline());
  sendButton.disabled = running || !socketOpen();
  input.disabled = running;
  stopButton.hidden = !running;
  stopButton.disabled = stopping;
  stopButton.textContent = stopping ? "Stopping…" : "Stop";
  composerStatus.textContent = notice || (running ? "The copilot is answering…" : "");
  tickElapsed();
}

function renderMessage(message) {
  const item = document.createElement("li");
  item.className = `message ${message.role}`;
  item.dataset.messageId = message.id;
  const label = document.createElement("span");
  label.className = "visually-hidden";
  label.textContent = message.role === "user" ? "You said:" : "Copilot:";
  const parts = document.createElement("div");
  parts.className = "parts";
  for (const part of message.parts) {
    if (part.type === "text") {
      const text = document.createElement("div");
      text.className = "text";
      if (message.role === "user") text.textContent = part.text;
      else text.append(renderMarkdown(part.text));
      parts.append(text);
    } else if (part.type === "reasoning") {
      const thinking = document.createElement("div");
      thinking.className = "reasoning";
      thinking.textContent = part.text;
      parts.append(thinking);
    } else if (part.type === "dynamic-tool") {
      parts.append(renderTool(part));
    }
  }
  if (message.error) {
    const error = document.createElement("p");
    error.className = "error";
    error.setAttribute("role", "alert");
    error.textContent = message.error;
    parts.append(error);
  }
  item.append(label, parts);
  return item;
}

function renderTool(part) {
  const kind = toolKind(part);
  const card = document.createElement("details");
  card.className = `tool ${kind}`;
  card.dataset.toolCallId = part.toolCallId;
  card.dataset.state = kind;
  card.open = openCards.has(part.toolCallId);
  card.addEventListener("toggle", () => (card.open ? openCards.add(part.toolCallId) : openCards.delete(part.toolCallId)));
  const summary = document.createElement("summary");
  const name = document.createElement("strong");
  name.textContent = part.toolName.replace(/^mcp__copilot__/, "");
  const brief = document.createElement("span");
  brief.className = "brief";
  brief.textContent = summarise(part.input);
  const badge = document.createElement("span");
  badge.className = "state";
  badge.textContent = TOOL_LABELS[kind];
  if (kind === "running") {
    const elapsed = document.createElement("span");
    elapsed.className = "elapsed";
    elapsed.dataset.since = part.startedAt || new Date().toISOString();
    part.startedAt = elapsed.dataset.since;
    badge.append(" ", elapsed);
  }
  summary.append(name, " ", brief, " ", badge);
  const details = document.createElement("div");
  details.className = "tool-details";
  details.append(labelled("Input", JSON.stringify(part.input ?? null, null, 2)));
  if (part.state === "output-available") details.append(labelled("Output", pretty(part.output)));
  if (part.state === "output-error") details.append(labelled("Error", part.errorText));
  card.append(summary, details);
  return card;
}

function summarise(value) {
  if (value === undefined) return "…";
  const text = JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}…` : text;
}

function pretty(value) {
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

function labelled(title, text) {
  const block = document.createElement("div");
  const heading = document.createElement("h4");
  heading.textContent = title;
  const pre = document.createElement("pre");
  pre.textContent = text;
  block.append(heading, pre);
  return block;
}

function tickElapsed() {
  for (const span of list.querySelectorAll(".elapsed")) {
    const seconds = Math.max(0, Math.floor((Date.now() - Date.parse(span.dataset.since)) / 1000));
    span.textContent = `${seconds}s`;
  }
}
setInterval(tickElapsed, 1000);

function assistantMessage(messageId) {
  let message = state.messages.find((m) => m.id === messageId);
  if (!message) {
    message = { id: messageId, role: "assistant", parts: [], created_at: nowAfterEverything() };
    state.messages.push(message);
  }
  return message;
}

function findPart(predicate) {
  return current ? current.parts.find(predicate) : undefined;
}

function apply(chunk) {
  switch (chunk.type) {
    case "start":
      current = assistantMessage(chunk.messageId);
      running = true;
      notice = "";
      break;
    case "data-user-message":
      if (!state.messages.some((m) => m.id === chunk.data.message_id)) {
        const at = current ? state.messages.indexOf(current) : state.messages.length;
        const createdAt = current ? current.created_at : new Date().toISOString();
        state.messages.splice(at, 0, { id: chunk.data.message_id, role: "user", created_at: createdAt,
          parts: [{ type: "text", text: chunk.data.text }] });
      }
      break;
    case "text-start":
    case "reasoning-start":
      if (current) current.parts.push({ type: chunk.type.split("-")[0], id: chunk.id, text: "" });
      break;
    case "text-delta":
    case "reasoning-delta": {
      const part = findPart((p) => p.id === chunk.id);
      if (part) part.text += chunk.delta;
      break;
    }
    case "tool-input-start":
      if (current && !findPart((p) => p.toolCallId === chunk.toolCallId)) {
        current.parts.push({ type: "dynamic-tool", toolCallId: chunk.toolCallId, toolName: chunk.toolName, state: "input-streaming" });
      }
      break;
    case "tool-input-available": {
      let part = findPart((p) => p.toolCallId === chunk.toolCallId);
      if (!part && current) {
        part = { type: "dynamic-tool", toolCallId: chunk.toolCallId, toolName: chunk.toolName };
        current.parts.push(part);
      }
      if (part) Object.assign(part, { state: "input-available", input: chunk.input });
      break;
    }
    case "tool-output-available":
    case "tool-output-error": {
      const part = findPart((p) => p.toolCallId === chunk.toolCallId);
      if (part && part.state !== "output-available" && part.state !== "output-error") {
        if (chunk.type === "tool-output-available") Object.assign(part, { state: "output-available", output: chunk.output });
        else Object.assign(part, { state: "output-error", errorText: chunk.errorText });
      }
      break;
    }
    case "data-retry":
    case "data-discard":
      if (current) current.parts = current.parts.filter((p) => !chunk.data.discard.includes(p.id ?? p.toolCallId));
      if (chunk.type === "data-retry") notice = `The model did not answer; retrying (${chunk.data.attempt} of ${chunk.data.max_retries})…`;
      break;
    case "error":
      if (current) current.error = chunk.errorText;
      break;
    case "finish":
      running = false;
      stopping = false;
      current = null;
      notice = "";
      break;
  }
}

function socketOpen() {
  return socket !== null && socket.readyState === WebSocket.OPEN;
}

function showBanner(text) {
  banner.textContent = text;
  banner.hidden = !text;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws/sessions/${sessionId}/`);
  socket.addEventListener("open", () => {
    reconnectAttempt = 0;
    lastFrameAt = Date.now();
    showBanner("");
    socket.send(JSON.stringify({ type: "resume", after_seq: lastSeq }));
    if (pendingSend) socket.send(JSON.stringify({ type: "send", ...pendingSend }));
    render();
  });
  socket.addEventListener("message", (message) => {
    lastFrameAt = Date.now();
    const frame = JSON.parse(message.data);
    if (frame.type === "pong") return;
    if (frame.type === "event") {
      if (frame.seq <= lastSeq) return; // already shown
      lastSeq = frame.seq;
      if (frame.turn_id === null) {
        state.reports = [...(state.reports || []), { seq: frame.seq, chunk: frame.chunk, created_at: nowAfterEverything() }];
      } else {
        apply(frame.chunk);
      }
    } else if (frame.type === "snapshot") {
      state = frame.session;
      lastSeq = state.last_seq;
      running = Boolean(state.active_turn);
      current = running ? state.messages.find((m) => m.id === state.active_turn.assistant_message_id) || null : null;
    } else if (frame.type === "ack") {
      pendingSend = null;
      running = true;
    } else if (frame.type === "error") {
      if (frame.code === "bad_seq") {
        location.reload(); // the server has less than we saw: start again from its snapshot
        return;
      }
      if (pendingSend && frame.code !== "rate_limited") {
        input.value = input.value || pendingSend.text; // give the text back to edit or resend
        pendingSend = null;
        running = false;
      }
      if (frame.code === "nothing_running") stopping = false;
      notice = frame.message;
    }
    render();
  });
  const thisSocket = socket;
  socket.addEventListener("close", (event) => {
    if (thisSocket !== socket) return; // an older socket we replaced
    if (event.code === 4401 || event.code === 4404) {
      showBanner(event.code === 4401 ? "You are logged out. Reload the page to log in again." : "This chat does not exist.");
      return;
    }
    const delay = Math.min(10000, 500 * 2 ** reconnectAttempt) * (0.5 + Math.random() / 2);
    reconnectAttempt += 1;
    showBanner("Connection lost — reconnecting…");
    render();
    reconnectTimer = setTimeout(connect, delay);
  });
}

let reconnectTimer = null;

function reconnectNow() {
  clearTimeout(reconnectTimer);
  reconnectAttempt = 0;
  if (socket) socket.close();
  connect();
}

window.addEventListener("offline", () => {
  showBanner("You are offline — waiting for the network…");
  if (socket) socket.close();
});
window.addEventListener("online", () => {
  if (!socketOpen()) reconnectNow();
});
setInterval(() => {
  if (!socketOpen()) return;
  if (Date.now() - lastFrameAt > DEAD_AFTER_MS) {
    socket.close(); // no pong for too long: the connection is gone without saying so
    return;
  }
  socket.send(JSON.stringify({ type: "ping" }));
}, PING_EVERY_MS);

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value;
  if (!text.trim() || running) return;
  pendingSend = { text, client_message_id: crypto.randomUUID() };
  input.value = "";
  running = true;
  notice = "";
  render();
  if (socketOpen()) socket.send(JSON.stringify({ type: "send", ...pendingSend }));
});

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});

stopButton.addEventListener("click", () => {
  if (!socketOpen()) return;
  stopping = true;
  socket.send(JSON.stringify({ type: "stop" }));
  render();
});

if (running) current = state.messages.find((m) => m.id === state.active_turn.assistant_message_id) || null;
render();
connect();
