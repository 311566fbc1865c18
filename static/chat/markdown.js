// Markdown of the model's answers: markdown-it (CommonMark, tables, strikethrough, bare links; raw HTML off)
// renders HTML, DOMPurify keeps only an allow-list of it, highlight.js colours fenced code.
// MarkdownView re-renders a growing text block by block, so a streamed delta replaces only the blocks it changed.
import markdownit from "../vendor/markdown-it/markdown-it.esm.min.mjs";
import createDOMPurify from "../vendor/dompurify/purify.es.mjs";
import hljs from "../vendor/highlight.js/highlight.min.js";

const SAFE_LINK = /^(https?:|mailto:)/i;
const HEADING_SHIFT = 2; // "# x" is an h3: the page's own h1 is the chat's title
const AUTO_HIGHLIGHT_MAX_CHARS = 4000; // guessing the language tries every grammar: only for short code
const HIGHLIGHT_MAX_CHARS = 100_000;
const HIGHLIGHT_CACHE_SIZE = 200;
// A paragraph with more emphasis markers than this is shown as written: "*_*_…" would make tens of thousands of
// <em> elements (CommonMark-correct, and seconds of work), and no real answer has that many in one paragraph.
const MAX_EMPHASIS_MARKERS = 2000;
const QUICK_DRAW_MS = 8;
const BUSY_FACTOR = 4;

const md = markdownit({ html: false, linkify: true, typographer: false, maxNesting: 20, highlight });
md.disable("image"); // no remote images: `![alt](url)` stays a plain link
md.validateLink = (url) => SAFE_LINK.test(url.trim());
md.core.ruler.before("inline", "copilot_overloaded_inline", (state) => {
  for (const token of state.tokens) {
    if (token.type === "inline" && emphasisMarkers(token.content) > MAX_EMPHASIS_MARKERS) token.type = "text";
  }
});
md.core.ruler.push("copilot_blocks", (state) => {
  for (const token of state.tokens) {
    if (token.type === "heading_open" || token.type === "heading_close") {
      token.tag = `h${Math.min(6, Number(token.tag.slice(1)) + HEADING_SHIFT)}`;
    } else if ((token.type === "th_open" || token.type === "td_open") && token.attrGet("style")) {
      // A column's alignment as a class: the page's CSP admits no style attributes.
      const align = /text-align:(left|center|right)/.exec(token.attrGet("style"));
      token.attrs = token.attrs.filter(([name]) => name !== "style");
      if (align) token.attrJoin("class", `align-${align[1]}`);
    }
  }
});

function emphasisMarkers(text) {
  let count = 0;
  for (let index = 0; index < text.length && count <= MAX_EMPHASIS_MARKERS; index += 1) {
    const code = text.charCodeAt(index);
    if (code === 42 || code === 95) count += 1; // * and _
  }
  return count;
}

const purifier = createDOMPurify(window);
const PURIFY_CONFIG = {
  ALLOWED_TAGS: ["div", "p", "br", "hr", "h3", "h4", "h5", "h6", "strong", "em", "s", "del", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td", "span"],
  ALLOWED_ATTR: ["href", "title", "class", "start"],
  ALLOWED_URI_REGEXP: SAFE_LINK,
  ALLOW_DATA_ATTR: false,
  RETURN_DOM_FRAGMENT: true,
};
const ALLOWED_CLASS = /^(md-block|hljs(-[\w-]+)?|language-[\w+#.-]+|align-(left|center|right))$/;
purifier.addHook("uponSanitizeAttribute", (node, data) => {
  if (data.attrName !== "class") return;
  data.attrValue = data.attrValue.split(/\s+/).filter((name) => ALLOWED_CLASS.test(name)).join(" ");
  if (!data.attrValue) data.keepAttr = false;
});
purifier.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName !== "A") return;
  if (SAFE_LINK.test(node.getAttribute("href") || "")) {
    node.setAttribute("rel", "noopener noreferrer nofollow");
    node.setAttribute("target", "_blank");
  } else {
    node.removeAttribute("href");
  }
});

const highlighted = new Map(); // `${language}\n${code}` → HTML: a streamed answer re-renders its code blocks often

function highlight(code, language) {
  if (code.length > HIGHLIGHT_MAX_CHARS) return "";
  const name = language.trim().split(/\s+/)[0].toLowerCase();
  const known = name && hljs.getLanguage(name);
  if (!known && (name || code.length > AUTO_HIGHLIGHT_MAX_CHARS)) return "";
  const key = `${name}\n${code}`;
  let html = highlighted.get(key);
  if (html === undefined) {
    html = known ? hljs.highlight(code, { language: name, ignoreIllegals: true }).value : hljs.highlightAuto(code).value;
    if (highlighted.size >= HIGHLIGHT_CACHE_SIZE) highlighted.delete(highlighted.keys().next().value);
    highlighted.set(key, html);
  }
  return html;
}

