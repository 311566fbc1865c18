// The message box and its buttons: Enter sends, Shift+Enter breaks the line; Send waits for an open socket and
// the end of the running turn; Stop stops it. `extras` (below the box) is where composer controls go
// (queued messages, a model picker).
import { setText } from "./dom.js";

export class Composer {
  constructor({ form, onSend, onStop }) {
    this.form = form;
    this.input = form.querySelector("#message-input");
    this.sendButton = form.querySelector("#send");
    this.stopButton = form.querySelector("#stop");
    this.status = form.querySelector("#composer-status");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = this.input.value;
      if (!text.trim() || this.running) return; // sent as soon as the socket is open, if it is not yet
      this.input.value = "";
      onSend(text);
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
