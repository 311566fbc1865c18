// Small text formats the chat shows: message times, JSON inputs and outputs of tool calls.

const TIME = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const DAY_AND_TIME = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
const FULL = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });

/** Fills a <time> element: "14:05" today, "1 Dec, 14:05" before, the full date in its title. */
export function showTime(element, iso) {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return;
  element.dateTime = at.toISOString();
  element.textContent = (sameDay(at, new Date()) ? TIME : DAY_AND_TIME).format(at);
  element.title = FULL.format(at);
}

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

/** A one-line glimpse of a tool's input. */
export function summarise(value) {
  if (value === undefined) return "…";
  const text = JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}…` : text;
}

export function pretty(value) {
  return typeof value === "string" ? value : JSON.stringify(value ?? null, null, 2);
}

export function seconds(since) {
  return `${Math.max(0, Math.floor((Date.now() - Date.parse(since)) / 1000))}s`;
}

/** A size in bytes, as people read it. */
export function bytes(count) {
  if (count < 1024) return `${count} B`;
  if (count < 1024 * 1024) return `${(count / 1024).toFixed(1)} kB`;
  return `${(count / 1024 / 1024).toFixed(1)} MB`;
}

/** Dollars: cents and below shown to the tenth of a cent, so small turns do not read $0.00. */
export function dollars(amount) {
  const value = Number(amount) || 0;
  return `$${value < 1 ? value.toFixed(4) : value.toFixed(2)}`;
}

/** A token count: 1234 → "1.2k". */
export function tokens(count) {
  const value = Number(count) || 0;
  return value >= 1000 ? `${(value / 1000).toFixed(1)}k` : String(value);
}
