// The visual builder of an agent's graph (templates/agents/builder.html), on the vendored Drawflow.
//
// The graph (PROTOCOL §6) is the one state: `nodes` by id and `links`. Drawflow draws it and reports what the
// pointer did (a connection drawn or removed, a node deleted); the palette, the node list, the inspector and the
// links form do the same by keyboard. Every change asks POST /api/agents/validate/ for the problems (the checks of
// saving), shown in the list and on their nodes and fields. Save makes the agent, or a new version of it.

const VALIDATE_DELAY_MS = 250;
const COLUMN_WIDTH = 230; // a node, and room for its ports' names

const $ = (selector) => document.querySelector(selector);
const readJSON = (id) => JSON.parse(document.getElementById(id).textContent);

function element(tag, attributes = {}, ...children) {
  const made = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") made.textContent = value;
    else if (name.startsWith("on")) made.addEventListener(name.slice(2), value);
    else made.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) if (child) made.append(child);
  return made;
}

const blocks = new Map(readJSON("builder-blocks").map((block) => [block.name, block]));
const meta = readJSON("builder-agent");
const csrfToken = document.querySelector("#builder [name=csrfmiddlewaretoken]").value;

const graph = { nodes: new Map(), links: [] };
const drawn = { byNode: new Map(), byDrawflow: new Map() }; // node id <-> Drawflow's id
let problems = [];
let selected = null;
let editor = null;
let applying = false; // while the builder itself changes Drawflow, its events are not user actions
let validateTimer = null;
let validation = 0;

const inputNames = (block) => Object.keys(block.input_schema.properties || {});
const outputNames = (block) => Object.keys(block.output_schema.properties || {});
const schemaType = (schema) => (typeof schema.type === "string" ? schema.type : "any");

function asGraph() {
  return {
    nodes: [...graph.nodes.values()].map((node) => ({ id: node.id, block: node.block, input: node.input })),
    links: graph.links.map((link) => ({ ...link })),
  };
}

function newNodeId(blockName) {
  let number = 1;
  while (graph.nodes.has(`${blockName}_${number}`)) number += 1;
  return `${blockName}_${number}`;
}

// --- Drawflow ---

function drawNode(node, x, y) {
  const block = blocks.get(node.block);
  applying = true;
  const id = editor.addNode(node.block, inputNames(block).length, Math.max(outputNames(block).length, 0),
    x, y, `block-${node.block}`, {}, "");
  applying = false;
  drawn.byNode.set(node.id, id);
  drawn.byDrawflow.set(String(id), node.id);
  const box = document.getElementById(`node-${id}`);
  box.querySelector(".drawflow_content_node").append(
    element("div", { class: "node-title", text: node.id }),
    element("div", { class: "node-block", text: node.block }),
  );
  inputNames(block).forEach((name, index) => {
    const port = box.querySelector(`.inputs .input_${index + 1}`);
    port.dataset.name = name;
    port.title = `input ${name}`;
  });
  outputNames(block).forEach((name, index) => {
    const port = box.querySelector(`.outputs .output_${index + 1}`);
    port.dataset.name = name;
    port.title = `output ${name}`;
  });
}

function portOf(node, link, side) {
  const block = blocks.get(node.block);
  const names = side === "output" ? outputNames(block) : inputNames(block);
  const name = side === "output" ? link.output : link.input.split(".")[0];
  const index = names.indexOf(name);
  return index < 0 ? null : `${side}_${index + 1}`;
}

function drawLink(link) {
  const source = graph.nodes.get(link.from);
  const target = graph.nodes.get(link.to);
  if (!source || !target) return;
  const output = portOf(source, link, "output");
  const input = portOf(target, link, "input");
  if (!output || !input) return;
  applying = true;
  editor.addConnection(drawn.byNode.get(link.from), drawn.byNode.get(link.to), output, input);
  applying = false;
}

function undrawLink(link) {
  const source = graph.nodes.get(link.from);
  const target = graph.nodes.get(link.to);
  if (!source || !target) return;
  const output = portOf(source, link, "output");
  const input = portOf(target, link, "input");
  const stillDrawn = graph.links.some((other) => other !== link && other.from === link.from && other.to === link.to
    && portOf(source, other, "output") === output && portOf(target, other, "input") === input);
  if (!output || !input || stillDrawn) return;
  applying = true;
  editor.removeSingleConnection(drawn.byNode.get(link.from), drawn.byNode.get(link.to), output, input);
  applying = false;
}

