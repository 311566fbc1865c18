// The chat's header: its title (a written title arrives as `data-title`), what the chat cost, what is left of
// today's budget, and the model picker, whose choice the server keeps for the session's next turns.
import { request } from "./api.js";
import { setHidden, setText } from "./dom.js";
import { dollars } from "./format.js";

export class ChatHeader {
  constructor({ sessionId, title, cost, budget, picker, onNotice }) {
    Object.assign(this, { sessionId, title, cost, budget, picker, onNotice });
    this.drawnTitle = null;
    this.model = picker ? picker.value : null;
    if (picker) picker.addEventListener("change", () => this.chooseModel(picker.value));
  }

  draw(state) {
    if (state.title !== this.drawnTitle) {
      this.drawnTitle = state.title;
      setText(this.title, state.title);
      document.title = `${state.title} · copilot`;
    }
    setText(this.cost, `This chat: ${dollars(state.usage.cost_usd)}`);
    const left = state.budgetLeft;
    setHidden(this.budget, left === null);
    if (left !== null) {
      setText(this.budget, `Left today: ${dollars(left)} of ${dollars(state.budget)}`);
      this.budget.classList.toggle("exhausted", left <= 0);
    }
  }

  async chooseModel(model) {
    const label = this.picker.selectedOptions[0]?.textContent || model;
    const { ok, body } = await request("PATCH", `/api/sessions/${this.sessionId}/`, { model });
    if (ok) {
      this.model = model;
      this.onNotice(`${label} answers from your next message.`);
    } else {
      this.picker.value = this.model;
      this.onNotice(body?.message || "The model could not be changed.");
    }
  }
}
