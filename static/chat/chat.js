// The chat page: renders the session snapshot, then follows the session's event stream over a websocket.
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
let socket = null;
let reconnectAttempt = 0;
let pendingSend = null; // {text, client_message_id} until acknowledged

function render() {
  list.replaceChildren(...state.messages.map(renderMessage));
  sendButton.disabled = running;
  input.disabled = running;
  stopButton.hidden = !running;
  composerStatus.textContent = running ? "The copilot is answering…" : "";
}

function renderMessage(message) {
  const item = document.createElement("li");
  item.className = `message ${message.role}`;
  item.dataset.messageId = message.id;
  const parts = document.createElement("div");
  parts.className = "parts";
  for (const part of message.parts) {
    if (part.type === "text" || part.type === "reasoning") {
      const text = document.createElement("div");
      text.className = part.type;
      text.textContent = part.text;
      parts.append(text);
    } else if (part.type === "dynamic-tool") {
      parts.append(renderTool(part));
    } else if (part.type === "error") {
      const error = document.createElement("p");
      error.className = "error";
      error.setAttribute("role", "alert");
      error.textContent = part.text;
      parts.append(error);
    }
  }
  item.append(parts);
  return item;
}

const TOOL_STATES = {
  "input-streaming": ["running", "preparing…"],
  "input-available": ["running", "running…"],
  "output-available": ["done", "done"],
  "output-error": ["error", "error"],
};

function renderTool(part) {
  const card = document.createElement("details");
  const interrupted = part.state === "output-error" && /interrupted/i.test(part.errorText || "");
  const [kind, label] = interrupted ? ["interrupted", "interrupted"] : TOOL_STATES[part.state] || ["running", part.state];
  card.className = `tool ${kind}`;
  card.dataset.toolCallId = part.toolCallId;
  card.dataset.state = kind;
  const summary = document.createElement("summary");
  const name = document.createElement("strong");
  name.textContent = part.toolName.replace(/^mcp__copilot__/, "");
  const brief = document.createElement("span");
  brief.className = "brief";
  brief.textContent = part.input ? JSON.stringify(part.input).slice(0, 80) : "";
  const badge = document.createElement("span");
  badge.className = "state";
  badge.textContent = label;
  summary.append(name, " ", brief, " ", badge);
  const body = document.createElement("pre");
  const output = part.state === "output-available" ? part.output : part.errorText;
  body.textContent = `input: ${JSON.stringify(part.input ?? null, null, 2)}` +
    (output !== undefined ? `\n\n${part.state === "output-error" ? "error" : "output"}: ${typeof output === "string" ? output : JSON.stringify(output, null, 2)}` : "");
  card.append(summary, body);
  return card;
}

function assistantMessage(messageId) {
  let message = state.messages.find((m) => m.id === messageId);
  if (!message) {
    message = { id: messageId, role: "assistant", parts: [] };
    state.messages.push(message);
  }
  return message;
}

let current = null; // the assistant message the stream is filling

function findPart(predicate) {
  return current ? current.parts.find(predicate) : undefined;
}

function apply(event) {
  const chunk = event.chunk;
  switch (chunk.type) {
    case "start":
      current = assistantMessage(chunk.messageId);
      running = true;
      break;
    case "data-user-message":
      if (!state.messages.some((m) => m.id === chunk.data.message_id)) {
        const index = current ? state.messages.indexOf(current) : state.messages.length;
        state.messages.splice(index, 0, { id: chunk.data.message_id, role: "user", parts: [{ type: "text", text: chunk.data.text }] });
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
      if (chunk.type === "data-retry") composerStatus.textContent = `The model failed; retrying (${chunk.data.attempt}/${chunk.data.max_retries})…`;
      break;
    case "error":
      if (current) current.parts.push({ type: "error", text: chunk.errorText });
      break;
    case "finish":
      running = false;
      current = null;
      break;
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws/sessions/${sessionId}/`);
  socket.addEventListener("open", () => {
    reconnectAttempt = 0;
    banner.hidden = true;
    socket.send(JSON.stringify({ type: "resume", after_seq: lastSeq }));
    if (pendingSend) socket.send(JSON.stringify({ type: "send", ...pendingSend }));
  });
  socket.addEventListener("message", (message) => {
    const frame = JSON.parse(message.data);
    if (frame.type === "event") {
      if (frame.seq <= lastSeq) return;
      lastSeq = frame.seq;
      apply(frame);
      render();
    } else if (frame.type === "snapshot") {
      state = frame.session;
      lastSeq = state.last_seq;
      running = Boolean(state.active_turn);
      current = running ? state.messages.find((m) => m.id === state.active_turn.assistant_message_id) : null;
      render();
    } else if (frame.type === "ack") {
      pendingSend = null;
      running = true;
      render();
    } else if (frame.type === "error") {
      if (pendingSend && ["turn_running", "bad_message", "rate_limited"].includes(frame.code)) pendingSend = null;
      if (frame.code === "bad_seq") location.reload();
      composerStatus.textContent = frame.message;
      sendButton.disabled = input.disabled = false;
    }
  });
  socket.addEventListener("close", (event) => {
    if (event.code === 4401 || event.code === 4404) {
      banner.textContent = event.code === 4401 ? "You are logged out. Reload to log in." : "This chat does not exist.";
      banner.hidden = false;
      return;
    }
    const delay = Math.min(10000, 500 * 2 ** reconnectAttempt) * (0.5 + Math.random() / 2);
    reconnectAttempt += 1;
    banner.textContent = "Connection lost — reconnecting…";
    banner.hidden = false;
    setTimeout(connect, delay);
  });
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value;
  if (!text.trim() || running) return;
  pendingSend = { text, client_message_id: crypto.randomUUID() };
  input.value = "";
  running = true;
  render();
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "send", ...pendingSend }));
});

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    form.requestSubmit();
  }
});

stopButton.addEventListener("click", () => {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "stop" }));
});

if (running) current = state.messages.find((m) => m.id === state.active_turn.assistant_message_id) || null;
render();
connect();