function onConnectionCreated({ output_id, input_id, output_class, input_class }) {
  if (applying) return;
  const from = drawn.byDrawflow.get(String(output_id));
  const to = drawn.byDrawflow.get(String(input_id));
  const output = outputNames(blocks.get(graph.nodes.get(from).block))[Number(output_class.split("_")[1]) - 1];
  const targetBlock = blocks.get(graph.nodes.get(to).block);
  const inputName = inputNames(targetBlock)[Number(input_class.split("_")[1]) - 1];
  // Into an object input (a text block's values) a link sets one key: named after the source, changed below.
  const objectInput = schemaType(targetBlock.input_schema.properties[inputName]) === "object";
  graph.links.push({ from, output, to, input: objectInput ? `${inputName}.${from}` : inputName });
  changed();
}

function onConnectionRemoved({ output_id, input_id, output_class, input_class }) {
  if (applying) return;
  const from = drawn.byDrawflow.get(String(output_id));
  const to = drawn.byDrawflow.get(String(input_id));
  graph.links = graph.links.filter((link) => !(link.from === from && link.to === to
    && portOf(graph.nodes.get(from), link, "output") === output_class
    && portOf(graph.nodes.get(to), link, "input") === input_class));
  changed();
}

function onNodeRemoved(drawflowId) {
  if (applying) return;
  const nodeId = drawn.byDrawflow.get(String(drawflowId));
  forgetNode(nodeId);
  changed();
}

function forgetNode(nodeId) {
  graph.nodes.delete(nodeId);
  graph.links = graph.links.filter((link) => link.from !== nodeId && link.to !== nodeId);
  drawn.byDrawflow.delete(String(drawn.byNode.get(nodeId)));
  drawn.byNode.delete(nodeId);
  if (selected === nodeId) selected = null;
}

// --- what the builder changes ---

function addNode(blockName, position) {
  const node = { id: newNodeId(blockName), block: blockName, input: {} };
  graph.nodes.set(node.id, node);
  const count = graph.nodes.size - 1;
  const { x, y } = position || { x: 70 + count * 210, y: 20 + (count % 2) * 110 };
  drawNode(node, x, y);
  select(node.id);
  changed();
  return node;
}

function removeNode(nodeId) {
  const drawflowId = drawn.byNode.get(nodeId);
  applying = true;
  editor.removeNodeId(`node-${drawflowId}`);
  applying = false;
  forgetNode(nodeId);
  changed();
}

function addLink(link) {
  graph.links.push(link);
  drawLink(link);
  changed();
}

function removeLink(index) {
  const [link] = graph.links.splice(index, 1);
  undrawLink(link);
  changed();
}

function select(nodeId) {
  selected = nodeId;
  renderInspector();
  renderNodeList();
}

function changed() {
  renderNodeList();
  renderLinks();
  renderLinkForm();
  if (selected && !graph.nodes.has(selected)) selected = null;
  renderInspector();
  clearTimeout(validateTimer);
  validateTimer = setTimeout(validate, VALIDATE_DELAY_MS);
}

// --- the panels ---

function renderPalette() {
  const list = $("#palette");
  for (const block of blocks.values()) {
    list.append(element("li", {}, element("button", {
      type: "button", class: "secondary", "data-block": block.name, "aria-label": `Add a ${block.name} block`,
      onclick: () => addNode(block.name),
    }, element("span", { class: "block-name", text: block.name }),
    element("span", { class: "block-description", text: block.description }))));
  }
}

function renderNodeList() {
  const list = $("#node-list");
  list.replaceChildren(...[...graph.nodes.values()].map((node) => element("li", {}, element("button", {
    type: "button", class: "secondary", "aria-pressed": String(node.id === selected),
    onclick: () => select(node.id), text: `${node.id} (${node.block})`,
  }))));
}

function problemsOf(nodeId) {
  return problems.filter((problem) => problem.node === nodeId);
}

