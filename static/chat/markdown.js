// Safe Markdown: builds DOM nodes with textContent only, so no HTML from the model ever reaches the page.
// Supports paragraphs, headings, fenced code, lists, block quotes, inline code, bold, italic and links.

const SAFE_LINK = /^(https?:|mailto:)/i;

export function renderMarkdown(text) {
  const root = document.createDocumentFragment();
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  let index = 0;
  while (index < lines.length) {
    const line = lines[index];
    if (/^```/.test(line)) {
      const language = line.slice(3).trim();
      const code = [];
      index += 1;
      while (index < lines.length && !/^```/.test(lines[index])) code.push(lines[index++]);
      index += 1; // the closing fence (or the end of an unfinished block while streaming)
      const pre = element("pre");
      const codeNode = element("code", code.join("\n"));
      if (language) codeNode.dataset.language = language;
      pre.append(codeNode);
      root.append(pre);
    } else if (/^#{1,6}\s/.test(line)) {
      const level = line.match(/^#+/)[0].length;
      root.append(inline(element(`h${Math.min(level + 2, 6)}`), line.replace(/^#+\s+/, "")));
      index += 1;
    } else if (/^\s*([-*+]|\d+[.)])\s+/.test(line)) {
      const ordered = /^\s*\d/.test(line);
      const list = element(ordered ? "ol" : "ul");
      while (index < lines.length && /^\s*([-*+]|\d+[.)])\s+/.test(lines[index])) {
        list.append(inline(element("li"), lines[index].replace(/^\s*([-*+]|\d+[.)])\s+/, "")));
        index += 1;
      }
      root.append(list);
    } else if (/^>\s?/.test(line)) {
      const quote = [];
      while (index < lines.length && /^>\s?/.test(lines[index])) quote.push(lines[index++].replace(/^>\s?/, ""));
      root.append(inline(element("blockquote"), quote.join(" ")));
    } else if (line.trim() === "") {
      index += 1;
    } else {
      const paragraph = [];
      while (index < lines.length && lines[index].trim() !== "" && !/^(```|#{1,6}\s|>|\s*([-*+]|\d+[.)])\s)/.test(lines[index])) {
        paragraph.push(lines[index++]);
      }
      const node = element("p");
      paragraph.forEach((part, n) => {
        if (n) node.append(element("br"));
        inline(node, part);
      });
      root.append(node);
    }
  }
  return root;
}

const INLINE = /(`[^`]+`)|(\*\*[^*]+\*\*)|(\*[^*\s][^*]*\*|_[^_\s][^_]*_)|(\[[^\]]+\]\([^)\s]+\))/;

function inline(parent, text) {
  let rest = text;
  while (rest) {
    const match = rest.match(INLINE);
    if (!match) {
      parent.append(rest);
      break;
    }
    if (match.index) parent.append(rest.slice(0, match.index));
    const token = match[0];
    if (match[1]) parent.append(element("code", token.slice(1, -1)));
    else if (match[2]) parent.append(inline(element("strong"), token.slice(2, -2)));
    else if (match[3]) parent.append(inline(element("em"), token.slice(1, -1)));
    else {
      const [, label, href] = token.match(/^\[([^\]]+)\]\(([^)\s]+)\)$/);
      if (SAFE_LINK.test(href)) {
        const link = element("a", label);
        link.href = href;
        link.rel = "noopener noreferrer nofollow";
        link.target = "_blank";
        parent.append(link);
      } else {
        parent.append(label); // javascript:, data: and the like: the label alone, no link
      }
    }
    rest = rest.slice(match.index + token.length);
  }
  return parent;
}

function element(name, text) {
  const node = document.createElement(name);
  if (text !== undefined) node.textContent = text;
  return node;
}
