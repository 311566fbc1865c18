"""`text {template, values}`: fills `{name}` placeholders of a template with values."""

import string

from agents.blocks import Block, BlockError, register


async def run(block_input: dict) -> dict:
    template = block_input.get("template")
    values = block_input.get("values", {})
    if not isinstance(template, str):
        raise BlockError("text: template must be a string")
    if not isinstance(values, dict):
        raise BlockError("text: values must be an object")
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise BlockError(f"text: bad template: {exc}") from None
    missing = sorted(name for name in fields if name not in values)
    if missing:
        raise BlockError(f"text: no value for {', '.join(missing)}")
    if any(not name.isidentifier() for name in fields):
        raise BlockError("text: placeholders are plain names, like {name}")
    return {"text": template.format_map({key: str(value) for key, value in values.items()})}


register(Block(
    name="text",
    description="Fill the {placeholders} of a template with values.",
    input_schema={"type": "object", "properties": {"template": {"type": "string"}, "values": {"type": "object"}},
                  "required": ["template"]},
    output_schema={"type": "object", "properties": {"text": {"type": "string"}}},
    run=run,
))