function fieldControl(node, name, schema) {
  const kind = schemaType(schema);
  const id = `field-${node.id}-${name}`;
  const value = node.input[name];
  let control;
  if (kind === "number" || kind === "integer") {
    control = element("input", { id, type: "number", step: kind === "integer" ? "1" : "any",
      value: value === undefined ? "" : String(value) });
  } else if (kind === "string") {
    control = element("textarea", { id, rows: "2" });
    control.value = value === undefined ? "" : String(value);
  } else {
    control = element("textarea", { id, rows: "3", "aria-describedby": `${id}-hint` });
    control.value = value === undefined ? "" : JSON.stringify(value, null, 1);
  }
  const local = element("div", { class: "field-problem", role: "alert" });
  control.addEventListener("input", () => {
    local.textContent = "";
    const raw = control.value;
    if (raw.trim() === "") delete node.input[name];
    else if (kind === "number" || kind === "integer") node.input[name] = Number(raw);
    else if (kind === "string") node.input[name] = raw;
    else {
      try { node.input[name] = JSON.parse(raw); } catch { local.textContent = "not JSON yet"; return; }
    }
    clearTimeout(validateTimer);
    validateTimer = setTimeout(validate, VALIDATE_DELAY_MS);
  });
  const fed = graph.links.filter((link) => link.to === node.id && link.input.split(".")[0] === name);
  const hints = [schema.description, kind !== "string" && kind !== "number" && kind !== "integer" ? `JSON (${kind})` : "",
    fed.length ? `fed by ${fed.map((link) => `${link.from}.${link.output} → ${link.input}`).join(", ")}` : ""];
  const required = (blocks.get(node.block).input_schema.required || []).includes(name);
  const fieldProblems = problemsOf(node.id).filter((problem) => problem.field === `input.${name}`
    || (problem.field || "").startsWith(`input.${name}.`));
  for (const problem of fieldProblems) local.append(element("div", { text: problem.message }));
  return element("label", { for: id },
    element("span", { text: `${name}${required ? " (required)" : ""}` }), control,
    element("span", { class: "hint", id: `${id}-hint`, text: hints.filter(Boolean).join(" · ") }), local);
}

function renderInspector() {
  const inspector = $("#inspector");
  const node = selected && graph.nodes.get(selected);
  if (!node) {
    inspector.replaceChildren(element("p", { class: "muted small", text: "Select a node to set its inputs." }));
    return;
  }
  const block = blocks.get(node.block);
  const focused = document.activeElement && inspector.contains(document.activeElement) ? document.activeElement.id : null;
  const form = element("form", { class: "inspector-form", "aria-label": `Inputs of ${node.id}`,
    onsubmit: (event) => event.preventDefault() });
  form.append(element("p", { class: "small" }, element("strong", { text: node.id }),
    document.createTextNode(` — ${block.name}: ${block.description}`)));
  for (const [name, schema] of Object.entries(block.input_schema.properties || {})) {
    form.append(fieldControl(node, name, schema));
  }
  const other = problemsOf(node.id).filter((problem) => !(problem.field || "").startsWith("input."));
  for (const problem of other) form.append(element("div", { class: "field-problem", text: problem.message }));
  form.append(element("button", { type: "button", class: "danger", onclick: () => removeNode(node.id),
    text: `Remove ${node.id}` }));
  inspector.replaceChildren(form);
  if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
}

function renderLinks() {
  const list = $("#links");
  list.replaceChildren(...graph.links.map((link, index) => element("li", {},
    element("span", { text: `${link.from}.${link.output} → ${link.to}.${link.input}` }),
    element("button", { type: "button", class: "secondary", "aria-label":
      `Remove the link ${link.from}.${link.output} to ${link.to}.${link.input}`, onclick: () => removeLink(index),
      text: "Remove" }))));
  if (!graph.links.length) list.append(element("li", { class: "muted", text: "No links yet." }));
}

function renderLinkForm() {
  const from = $("#link-from");
  const to = $("#link-to");
  const keep = [from.value, to.value];
  from.replaceChildren(...[...graph.nodes.values()].flatMap((node) => outputNames(blocks.get(node.block)).map(
    (output) => element("option", { value: `${node.id}|${output}`, text: `${node.id}.${output}` }))));
  to.replaceChildren(...[...graph.nodes.values()].map((node) => element("option", { value: node.id,
    text: node.id })));
  if ([...from.options].some((option) => option.value === keep[0])) from.value = keep[0];
  if ([...to.options].some((option) => option.value === keep[1])) to.value = keep[1];
  renderInputNames();
}

function renderInputNames() {
  const node = graph.nodes.get($("#link-to").value);
  $("#link-input-names").replaceChildren(...(node ? inputNames(blocks.get(node.block)) : []).map(
    (name) => element("option", { value: name })));
}

function renderProblems() {
  const list = $("#problems");
  if (!graph.nodes.size) {
    list.replaceChildren(element("li", { class: "muted", text: "Add a block to begin." }));
  } else if (!problems.length) {
    list.replaceChildren(element("li", { class: "ok", text: "No problems: the graph checks." }));
  } else {
    list.replaceChildren(...problems.map((problem) => element("li", { class: "problem" },
      document.createTextNode(problem.message + " "),
      problem.node && graph.nodes.has(problem.node) ? element("button", { type: "button", class: "secondary",
        onclick: () => select(problem.node), text: `Show ${problem.node}` }) : null)));
  }
  for (const [nodeId, drawflowId] of drawn.byNode) {
    document.getElementById(`node-${drawflowId}`)?.classList.toggle("has-problem", problemsOf(nodeId).length > 0);
  }
}