/** The HTML of each top-level block of `text` (a paragraph, a list, a table, a code block…). */
export function renderBlocks(text) {
  const env = {};
  const tokens = md.parse(text, env);
  const blocks = [];
  let start = 0;
  tokens.forEach((token, index) => {
    if (token.level === 0 && token.nesting <= 0) {
      blocks.push(md.renderer.render(tokens.slice(start, index + 1), md.options, env));
      start = index + 1;
    }
  });
  return blocks;
}

/** Each block's HTML, sanitised in one pass, as one element per block with its code blocks and tables dressed. */
function blockElements(htmls) {
  // Every tag in the HTML is markdown-it's (raw HTML is off), so this wrapper cannot come from the model.
  const fragment = purifier.sanitize(htmls.map((html) => `<div class="md-block">${html}</div>`).join(""), PURIFY_CONFIG);
  for (const table of fragment.querySelectorAll("table")) wrap(table, "table-wrap");
  for (const pre of fragment.querySelectorAll("pre")) dressCode(pre);
  return [...fragment.children].map((holder) => {
    const nodes = [...holder.childNodes].filter((node) => node.nodeType !== Node.TEXT_NODE || node.data.trim());
    return nodes.length === 1 && nodes[0].nodeType === Node.ELEMENT_NODE ? nodes[0] : holder;
  });
}

function wrap(node, className) {
  const wrapper = document.createElement("div");
  wrapper.className = className;
  node.replaceWith(wrapper);
  wrapper.append(node);
  return wrapper;
}

function dressCode(pre) {
  const code = pre.querySelector("code");
  if (code) code.classList.add("hljs");
  const block = wrap(pre, "code-block");
  const bar = document.createElement("div");
  bar.className = "code-bar";
  const language = /(?:^|\s)language-(\S+)/.exec(code?.className || "");
  const label = document.createElement("span");
  label.className = "code-language";
  label.dataset.label = language ? language[1] : "";  // shown by CSS: not part of the answer's text
  const copy = document.createElement("button");
  copy.type = "button";
  copy.className = "copy copy-code";
  copy.dataset.label = "Copy";
  copy.setAttribute("aria-label", "Copy code");
  bar.append(label, copy);
  block.prepend(bar);
}

/** The code a code block's copy button copies: the text as written, without the closing newline. */
export function codeOf(button) {
  const code = button.closest(".code-block")?.querySelector("pre code");
  return code ? code.textContent.replace(/\n$/, "") : "";
}

/** A DocumentFragment of `text` rendered as Markdown. */
export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  fragment.append(...blockElements(renderBlocks(text)));
  return fragment;
}

/**
 * Shows Markdown text in `element`. `update` with a longer (or any) text replaces only the blocks that differ.
 * A text that takes long to draw (a huge answer streaming) is drawn at most every BUSY_FACTOR times as long as the
 * last drawing took, so the page stays responsive; the newest text is always drawn in the end.
 */
export class MarkdownView {
  constructor(element) {
    this.element = element;
    this.blocks = []; // [{html, node}] in order: the element's children
    this.text = null;
    this.pending = null;
    this.timer = null;
    this.readyAt = 0;
  }

  update(text) {
    this.pending = text;
    if (this.timer !== null) return;
    const wait = this.readyAt - performance.now();
    if (wait > 0) this.timer = setTimeout(() => this.drawPending(), wait);
    else this.drawPending();
  }

  drawPending() {
    this.timer = null;
    const text = this.pending;
    if (text === this.text) return;
    const start = performance.now();
    this.draw(text);
    const took = performance.now() - start;
    this.readyAt = took > QUICK_DRAW_MS ? performance.now() + took * BUSY_FACTOR : 0;
  }

  draw(text) {
    this.text = text;
    const htmls = renderBlocks(text);
    const changed = htmls.map((html, index) => index).filter((index) => this.blocks[index]?.html !== htmls[index]);
    const nodes = blockElements(changed.map((index) => htmls[index]));
    changed.forEach((index, n) => {
      const block = { html: htmls[index], node: nodes[n] };
      const old = this.blocks[index];
      if (old) old.node.replaceWith(block.node);
      else this.element.append(block.node);
      this.blocks[index] = block;
    });
    for (const extra of this.blocks.splice(htmls.length)) extra.node.remove();
  }
}
