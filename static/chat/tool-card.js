// A tool call's card, kept for its toolCallId: name, a glimpse of its input, its state with the time it has run,
// and, once opened, its input and output or error. `actions` holds the per-call controls (PROTOCOL §7): the
// approval of a call that waits for the user (its input, the time left, Allow and Deny; then who decided), Cancel
// while it runs, and the download link of a file the copilot wrote; the card shows it when it holds something.
// Their buttons carry `data-action` (allow, deny, cancel-tool): the timeline hands their clicks to the page.
import { element, setHidden, setText } from "./dom.js";
import { fileUrl, workspacePath } from "./files.js";
import { pretty, seconds, summarise } from "./format.js";

const WRITING_TOOLS = new Set(["Write", "Edit", "MultiEdit", "NotebookEdit"]);

const STATE_LABELS = { running: "running", waiting: "needs your approval", done: "done", error: "error",
  interrupted: "interrupted", cancelled: "cancelled", denied: "denied" };
const DECIDED_BY = { user: "by you", timeout: "no answer in time", stop: "the turn was stopped",
  cancel: "the call was cancelled" };
const ticking = new Set(); // running and waiting cards: their elapsed time (and time left) is redrawn every second

setInterval(() => {
  for (const card of ticking) card.tick();
}, 1000);

export function toolKind(part) {
  if (part.state === "output-available") return "done";
  if (part.state === "output-error") {
    const errorText = part.errorText || "";
    if (/^cancelled by the user/i.test(errorText)) return "cancelled";
    if (/^denied by the user/i.test(errorText)) return "denied";
    return /interrupted/i.test(errorText) ? "interrupted" : "error";
  }
  if (part.approval && !part.approval.decision) return "waiting";
  return "running";
}

/** A short name of a tool, as cards and the liveness line show it. */
export function toolLabel(part) {
  return part.toolName.replace(/^mcp__copilot__/, "");
}

export class ToolCard {
  constructor(part) {
    this.element = element("div", "tool");
    this.element.dataset.toolCallId = part.toolCallId;
    this.details = element("details", "tool-body");
    const summary = element("summary");
    this.name = element("strong", "tool-name");
    this.brief = element("span", "brief");
    this.badge = element("span", "state");
    this.label = document.createTextNode("");
    this.elapsed = element("span", "elapsed");
    this.badge.append(this.label);
    summary.append(this.name, " ", this.brief, " ", this.badge);
    this.body = element("div", "tool-details");
    this.details.append(summary, this.body);
    this.actions = element("div", "tool-actions");
    this.actions.hidden = true;
    this.approval = null; // the approval box, once the call asked
    this.cancel = controlButton("cancel-tool", "Cancel", "secondary");
    this.cancel.hidden = true;
    this.actions.append(this.cancel);
    this.element.append(this.details, this.actions);
    this.details.addEventListener("toggle", () => this.details.open && this.drawBody());
    this.kind = null;
    this.update(part);
  }

  update(part) {
    this.part = part;
    setText(this.name, toolLabel(part));
    setText(this.brief, summarise(part.input));
    const kind = toolKind(part);
    if (kind !== this.kind) {
      this.kind = kind;
      this.element.className = `tool ${kind}`;
      this.element.dataset.state = kind;
      this.label.data = STATE_LABELS[kind];
      this.badge.replaceChildren(this.label);
      if (kind === "running") this.badge.append(" ", this.elapsed); // a waiting card shows its time left instead
      if (kind === "running" || kind === "waiting") ticking.add(this);
      else ticking.delete(this);
    }
    this.bodyDrawn = false;
    if (this.details.open) this.drawBody();
    this.drawApproval(part);
    this.drawCancel(part, kind);
    this.drawDownload(part, kind);
    if (ticking.has(this)) this.tick();
  }

