// Copying to the clipboard: the Clipboard API where the page may use it, else a selected hidden textarea and
// the older copy command, else a prompt holding the text selected for Ctrl+C. A copy button says how it went.

const LABEL_MS = 2000;

export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // refused (no permission, page not focused): try the older way
    }
  }
  return copyWithSelection(text);
}

function copyWithSelection(text) {
  const buffer = document.createElement("textarea");
  buffer.className = "copy-buffer";
  buffer.value = text;
  buffer.setAttribute("readonly", "");
  document.body.append(buffer);
  buffer.select();
  let copied = false;
  try {
    copied = document.execCommand("copy");
  } catch {
    copied = false;
  }
  buffer.remove();
  return copied;
}

/** Copy `text` for a copy button (its label is in data-label), and say on the button whether it worked. */
export async function copyFor(button, text) {
  const copied = await copyText(text);
  if (!copied) window.prompt("This browser refused to copy. Press Ctrl+C (⌘C on a Mac), then Enter:", text);
  const label = button.dataset.idleLabel || button.dataset.label;
  button.dataset.idleLabel = label;
  button.dataset.label = copied ? "Copied" : label;
  button.classList.toggle("copied", copied);
  clearTimeout(button.copyTimer);
  button.copyTimer = setTimeout(() => {
    button.dataset.label = label;
    button.classList.remove("copied");
  }, LABEL_MS);
}
