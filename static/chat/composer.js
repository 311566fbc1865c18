// The message box and its buttons: Enter sends, Shift+Enter breaks the line; Send waits for an open socket and
// the end of the running turn; Stop stops it. Attach (or files dropped anywhere on the chat) uploads files into the
// chat's workspace; they show as chips above the box, and the next message names them so the copilot reads them.
// `extras` (beside Send) is where composer controls go (queued messages).
import { element, setHidden, setText } from "./dom.js";

export class Composer {
  constructor({ form, onSend, onStop, onFiles, dropZone }) {
    this.form = form;
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
      if (!text.trim() || this.running) return; // sent as soon as the socket is open, if it is not yet
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

  draw({ running, stopping, notice, connected }) {
    this.running = running;
    this.sendButton.disabled = running || !connected;
    this.input.disabled = running;
    this.stopButton.hidden = !running;
    this.stopButton.disabled = stopping;
    setText(this.stopButton, stopping ? "Stopping…" : "Stop");
    setText(this.status, notice || (running ? "The copilot is answering…" : ""));
  }
}
