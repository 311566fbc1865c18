"""Benchmark: the chat's Markdown renderer (static/chat/markdown.js) on 100 kB pathological answers.

Serves static/ from a thread of this process and opens it in Debian's Chromium (Playwright). Each case is
rendered into a message element and laid out, best of three; the baseline is 100 kB of plain prose (words and
spaces), rendered the same way in the same page. Prints each case's milliseconds, its ratio against the baseline,
and whether it meets the target: under 100 ms, the conversations issue's figure for a 100 kB pathological input.

    .venv/bin/python -m bench.markdown_render
"""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

STATIC = Path(__file__).resolve().parent.parent / "static"
CHROMIUM = Path("/usr/bin/chromium")
TARGET_MS = 100
SIZE = 100_000

CASES = {
    "plain prose (baseline)": ("lorem ipsum dolor sit amet " * (SIZE // 27 + 1))[:SIZE],
    "25,000 [a](": "[a](" * 25_000,
    "nested quotes": ">" * SIZE,
    "nested lists": "\n".join("  " * n + "- item" for n in range(1000))[:SIZE],
    "runs of *_": "*_" * (SIZE // 2),
    "runs of **_": "**_" * (SIZE // 3),
    "unclosed brackets": "[" * SIZE,
}

RENDER = """async (cases) => {
    const { renderMarkdown } = await import("/chat/markdown.js");
    const drawOnce = (text) => {
        const holder = document.createElement("div");
        document.body.append(holder);
        const start = performance.now();
        holder.append(renderMarkdown(text));
        holder.getBoundingClientRect();
        const took = performance.now() - start;
        holder.remove();
        return took;
    };
    return Object.fromEntries(Object.entries(cases).map(
        ([name, text]) => [name, Math.min(drawOnce(text), drawOnce(text), drawOnce(text))]));
}"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002 (the standard library's name)
        pass


def main() -> None:
    from playwright.sync_api import sync_playwright

    handler = functools.partial(QuietHandler, directory=str(STATIC))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.server_port}/chat/README.md")
            timings = page.evaluate(RENDER, CASES)
            browser.close()
    finally:
        server.shutdown()
    baseline = timings["plain prose (baseline)"]
    print(f"{'case':<26}{'ms':>8}{'× prose':>10}")
    for name, took in timings.items():
        print(f"{name:<26}{took:>8.1f}{took / baseline:>10.2f}")
    worst = max(took for name, took in timings.items())
    print(f"slowest {worst:.1f} ms: {'meets' if worst < TARGET_MS else 'MISSES'} the target (< {TARGET_MS} ms)")


if __name__ == "__main__":
    main()
