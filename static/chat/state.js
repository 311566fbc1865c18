// The session as the page knows it (PROTOCOL §2-§4, §8): the messages of the branch shown, their parts and
// versions, background reports, the title, what the chat cost and what is left of today's budget, the turn's state,
// and how each websocket frame changes it; turn control (PROTOCOL §7): the turn's liveness, the calls that wait for
// approval, the session's approval mode and the messages queued behind the running turn. No DOM here: every change
// is recorded in `changes` for the views to draw: which timeline items changed, whether the timeline's order
// changed, whether the controls (the header, the composer, the queue) did, whether the liveness did.

const ENDED = new Set(["output-available", "output-error"]);
const ZERO_USAGE = { input_tokens: 0, output_tokens: 0, cache_read_input_tokens: 0, cache_creation_input_tokens: 0,
  cost_usd: 0 };

export class ChatState {
  constructor(snapshot, { budget = null, spentToday = 0 } = {}) {
    this.changes = { order: true, items: new Set(), controls: true, liveness: true };
    this.stopping = false;
    this.liveness = null; // the newest `liveness` frame, with `receivedAt` (Date.now()); null: nothing runs
    this.notice = "";
    this.budget = budget; // USER_DAILY_BUDGET_USD, null when there is none
    this.spentToday = spentToday;
    this.stale = false; // the server continues a branch this page does not show: it needs the snapshot
    this.load(snapshot);
  }

  /** What is left of today's budget, null without one. */
  get budgetLeft() {
    return this.budget === null ? null : Math.max(0, this.budget - this.spentToday);
  }

  /** Replace everything with a snapshot (the page's own, or a `snapshot` frame). */
  load(snapshot) {
    this.session = snapshot;
    this.lastSeq = snapshot.last_seq;
    this.title = snapshot.title;
    this.model = snapshot.model;
    this.usage = { ...ZERO_USAGE, ...(snapshot.usage || {}) };
    this.stale = false;
    this.items = new Map(); // key → {kind: "message"|"report", key, at, message|report}
    this.order = []; // keys, oldest first
    this.toolParts = new Map(); // toolCallId → the part, wherever its message is
    const entries = snapshot.messages.map((message) => this.messageItem(message, "s"));
    (snapshot.reports || []).forEach((report) => entries.push(this.reportItem(report)));
    entries.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
    for (const item of entries) {
      this.items.set(item.key, item);
      this.order.push(item.key);
    }
    this.running = Boolean(snapshot.active_turn);
    this.current = this.running ? this.message(snapshot.active_turn.assistant_message_id) : null;
    this.approvalMode = snapshot.approval_mode || "auto";
    for (const approval of snapshot.active_turn?.pending_approvals || []) this.approvalAsked(approval);
    this.queued = (snapshot.queued || []).map(({ turn_id, message_id, text }) => ({ turn_id, message_id, text }));
    this.startedTurns = new Set(); // turns this page saw start: an ack that comes later does not queue them again
    if (!this.running) this.liveness = null;
    this.changes.liveness = true;
    this.changes.order = true;
    this.changes.controls = true;
    for (const key of this.order) this.changes.items.add(key);
  }

  /** What changed since the last call, for the views; starts a new record. */
  takeChanges() {
    const changes = this.changes;
    this.changes = { order: false, items: new Set(), controls: false, liveness: false };
    return changes;
  }

  message(id) {
    const item = this.items.get(id);
    return item && item.kind === "message" ? item.message : null;
  }

  timeline() {
    return this.order.map((key) => this.items.get(key));
  }

  /** The answer's Markdown as the model wrote it: its text parts, in order. */
  answerText(messageId) {
    const message = this.message(messageId);
    if (!message) return "";
    return message.parts.filter((part) => part.type === "text").map((part) => part.text).join("\n\n");
  }

  /** Change what the controls show (running, stopping, notice); with no fields: something else they show changed. */
  setControls(fields = {}) {
    Object.assign(this, fields);
    this.changes.controls = true;
  }

  /** A `liveness` frame (PROTOCOL §7: not an event, never replayed): what the running turn does right now. */
  setLiveness(frame) {
    this.liveness = frame.state === "idle" ? null : { ...frame, receivedAt: Date.now() };
    this.changes.liveness = true;
  }

  /** The parts of the calls that `liveness.running_tools` (or another list of toolCallIds) names. */
  toolPartsOf(toolCallIds) {
    return toolCallIds.map((id) => this.toolParts.get(id)).filter(Boolean);
  }

  /** The toolCallIds of the calls that wait for these approvals. */
  callsAwaiting(approvalIds) {
    const wanted = new Set(approvalIds);
    return [...this.toolParts.values()].filter((part) => part.approval && wanted.has(part.approval.approval_id))
      .map((part) => part.toolCallId);
  }

