"""`text {template, values}`: fills `{name}` placeholders of a template with values.

A placeholder is a plain name and nothing else: no `!r` conversion, no `:>20` format spec (a width builds as
much text as it names), no `.attribute`, `[index]` or nested field. `{{` and `}}` are literal braces. The
text's length is known before it is built, and one longer than BLOCK_MAX_OUTPUT_BYTES is refused unbuilt.
"""

import string

from agents.blocks import Block, BlockError, max_output_bytes, register

ALLOWED = "a placeholder is a plain name, like {name}, with no !conversion and no :format spec ({{ and }} are braces)"


def _placeholder(name: str, conversion: str | None, spec: str) -> str:
    return "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"


def parse_template(template: str) -> list[tuple[str, str | None]]:
    """The template as (literal text, placeholder name or None) pieces; raises BlockError for what is not allowed."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise BlockError(f"text: bad template: {exc}; {ALLOWED}") from None
    pieces = []
    for literal, name, spec, conversion in parsed:
        if name is not None:
            shown = _placeholder(name, conversion, spec or "")
            if conversion:
                raise BlockError(f"text: the placeholder {shown!r} has a conversion; {ALLOWED}")
            if spec:
                raise BlockError(f"text: the placeholder {shown!r} has a format spec; {ALLOWED}")
            if not name.isidentifier():
                raise BlockError(f"text: the placeholder {shown!r} is not a plain name; {ALLOWED}")
        pieces.append((literal, name))
    return pieces


async def run(block_input: dict) -> dict:
    template = block_input.get("template")
    values = block_input.get("values", {})
    if not isinstance(template, str):
        raise BlockError("text: template must be a string")
    if not isinstance(values, dict):
        raise BlockError("text: values must be an object")
    pieces = parse_template(template)
    names = {name for _, name in pieces if name is not None}
    missing = sorted(name for name in names if name not in values)
    if missing:
        raise BlockError(f"text: no value for {', '.join(missing)}")
    shown = {name: str(values[name]) for name in names}
    length = sum(len(literal) + (len(shown[name]) if name is not None else 0) for literal, name in pieces)
    if length > max_output_bytes():
        raise BlockError(f"text: the text would be {length:,} characters, more than BLOCK_MAX_OUTPUT_BYTES "
                         f"({max_output_bytes():,}) allows; use fewer or shorter placeholders")
    return {"text": "".join(literal + (shown[name] if name is not None else "") for literal, name in pieces)}


register(Block(
    name="text",
    description="Fill the {placeholders} of a template with values: each placeholder is a plain name, like {name} "
                "(no format specs or conversions); {{ and }} are literal braces.",
    input_schema={"type": "object", "properties": {
        "template": {"type": "string", "description": "text with {placeholders}"},
        "values": {"type": "object", "description": "a value for each placeholder, by name"}},
                  "required": ["template"]},
    output_schema={"type": "object", "properties": {"text": {"type": "string"}}},
    run=run,
))
