"""A chat as a file (PROTOCOL §8 Export): its active branch, with every tool call's input and output, as Markdown
for people or as JSON (the snapshot's messages) for programs."""

from __future__ import annotations

import json
import re
from typing import Any

from django.utils import timezone

from chat.errors import BadFormat

FORMATS = {"markdown": ("text/markdown; charset=utf-8", "md"), "json": ("application/json", "json")}


def check_format(value: object) -> str:
    if value not in FORMATS:
        raise BadFormat(f"format: one of {', '.join(FORMATS)}")
    return str(value)


def export_name(snapshot: dict[str, Any], export_format: str) -> str:
    stem = re.sub(r"[^\w-]+", "-", snapshot["title"]).strip("-").lower()[:60] or "chat"
    return f"{stem}.{FORMATS[export_format][1]}"


def exported(snapshot: dict[str, Any], export_format: str) -> str:
    if export_format == "json":
        return json.dumps(as_json(snapshot), indent=2, ensure_ascii=False)
    return as_markdown(snapshot)


def as_json(snapshot: dict[str, Any]) -> dict[str, Any]:
    keep = ("id", "title", "model", "created_at", "updated_at", "usage", "messages")
    return {"exported_at": timezone.now().isoformat(), **{key: snapshot[key] for key in keep}}


def as_markdown(snapshot: dict[str, Any]) -> str:
    lines = [f"# {snapshot['title']}", "",
             f"Exported {timezone.now():%Y-%m-%d %H:%M} UTC · model {snapshot['model']} · "
             f"cost ${snapshot['usage']['cost_usd']:.4f}", ""]
    for message in snapshot["messages"]:
        who = "You" if message["role"] == "user" else "Copilot"
        lines += [f"## {who} · {message['created_at'][:16].replace('T', ' ')}", ""]
        for part in message["parts"]:
            if part["type"] == "text":
                lines += [part["text"], ""]
            elif part["type"] == "reasoning":
                lines += ["> " + line for line in part["text"].splitlines()] + [""]
            elif part["type"] == "dynamic-tool":
                lines += tool_lines(part)
        if message.get("error"):
            lines += [f"**Error:** {message['error']}", ""]
    return "\n".join(lines).rstrip() + "\n"


def tool_lines(part: dict[str, Any]) -> list[str]:
    lines = [f"### Tool call `{part['toolName']}`", "", "Input:", "", *fenced(part.get("input"))]
    if part.get("state") == "output-available":
        lines += ["Output:", "", *fenced(part.get("output"))]
    else:
        lines += [f"Error: {part.get('errorText') or 'no output'}", ""]
    return lines


def fenced(value: Any) -> list[str]:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    fence = "```"
    while fence in text:
        fence += "`"
    return [fence + ("" if isinstance(value, str) else "json"), text, fence, ""]