  /** A send that the server queued behind the running turn (its `ack` said `queued: true`). */
  addQueued({ turn_id, message_id, text }) {
    if (this.startedTurns.has(turn_id) || this.queued.some((entry) => entry.turn_id === turn_id)) return;
    this.queued.push({ turn_id, message_id, text });
    this.changes.controls = true;
  }

  /** A queued turn that started (it joins the timeline) or was removed. */
  dropQueued(turnId) {
    const before = this.queued.length;
    this.queued = this.queued.filter((entry) => entry.turn_id !== turnId);
    if (this.queued.length !== before) this.changes.controls = true;
  }

  // --- frames ---------------------------------------------------------------------------------------------------

  /** An `event` frame: applied once, in seq order; true when it was new. */
  applyEvent(frame) {
    if (frame.seq <= this.lastSeq) return false; // already shown
    this.lastSeq = frame.seq;
    if (frame.turn_id !== null && frame.chunk.type === "start") {
      this.startedTurns.add(frame.turn_id);
      this.dropQueued(frame.turn_id);
    }
    if (frame.turn_id !== null) this.applyChunk(frame.chunk);
    else if (frame.chunk.type === "data-title") this.setControls({ title: frame.chunk.data.title });
    else this.addReport({ seq: frame.seq, chunk: frame.chunk, created_at: this.nowAfterEverything() });
    return true;
  }

  applyChunk(chunk) {
    const current = this.current;
    switch (chunk.type) {
      case "start":
        this.current = this.assistantMessage(chunk.messageId);
        this.current.turn_status = "running";
        this.setControls({ running: true, notice: "" });
        break;
      case "data-user-message":
        this.placePrompt(chunk.data, current);
        break;
      case "data-usage":
        if (current) {
          current.usage = chunk.data;
          this.touch(current);
        }
        for (const name of Object.keys(ZERO_USAGE)) this.usage[name] += Number(chunk.data[name]) || 0;
        this.spentToday += Number(chunk.data.cost_usd) || 0;
        this.setControls();
        break;
      case "data-turn":
        if (current) {
          current.turn_status = chunk.data.status;
          this.touch(current);
        }
        break;
      case "text-start":
      case "reasoning-start":
        if (current) this.addPart(current, { type: chunk.type.split("-")[0], id: chunk.id, key: `${chunk.type}:${chunk.id}`, text: "" });
        break;
      case "text-delta":
      case "reasoning-delta": {
        const part = current && current.parts.find((p) => p.id === chunk.id);
        if (part) {
          part.text += chunk.delta;
          this.touch(current, part);
        }
        break;
      }
      case "tool-input-start":
        if (current && !this.toolParts.has(chunk.toolCallId)) this.addPart(current, this.toolPart(chunk));
        break;
      case "tool-input-available": {
        let part = this.toolParts.get(chunk.toolCallId);
        if (!part && current) part = this.addPart(current, this.toolPart(chunk));
        if (part) {
          Object.assign(part, { state: "input-available", input: chunk.input });
          this.touch(part.message, part);
        }
        break;
      }
      case "tool-output-available":
      case "tool-output-error": {
        // Looked up in every message: staff may close a dangling call after its turn ended.
        const part = this.toolParts.get(chunk.toolCallId);
        if (part && !ENDED.has(part.state)) {
          if (chunk.type === "tool-output-available") Object.assign(part, { state: "output-available", output: chunk.output });
          else Object.assign(part, { state: "output-error", errorText: chunk.errorText });
          this.touch(part.message, part);
        }
        break;
      }
      case "data-approval":
        this.approvalAsked(chunk.data);
        break;
      case "data-approval-decision": {
        const part = this.toolParts.get(chunk.data.toolCallId);
        if (part) {
          part.approval = { ...(part.approval || {}), ...chunk.data };
          this.touch(part.message, part);
        }
        break;
      }
      case "data-retry":
      case "data-discard":
        if (current) this.discard(current, chunk.data.discard);
        if (chunk.type === "data-retry") {
          this.setControls({ notice: `The model did not answer; retrying (${chunk.data.attempt} of ${chunk.data.max_retries})…` });
        }
        break;
      case "error":
        if (current) {
          current.error = chunk.errorText;
          this.touch(current);
        }
        break;
      case "finish":
        this.current = null;
        this.setControls({ running: false, stopping: false, notice: "" });
        this.setLiveness({ state: "idle" }); // the server's own idle liveness follows
        break;
      default:
        break; // start-step, finish-step, data-turn and chunks this page does not show
    }
  }