async function validate() {
  const asked = ++validation;
  if (!graph.nodes.size) {
    problems = [];
    renderProblems();
    return;
  }
  const response = await fetch("/api/agents/validate/", {
    method: "POST", headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken },
    body: JSON.stringify({ graph: asGraph() }), credentials: "same-origin",
  });
  if (asked !== validation) return; // a newer check is on its way
  const body = await response.json();
  problems = response.ok ? [] : (body.problems || [{ node: null, field: null, message: body.message }]);
  renderProblems();
  renderInspector();
  $("#builder").dataset.checked = String(asked);
}

async function save() {
  const status = $("#save-status");
  const body = { name: $("#agent-name").value, description: $("#agent-description").value, graph: asGraph() };
  status.textContent = "Saving…";
  const response = await fetch(meta.id ? `/api/agents/${meta.id}/` : "/api/agents/", {
    method: meta.id ? "PATCH" : "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken }, body: JSON.stringify(body),
  });
  const answer = await response.json();
  if (!response.ok) {
    status.textContent = `Not saved: ${answer.message}`;
    if (answer.problems) { problems = answer.problems; renderProblems(); renderInspector(); }
    return;
  }
  status.textContent = `Saved version ${answer.version}.`;
  if (!meta.id) window.location.assign(`/agents/${answer.id}/`);
  else meta.version = answer.version;
}

// --- loading ---

function layout(saved) {
  // Columns by depth (how many links lead to a node), rows in order: a readable first placement.
  const depth = new Map(saved.nodes.map((node) => [node.id, 0]));
  for (let round = 0; round < saved.nodes.length; round += 1) {
    for (const link of saved.links) {
      if (depth.has(link.from) && depth.has(link.to)) {
        depth.set(link.to, Math.max(depth.get(link.to), depth.get(link.from) + 1));
      }
    }
  }
  const rows = new Map();
  return new Map(saved.nodes.map((node) => {
    const column = depth.get(node.id);
    const row = rows.get(column) || 0;
    rows.set(column, row + 1);
    return [node.id, { x: 70 + column * COLUMN_WIDTH, y: 20 + row * 110 }];
  }));
}

function fitToCanvas(places) {
  // Zoom out (not below half size) until the widest column fits the canvas.
  const widest = Math.max(...[...places.values()].map((place) => place.x)) + COLUMN_WIDTH;
  const zoom = Math.max(0.5, Math.min(1, $("#canvas").clientWidth / widest));
  if (zoom < 1) {
    editor.zoom = zoom;
    editor.zoom_refresh();
  }
}

function load(saved) {
  const places = layout(saved);
  for (const raw of saved.nodes) {
    if (!blocks.has(raw.block)) continue;
    const node = { id: raw.id, block: raw.block, input: structuredClone(raw.input || {}) };
    graph.nodes.set(node.id, node);
    drawNode(node, places.get(node.id).x, places.get(node.id).y);
  }
  for (const link of saved.links || []) {
    graph.links.push({ ...link });
    drawLink(link);
  }
  if (saved.nodes.length) fitToCanvas(places);
}

function start() {
  editor = new window.Drawflow($("#canvas"));
  editor.reroute = false;
  editor.start();
  editor.on("connectionCreated", onConnectionCreated);
  editor.on("connectionRemoved", onConnectionRemoved);
  editor.on("nodeRemoved", onNodeRemoved);
  editor.on("nodeSelected", (drawflowId) => { if (!applying) select(drawn.byDrawflow.get(String(drawflowId))); });
  // Drawflow deletes the selected node on Delete anywhere on the page: not while typing in the panels.
  for (const panel of [$(".side"), $(".builder-meta")]) {
    panel.addEventListener("keydown", (event) => event.stopPropagation());
  }
  $("#agent-name").value = meta.name || "";
  $("#agent-description").value = meta.description || "";
  renderPalette();
  if (meta.graph) load(meta.graph);
  $("#link-to").addEventListener("change", renderInputNames);
  $("#link-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const [from, output] = $("#link-from").value.split("|");
    addLink({ from, output, to: $("#link-to").value, input: $("#link-input").value.trim() });
    $("#link-input").value = "";
  });
  $("#save-agent").addEventListener("click", save);
  changed();
  $("#builder").setAttribute("aria-busy", "false");
}

if (window.Drawflow) start();
else window.addEventListener("load", start, { once: true });
