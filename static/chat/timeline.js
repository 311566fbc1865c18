// The list of messages and reports, kept for their keys: on each frame it adds, moves or removes only the items
// whose place changed and redraws only the items that changed. Items sit in chunks of CHUNK_SIZE, and the browser
// skips the layout and paint of chunks off screen (CSS content-visibility): a streamed turn then costs about the
// same in a long chat as in an empty one. It keeps the newest message in view while the reader is at the bottom of
// the page (whenever the list's size changes), and handles every copy button and message action (edit, regenerate,
// retry, switching versions; a tool card's allow, deny, cancel-tool), which it hands to
// `onAction(action, messageId, view, button)`.
import { copyFor } from "./copy.js";
import { element } from "./dom.js";
import { codeOf } from "./markdown.js";
import { MessageView, ReportView } from "./message-view.js";

const AT_BOTTOM_PX = 80;
const CHUNK_SIZE = 8;

export class Timeline {
  constructor(list, state, { onAction = () => {} } = {}) {
    this.list = list;
    this.state = state;
    this.onAction = onAction;
    this.views = new Map(); // item key → MessageView | ReportView
    this.chunks = []; // the list's children, each holding up to CHUNK_SIZE items' elements
    this.following = true; // a chat opens at its newest message
    list.addEventListener("click", (event) => this.onClick(event));
    window.addEventListener("scroll", () => {
      this.following = this.atBottom();
    }, { passive: true });
    // After layout, before paint: no extra layout, and it also catches messages that grow as they come into view.
    new ResizeObserver(() => this.following && this.scrollToBottom()).observe(list);
  }

  /** Draw what `changes` (ChatState.takeChanges) says changed. */
  draw(changes) {
    const drawn = changes.order ? this.drawOrder() : new Set();
    for (const key of changes.items) {
      if (drawn.has(key)) continue;
      const item = this.state.items.get(key);
      const view = this.views.get(key);
      if (item && view) view.update(item.message);
    }
  }

  /** Bring the DOM in line with the timeline's order; returns the keys of the views it created. */
  drawOrder() {
    const created = new Set();
    const keys = new Set(this.state.order);
    for (const [key, view] of this.views) {
      if (!keys.has(key)) {
        view.remove();
        this.views.delete(key);
      }
    }
    const items = this.state.timeline();
    const chunkCount = Math.ceil(items.length / CHUNK_SIZE);
    while (this.chunks.length < chunkCount) this.chunks.push(this.list.appendChild(element("div", "chunk")));
    for (const extra of this.chunks.splice(chunkCount)) extra.remove();
    this.chunks.forEach((chunk, index) => {
      let previous = null;
      for (const item of items.slice(index * CHUNK_SIZE, (index + 1) * CHUNK_SIZE)) {
        let view = this.views.get(item.key);
        if (!view) {
          view = item.kind === "report" ? new ReportView(item.report) : new MessageView(item.message);
          view.update(item.message);
          this.views.set(item.key, view);
          created.add(item.key);
        }
        // An element that belongs further on is moved there when its chunk's turn comes.
        const expected = previous ? previous.nextSibling : chunk.firstChild;
        if (view.element !== expected) chunk.insertBefore(view.element, expected);
        previous = view.element;
      }
    });
    return created;
  }

  /** Show the newest message, and keep it in view (the user sent one). */
  followBottom() {
    this.following = true;
    this.scrollToBottom();
  }

  atBottom() {
    const page = document.scrollingElement;
    return page.scrollHeight - page.scrollTop - page.clientHeight <= AT_BOTTOM_PX;
  }

  scrollToBottom() {
    const page = document.scrollingElement;
    page.scrollTop = page.scrollHeight;
  }

  /** The view of a message, when it is shown. */
  viewOf(messageId) {
    return this.views.get(messageId);
  }

  onClick(event) {
    const action = event.target.closest("button[data-action]");
    if (action) {
      const messageId = action.closest(".message").dataset.messageId;
      this.onAction(action.dataset.action, messageId, this.views.get(messageId), action);
      return;
    }
    const button = event.target.closest("button.copy");
    if (!button) return;
    if (button.classList.contains("copy-code")) copyFor(button, codeOf(button));
    else if (button.classList.contains("copy-answer")) {
      copyFor(button, this.state.answerText(button.closest(".message").dataset.messageId));
    }
  }
}
