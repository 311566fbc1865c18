// A tool call's card, kept for its toolCallId: name, a glimpse of its input, its state with the time it has run,
// and, once opened, its input and output or error. `actions` is where per-call controls go (cancel, approval) and
// the download link of a file the copilot wrote; the card shows it when it holds something.
import { element, setHidden, setText } from "./dom.js";
import { fileUrl, workspacePath } from "./files.js";
import { pretty, seconds, summarise } from "./format.js";

const WRITING_TOOLS = new Set(["Write", "Edit", "MultiEdit", "NotebookEdit"]);

const STATE_LABELS = { running: "running", done: "done", error: "error", interrupted: "interrupted" };
const ticking = new Set(); // running cards: their elapsed time is redrawn every second

setInterval(() => {
  for (const card of ticking) card.tick();
}, 1000);

export function toolKind(part) {
  if (part.state === "output-available") return "done";
  if (part.state === "output-error") return /interrupted/i.test(part.errorText || "") ? "interrupted" : "error";
  return "running";
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
    this.element.append(this.details, this.actions);
    this.details.addEventListener("toggle", () => this.details.open && this.drawBody());
    this.kind = null;
    this.update(part);
  }

  update(part) {
    this.part = part;
    setText(this.name, part.toolName.replace(/^mcp__copilot__/, ""));
    setText(this.brief, summarise(part.input));
    const kind = toolKind(part);
    if (kind !== this.kind) {
      this.kind = kind;
      this.element.className = `tool ${kind}`;
      this.element.dataset.state = kind;
      this.label.data = STATE_LABELS[kind];
      if (kind === "running") {
        this.badge.append(" ", this.elapsed);
        this.tick();
        ticking.add(this);
      } else {
        this.badge.replaceChildren(this.label);
        ticking.delete(this);
      }
    }
    this.bodyDrawn = false;
    if (this.details.open) this.drawBody();
    this.drawDownload(part, kind);
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
    setHidden(this.actions, !this.actions.childElementCount);
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
  }

  remove() {
    ticking.delete(this);
    this.element.remove();
  }
}

function labelled(title, text) {
  const block = element("div");
  block.append(element("h4", "", title), element("pre", "", text));
  return block;
}
