// The chat's workspace files (PROTOCOL §8 Files): the Files panel (list, download, delete), uploads from the attach
// button or files dropped on the page, and links to files the copilot wrote. Uploads go to the workspace's top
// folder under their own names; the composer mentions them in the next message so the copilot knows to read them.
import { request } from "./api.js";
import { element, setHidden, setText } from "./dom.js";
import { bytes } from "./format.js";

let base = "";
let sessionId = "";

/** Where the session's files live in the API; called once by the page. */
export function useSession(id) {
  sessionId = id;
  base = `/api/sessions/${id}/files/`;
}

/** The download URL of a workspace path. */
export function fileUrl(path) {
  return base + path.split("/").map(encodeURIComponent).join("/");
}

/** A file tool's `file_path` as a path in the workspace: relative already, or absolute inside `<session id>/`. */
export function workspacePath(filePath) {
  if (typeof filePath !== "string" || !filePath) return null;
  if (!filePath.startsWith("/")) return filePath.replace(/^\.\//, "");
  const marker = `/${sessionId}/`;
  const at = filePath.indexOf(marker);
  return at === -1 ? null : filePath.slice(at + marker.length);
}

export async function upload(file) {
  const form = new FormData();
  form.append("file", file, file.name);
  return request("POST", base, form);
}

export class FilesPanel {
  constructor({ panel, toggle, onNotice }) {
    this.panel = panel;
    this.toggle = toggle;
    this.list = panel.querySelector(".file-list");
    this.empty = panel.querySelector(".files-empty");
    this.onNotice = onNotice;
    toggle.addEventListener("click", () => this.setOpen(this.panel.hidden));
    panel.querySelector(".files-close").addEventListener("click", () => this.setOpen(false));
    this.list.addEventListener("click", (event) => {
      const button = event.target.closest("button.file-delete");
      if (button) this.remove(button.dataset.path);
    });
  }

  get open() {
    return !this.panel.hidden;
  }

  setOpen(open) {
    setHidden(this.panel, !open);
    this.toggle.setAttribute("aria-expanded", String(open));
    if (open) this.refresh();
  }

  /** Read the list again, when the panel shows (after a turn that may have written files, an upload). */
  async refresh() {
    if (!this.open) return;
    const { ok, body } = await request("GET", base);
    if (!ok) return;
    this.list.replaceChildren(...body.map((file) => this.row(file)));
    setHidden(this.empty, body.length > 0);
    setText(this.toggle, body.length ? `Files (${body.length})` : "Files");
  }

  row(file) {
    const item = element("li", "file");
    const link = element("a", "file-name", file.path);
    link.href = fileUrl(file.path);
    link.download = file.path.split("/").pop();
    const size = element("span", "muted", bytes(file.size));
    const remove = element("button", "file-delete link", "Delete");
    remove.type = "button";
    remove.dataset.path = file.path;
    remove.setAttribute("aria-label", `Delete ${file.path}`);
    item.append(link, size, remove);
    return item;
  }

  async remove(path) {
    if (!window.confirm(`Delete ${path} from this chat's files?`)) return;
    const { ok, body } = await request("DELETE", fileUrl(path));
    if (!ok) this.onNotice(body?.message || "The file could not be deleted.");
    this.refresh();
  }
}