  /** A call that waits for the user: its input, the time left, Allow and Deny; once decided, who decided. */
  drawApproval(part) {
    const approval = part.approval;
    if (!approval) return;
    if (!this.approval) {
      this.approval = element("div", "approval");
      this.approval.setAttribute("role", "group");
      this.approval.setAttribute("aria-label", `Approval of ${toolLabel(part)}`);
      this.question = element("p", "approval-question");
      this.input = element("pre", "approval-input");
      this.timeLeft = element("span", "approval-time muted");
      this.allow = controlButton("allow", "Allow");
      this.deny = controlButton("deny", "Deny", "danger");
      this.choices = element("div", "approval-choices");
      this.choices.append(this.allow, this.deny, this.timeLeft);
      this.outcome = element("p", "approval-outcome");
      this.approval.append(this.question, this.input, this.choices, this.outcome);
      this.actions.prepend(this.approval);
    }
    this.allow.dataset.approvalId = approval.approval_id;
    this.deny.dataset.approvalId = approval.approval_id;
    const decided = Boolean(approval.decision);
    this.approval.classList.toggle("decided", decided);
    this.approval.dataset.decision = approval.decision || "";
    setHidden(this.question, decided);
    setHidden(this.input, decided);
    setHidden(this.choices, decided);
    setHidden(this.outcome, !decided);
    if (decided) {
      const verb = approval.decision === "allow" ? "Allowed" : "Denied";
      const by = DECIDED_BY[approval.by] || `by ${approval.by}`;
      setText(this.outcome, approval.by === "user" ? `${verb} ${by}` : `${verb}: ${by}`);
      return;
    }
    setText(this.question, `Allow ${toolLabel(part)} to run with this input?`);
    setText(this.input, JSON.stringify(approval.input ?? part.input ?? null, null, 2));
    this.allow.disabled = Boolean(approval.sending);
    this.deny.disabled = Boolean(approval.sending);
  }

  /** Cancel, while the call runs (not once it ended: the server would answer `not_running`). */
  drawCancel(part, kind) {
    setHidden(this.cancel, kind !== "running");
    this.cancel.disabled = Boolean(part.cancelling);
    setText(this.cancel, part.cancelling ? "Cancelling…" : "Cancel");
    this.cancel.setAttribute("aria-label", part.cancelling ? `Cancelling ${toolLabel(part)}` : `Cancel ${toolLabel(part)}`);
  }

  /** A file the copilot wrote: a link to download it, once the call is done. */
  drawDownload(part, kind) {
    const path = kind === "done" && WRITING_TOOLS.has(part.toolName) ? workspacePath(part.input?.file_path) : null;
    if (path && !this.download) {
      this.download = element("a", "download", `Download ${path.split("/").pop()}`);
      this.download.href = fileUrl(path);
      this.download.download = path.split("/").pop();
      this.actions.append(this.download);
    }
    setHidden(this.actions, ![...this.actions.children].some((child) => !child.hidden));
  }

  /** Input and output are drawn when the card is open: a long chat holds many large outputs nobody opened. */
  drawBody() {
    if (this.bodyDrawn) return;
    this.bodyDrawn = true;
    const part = this.part;
    const sections = [labelled("Input", JSON.stringify(part.input ?? null, null, 2))];
    if (part.state === "output-available") sections.push(labelled("Output", pretty(part.output)));
    if (part.state === "output-error") sections.push(labelled("Error", part.errorText));
    this.body.replaceChildren(...sections);
  }

  tick() {
    setText(this.elapsed, seconds(this.part.startedAt || new Date().toISOString()));
    const approval = this.part.approval;
    if (this.approval && approval && !approval.decision) setText(this.timeLeft, timeLeft(approval.expires_at));
  }

  remove() {
    ticking.delete(this);
    this.element.remove();
  }
}

function controlButton(action, text, className = "") {
  const button = element("button", `tool-control ${action} ${className}`.trim(), text);
  button.type = "button";
  button.dataset.action = action;
  return button;
}

/** "9 min left", "40 s left": until a waiting call is denied by timeout. */
function timeLeft(expiresAt) {
  const left = Math.max(0, Math.round((Date.parse(expiresAt) - Date.now()) / 1000));
  if (Number.isNaN(left)) return "";
  return left >= 120 ? `${Math.round(left / 60)} min left` : `${left} s left`;
}

function labelled(title, text) {
  const block = element("div");
  block.append(element("h4", "", title), element("pre", "", text));
  return block;
}
