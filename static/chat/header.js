// The chat's header: its title (a written title arrives as `data-title`), what the chat cost, what is left of
// today's budget, the model picker, whose choice the server keeps for the session's next turns, and "Ask before
// tools", the session's `approval_mode` (PROTOCOL §7): on, every tool call waits for Allow or Deny.
import { request } from "./api.js";
import { setHidden, setText } from "./dom.js";
import { dollars } from "./format.js";

export class ChatHeader {
  constructor({ sessionId, title, cost, budget, picker, askToggle, onNotice, onApprovalMode }) {
    Object.assign(this, { sessionId, title, cost, budget, picker, askToggle, onNotice, onApprovalMode });
    this.drawnTitle = null;
    this.model = picker ? picker.value : null;
    this.saving = false; // a change of the approval mode is on its way: the toggle shows it, not the state
    if (picker) picker.addEventListener("change", () => this.chooseModel(picker.value));
    if (askToggle) askToggle.addEventListener("change", () => this.chooseApprovalMode(askToggle.checked ? "ask" : "auto"));
  }

  draw(state) {
    if (state.title !== this.drawnTitle) {
      this.drawnTitle = state.title;
      setText(this.title, state.title);
      document.title = `${state.title} · copilot`;
    }
    if (this.askToggle && !this.saving) this.askToggle.checked = state.approvalMode === "ask";
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

  async chooseApprovalMode(mode) {
    this.saving = true;
    this.askToggle.disabled = true;
    const { ok, body } = await request("PATCH", `/api/sessions/${this.sessionId}/`, { approval_mode: mode });
    this.saving = false;
    this.askToggle.disabled = false;
    if (ok) {
      this.onApprovalMode(body.approval_mode);
      this.onNotice(body.approval_mode === "ask" ? "Tools wait for your approval from your next message."
        : "Tools run without asking from your next message.");
    } else {
      this.askToggle.checked = mode !== "ask";
      this.onNotice(body?.message || "“Ask before tools” could not be changed.");
    }
  }
}