  /** A call waits for the user's decision (`data-approval`, or the snapshot's `pending_approvals`). */
  approvalAsked(approval) {
    const part = this.toolParts.get(approval.toolCallId);
    if (!part || part.approval?.decision) return;
    part.approval = { ...approval };
    this.touch(part.message, part);
  }

  /**
   * A turn's prompt (`data-user-message`): the turn continues the branch through the message it follows
   * (`parent_id`), so whatever this page shows after that point is another branch and goes; the prompt (unless it is
   * there already: a regenerated answer) and the answer take its place, with their versions (`branch`).
   */
  placePrompt(data, current) {
    if ("parent_id" in data) {
      const after = this.items.has(data.message_id) ? data.message_id : data.parent_id;
      if (after !== null && !this.items.has(after)) this.stale = true; // a branch this page does not show
      else this.dropMessagesAfter(after, current);
    }
    let prompt = this.message(data.message_id);
    if (!prompt) {
      const createdAt = current ? current.created_at : new Date().toISOString();
      prompt = { id: data.message_id, role: "user", created_at: createdAt, parts: [{ type: "text", text: data.text }] };
      this.insert(this.messageItem(prompt, "s"), current ? current.id : null);
    }
    if (data.branch) {
      prompt.branch = data.branch;
      this.touch(prompt);
    }
    if (current && data.answer_branch) {
      current.branch = data.answer_branch;
      this.touch(current);
    }
  }

  /** Take off the timeline every message after `key` (null: every message), except `keep`; reports stay. */
  dropMessagesAfter(key, keep) {
    const at = key === null ? -1 : this.order.indexOf(key);
    const dropped = this.order.slice(at + 1).filter((other) => {
      const item = this.items.get(other);
      return item.kind === "message" && (!keep || other !== keep.id);
    });
    if (!dropped.length) return;
    for (const other of dropped) {
      for (const part of this.items.get(other).message.parts) if (part.toolCallId) this.toolParts.delete(part.toolCallId);
      this.items.delete(other);
    }
    const gone = new Set(dropped);
    this.order = this.order.filter((other) => !gone.has(other));
    this.changes.order = true;
  }

  // --- building blocks ------------------------------------------------------------------------------------------

  messageItem(message, prefix) {
    message.rev = 0;
    message.parts.forEach((part, index) => this.adopt(message, part, `${prefix}${index}`));
    return { kind: "message", key: message.id, at: message.created_at, message };
  }

  reportItem(report) {
    return { kind: "report", key: `report:${report.seq}`, at: report.created_at, report };
  }

  adopt(message, part, key) {
    part.key = part.key || (part.type === "dynamic-tool" ? `tool:${part.toolCallId}` : key);
    part.rev = 0;
    Object.defineProperty(part, "message", { value: message, writable: true, enumerable: false });
    if (part.type === "dynamic-tool") this.toolParts.set(part.toolCallId, part);
    return part;
  }

  toolPart(chunk) {
    return { type: "dynamic-tool", toolCallId: chunk.toolCallId, toolName: chunk.toolName, state: "input-streaming",
      startedAt: new Date().toISOString() };
  }

  addPart(message, part) {
    this.adopt(message, part, `p${message.parts.length}`);
    message.parts.push(part);
    this.touch(message, part);
    return part;
  }

  discard(message, ids) {
    const removed = message.parts.filter((part) => ids.includes(part.id ?? part.toolCallId));
    if (!removed.length) return;
    message.parts = message.parts.filter((part) => !removed.includes(part));
    for (const part of removed) if (part.toolCallId) this.toolParts.delete(part.toolCallId);
    this.touch(message);
  }

  touch(message, part) {
    message.rev += 1;
    if (part) part.rev += 1;
    this.changes.items.add(message.id);
  }

  assistantMessage(messageId) {
    let message = this.message(messageId);
    if (!message) {
      message = { id: messageId, role: "assistant", parts: [], created_at: this.nowAfterEverything() };
      this.insert(this.messageItem(message, "s"), null);
    }
    return message;
  }

  addReport(report) {
    this.insert(this.reportItem(report), null);
  }

  /** Put an item in the timeline before the item `beforeKey` (null: at the end). */
  insert(item, beforeKey) {
    this.items.set(item.key, item);
    const at = beforeKey === null ? -1 : this.order.indexOf(beforeKey);
    if (at < 0) this.order.push(item.key);
    else this.order.splice(at, 0, item.key);
    this.changes.order = true;
    this.changes.items.add(item.key);
  }

  nowAfterEverything() {
    // A live item goes last, even when this computer's clock is behind the server's.
    let latest = Date.now();
    for (const item of this.items.values()) latest = Math.max(latest, Date.parse(item.at) + 1 || 0);
    return new Date(latest).toISOString();
  }
}
