// The message box and its buttons: Enter sends, Shift+Enter breaks the line; Send waits for an open socket; while a
// turn runs it is Queue, and the message waits for its turn (PROTOCOL §7) in the list of queued messages above the
// box, each with Remove, until its turn starts. Stop stops the running turn. Attach (or files dropped anywhere on
// the chat) uploads files into the chat's workspace; they show as chips above the box, and the next message names
// them so the copilot reads them. `extras` (beside Send) is where more composer controls go.
import { element, setHidden, setText } from "./dom.js";

export class Composer {
  constructor({ form, onSend, onStop, onFiles, onRemoveQueued, dropZone }) {
    this.form = form;
    this.queue = form.querySelector("#queued");
    this.queueItems = new Map(); // turn_id → its <li>
    this.queue.addEventListener("click", (event) => {
      const remove = event.target.closest("button.queued-remove");
      if (!remove || remove.disabled) return;
      remove.disabled = true;
      onRemoveQueued(remove.closest("li").dataset.turnId);
    });
    this.input = form.querySelector("#message-input");
    this.sendButton = form.querySelector("#send");
    this.stopButton = form.querySelector("#stop");
    this.status = form.querySelector("#composer-status");
    this.chips = form.querySelector("#attachments");
    this.attached = [];
    const picker = form.querySelector("#attach-input");
    form.querySelector("#attach").addEventListener("click", () => picker.click());
    picker.addEventListener("change", () => {
      onFiles([...picker.files]);
      picker.value = "";
    });
    dropZone.addEventListener("dragover", (event) => {
      if (![...event.dataTransfer.types].includes("Files")) return;
      event.preventDefault();
      form.classList.add("dropping");
    });
    dropZone.addEventListener("dragleave", (event) => {
      if (!dropZone.contains(event.relatedTarget)) form.classList.remove("dropping");
    });
    dropZone.addEventListener("drop", (event) => {
      if (!event.dataTransfer.files.length) return;
      event.preventDefault();
      form.classList.remove("dropping");
      onFiles([...event.dataTransfer.files]);
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = this.input.value;
      if (!text.trim()) return; // sent as soon as the socket is open, if it is not yet
      this.input.value = "";
      onSend(this.withAttachments(text));
      this.clearAttachments();
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    this.stopButton.addEventListener("click", onStop);
    this.running = false;
  }

  /** A file uploaded into the workspace, to name in the next message. */
  attach(path) {
    if (this.attached.includes(path)) return;
    this.attached.push(path);
    const chip = element("li", "attachment", path);
    chip.dataset.path = path;
    this.chips.append(chip);
    setHidden(this.chips, false);
  }

  clearAttachments() {
    this.attached = [];
    this.chips.replaceChildren();
    setHidden(this.chips, true);
  }

  withAttachments(text) {
    if (!this.attached.length) return text;
    return `${text}\n\nAttached: ${this.attached.map((path) => `\`${path}\``).join(", ")}`;
  }

  /** Give a message back to edit or send again (it was refused). */
  restore(text) {
    this.input.value = this.input.value || text;
  }

  draw({ running, stopping, notice, connected, queued, queueing }) {
    this.running = running;
    this.sendButton.disabled = !connected;
    setText(this.sendButton, queueing ? "Queue" : "Send");
    this.sendButton.title = queueing ? "Sends this message when the copilot has finished answering" : "";
    this.stopButton.hidden = !running;
    this.stopButton.disabled = stopping;
    setText(this.stopButton, stopping ? "Stopping…" : "Stop");
    setText(this.status, notice || (running ? "The copilot is answering… (Enter queues your next message)" : ""));
    this.drawQueue(queued);
  }

  /** The messages waiting for their turn, oldest first, kept for their turn_id. */
  drawQueue(queued) {
    const wanted = new Set(queued.map((entry) => entry.turn_id));
    for (const [turnId, item] of this.queueItems) {
      if (!wanted.has(turnId)) {
        item.remove();
        this.queueItems.delete(turnId);
      }
    }
    let previous = null;
    for (const entry of queued) {
      let item = this.queueItems.get(entry.turn_id);
      if (!item) item = this.queuedItem(entry);
      const expected = previous ? previous.nextSibling : this.queue.firstChild;
      if (item !== expected) this.queue.insertBefore(item, expected);
      previous = item;
    }
    setHidden(this.queue, !queued.length);
  }

  /** A Remove that did not go through: its button works again. */
  removeFailed(turnId) {
    const button = this.queueItems.get(turnId)?.querySelector("button.queued-remove");
    if (button) button.disabled = false;
  }

  queuedItem(entry) {
    const item = element("li", "queued-message");
    item.dataset.turnId = entry.turn_id;
    const badge = element("span", "queued-badge", "queued");
    const text = element("span", "queued-text", entry.text);
    text.title = entry.text;
    const remove = element("button", "queued-remove link", "Remove");
    remove.type = "button";
    remove.setAttribute("aria-label", `Remove “${entry.text.split("\n")[0].slice(0, 40)}” from the queue`);
    item.append(badge, text, remove);
    this.queueItems.set(entry.turn_id, item);
    return item;
  }
}
