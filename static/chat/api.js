// The JSON API from the chat page (PROTOCOL §4, §8), with the page's session cookie and CSRF token. Every call
// resolves to {ok, status, body}; an error body is {code, message}.

const CSRF = document.querySelector('meta[name="csrf-token"]')?.content || "";

export async function request(method, url, body) {
  const init = { method, headers: { Accept: "application/json", "X-CSRFToken": CSRF }, credentials: "same-origin" };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    return { ok: false, status: 0, body: { code: "offline", message: "The server could not be reached." } };
  }
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = { code: "error", message: text.slice(0, 200) };
  }
  return { ok: response.ok, status: response.status, body: parsed };
}
