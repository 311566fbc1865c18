// One item of the timeline: a message (a header with its time and its versions "‹ 2/3 ›", its parts, a footer with
// its actions — copy, edit, regenerate, retry — and what the answer cost) or a background report.
// A message keeps a view per part, keyed by the part's key, and redraws only the parts whose revision changed.
// Buttons carry `data-action`; the timeline handles their clicks.
import { element, setHidden, setText } from "./dom.js";
import { dollars, pretty, showTime, tokens } from "./format.js";
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
    this.controls.hidden = true;
    this.previous = actionButton("branch-previous", "‹", "Previous version");
    this.position = element("span", "branch-position");
    this.next = actionButton("branch-next", "›", "Next version");
    this.controls.append(this.previous, this.position, this.next);
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
      this.regenerate = actionButton("regenerate", "Regenerate", "Regenerate");
      this.retry = actionButton("retry", "Retry", "Retry");
      this.actions.append(this.copy, this.regenerate, this.retry);
    } else {
      this.edit = actionButton("edit", "Edit", "Edit");
      this.actions.append(this.edit);
    }
    this.footer.append(this.actions, this.meta);
    this.element.append(header, this.parts, this.error, this.footer);
    this.partViews = new Map(); // part key → {view, part, rev}
    this.message = null;
    this.createdAt = null;
    this.editor = null;
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
    this.drawBranch(message.branch);
    if (message.role === "assistant") {
      const status = message.turn_status;
      setHidden(this.regenerate, status !== "completed" && status !== "stopped");
      setHidden(this.retry, status !== "failed" && status !== "interrupted");
      this.drawCost(message.usage);
    }
  }

  drawBranch(branch) {
    const count = branch ? branch.count : 1;
    setHidden(this.controls, count < 2);
    if (count < 2) return;
    setText(this.position, `${branch.index + 1}/${count}`);
    this.position.setAttribute("aria-label", `Version ${branch.index + 1} of ${count}`);
    this.previous.disabled = branch.index === 0;
    this.next.disabled = branch.index === count - 1;
  }

  drawCost(usage) {
    if (!usage) {
      setText(this.meta, "");
      return;
    }
    setText(this.meta, `${dollars(usage.cost_usd)} · ${tokens(usage.input_tokens + usage.cache_read_input_tokens
      + usage.cache_creation_input_tokens)} in, ${tokens(usage.output_tokens)} out`);
    this.meta.title = `${usage.input_tokens} input tokens, ${usage.cache_read_input_tokens} read from the cache, `
      + `${usage.cache_creation_input_tokens} written to it, ${usage.output_tokens} output tokens`;
  }

  /** Edit the message in place: a box with its text, Save (sends the new version) and Cancel. */
  startEditing(onSave) {
    if (this.editor) return;
    const text = this.message.parts.filter((part) => part.type === "text").map((part) => part.text).join("\n");
    const form = element("form", "message-editor");
    const label = element("label", "visually-hidden", "Edited text");
    const box = element("textarea");
    box.id = `edit-${this.message.id}`;
    label.htmlFor = box.id;
    box.value = text;
    box.rows = Math.min(12, text.split("\n").length + 1);
    const save = element("button", "", "Save");
    save.type = "submit";
    const cancel = element("button", "secondary", "Cancel");
    cancel.type = "button";
    const buttons = element("div", "editor-buttons");
    buttons.append(cancel, save);
    form.append(label, box, buttons);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!box.value.trim()) return;
      onSave(box.value);
      this.stopEditing();
    });
    cancel.addEventListener("click", () => this.stopEditing());
    this.editor = form;
    this.parts.hidden = true;
    this.element.insertBefore(form, this.error);
    box.focus();
  }

  stopEditing() {
    if (!this.editor) return;
    this.editor.remove();
    this.editor = null;
    this.parts.hidden = false;
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

function actionButton(action, text, label) {
  const button = element("button", `message-action ${action}`, text);
  button.type = "button";
  button.dataset.action = action;
  button.setAttribute("aria-label", label);
  button.hidden = action === "regenerate" || action === "retry";
  return button;
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
