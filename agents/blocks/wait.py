"""`wait {seconds}`: sleeps for real, then returns the seconds asked for."""

import asyncio

from agents.blocks import Block, BlockError, register

MAX_SECONDS = 600


async def run(block_input: dict) -> dict:
    seconds = block_input.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= MAX_SECONDS:
        raise BlockError(f"wait: seconds must be a number from 0 to {MAX_SECONDS}")
    await asyncio.sleep(seconds)
    return {"seconds": seconds}


register(Block(
    name="wait",
    description="Wait for a number of seconds, then return them.",
    input_schema={"type": "object", "properties": {"seconds": {"type": "number", "minimum": 0, "maximum": MAX_SECONDS,
                                                              "description": "how long to wait"}},
                  "required": ["seconds"]},
    output_schema={"type": "object", "properties": {"seconds": {"type": "number"}}},
    run=run,
))
