// One item of the timeline: a message (a header with its time, its parts, a footer) or a background report.
// A message keeps a view per part, keyed by the part's key, and redraws only the parts whose revision changed.
// Room for what comes next: `.message-controls` in the header (branch arrows "‹ 2/3 ›"), `.message-actions` and
// `.message-meta` in the footer (edit, regenerate, retry; the turn's cost).
import { element, setHidden, setText } from "./dom.js";
import { pretty, showTime } from "./format.js";
import { MarkdownView } from "./markdown.js";
import { ToolCard } from "./tool-card.js";

class MarkdownPart {
  constructor() {
    this.element = element("div", "text");
    this.view = new MarkdownView(this.element);
  }

  update(part) {
    this.view.update(part.text);
  }

  remove() {
    this.element.remove();
  }
}

class PlainPart {
  constructor(className) {
    this.element = element("div", className);
  }

  update(part) {
    setText(this.element, part.text);
  }

  remove() {
    this.element.remove();
  }
}

function partView(part, role) {
  if (part.type === "dynamic-tool") return new ToolCard(part);
  if (part.type === "reasoning") return new PlainPart("reasoning");
  if (part.type === "text") return role === "user" ? new PlainPart("text") : new MarkdownPart();
  return null; // a part this page does not show
}

export class MessageView {
  constructor(message) {
    this.element = element("article", `message ${message.role}`);
    this.element.dataset.messageId = message.id;
    const header = element("div", "message-header");
    const label = element("span", "visually-hidden", message.role === "user" ? "You said:" : "Copilot:");
    this.time = element("time", "message-time");
    this.controls = element("span", "message-controls");
    header.append(label, this.time, this.controls);
    this.parts = element("div", "parts");
    this.error = element("p", "error");
    this.error.setAttribute("role", "alert");
    this.error.hidden = true;
    this.footer = element("div", "message-footer");
    this.actions = element("span", "message-actions");
    this.meta = element("span", "message-meta");
    if (message.role === "assistant") {
      this.copy = element("button", "copy copy-answer");
      this.copy.type = "button";
      this.copy.dataset.label = "Copy";
      this.copy.setAttribute("aria-label", "Copy answer");
      this.actions.append(this.copy);
    }
    this.footer.append(this.actions, this.meta);
    this.element.append(header, this.parts, this.error, this.footer);
    this.partViews = new Map(); // part key → {view, part, rev}
    this.message = null;
    this.createdAt = null;
  }

  update(message) {
    this.message = message;
    if (message.created_at !== this.createdAt) {
      this.createdAt = message.created_at;
      showTime(this.time, message.created_at);
    }
    this.drawParts(message);
    const error = message.error || "";
    setText(this.error, error);
    setHidden(this.error, !error);
    if (this.copy) setHidden(this.copy, !message.parts.some((part) => part.type === "text" && part.text));
  }

  drawParts(message) {
    const seen = new Set();
    let previous = null;
    for (const part of message.parts) {
      let entry = this.partViews.get(part.key);
      if (!entry) {
        const view = partView(part, message.role);
        if (!view) continue;
        entry = { view, part: null, rev: -1 };
        this.partViews.set(part.key, entry);
      }
      if (entry.part !== part || entry.rev !== part.rev) {
        entry.view.update(part);
        entry.part = part;
        entry.rev = part.rev;
      }
      seen.add(part.key);
      const node = entry.view.element;
      const expected = previous ? previous.nextSibling : this.parts.firstChild;
      if (node !== expected) this.parts.insertBefore(node, expected);
      previous = node;
    }
    for (const [key, entry] of this.partViews) {
      if (!seen.has(key)) {
        entry.view.remove();
        this.partViews.delete(key);
      }
    }
  }

  remove() {
    for (const entry of this.partViews.values()) entry.view.remove();
    this.element.remove();
  }
}

/** Background work reporting back (an agent run or build), PROTOCOL §6. */
export class ReportView {
  constructor(report) {
    const { type, data } = report.chunk;
    this.element = element("div", `message report ${data.status}`);
    this.element.setAttribute("role", "status");
    const header = element("div", "message-header");
    const time = element("time", "message-time");
    showTime(time, report.created_at);
    const title = element("strong", "", type === "data-agent-run" ? `Agent run ${data.status}` : `Agent “${data.name}” ${data.status}`);
    header.append(title, time);
    this.element.append(header);
    const detail = type === "data-agent-run" ? data.outputs : data.error;
    if (detail && (typeof detail === "string" || Object.keys(detail).length)) this.element.append(element("pre", "", pretty(detail)));
  }

  update() {}

  remove() {
    this.element.remove();
  }
}
