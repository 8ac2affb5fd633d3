"""An offline stand-in for RLLA-4k in the upstream schema and prompt layout (generated, seeded)."""

from __future__ import annotations

import json
import random
from pathlib import Path

RAW_NAME = "rlla_rl.json"

SYSTEM_TEMPLATE = (
    "You are a helpful multi-turn dialogue assistant capable of leveraging tool calls to solve user tasks "
    "and provide structured chat responses.\n\n**Available Tools**\nIn your response, you can use the "
    "following tools:\n{tools}\n\n**Steps for Each Turn**\n1. **Think:** Recall relevant context and analyze "
    "the current user goal.\n2. **Decide on Tool Usage:** If a tool is needed, specify the tool and its "
    "parameters.\n3. **Respond Appropriately:** If a response is needed, generate one while maintaining "
    "consistency across user queries.\n\n**Output Format**\n```plaintext\n<think> Your thoughts and "
    "reasoning </think>\n<tool_call>\n"
    '{{"name": "Tool name", "parameters": {{"Parameter name": "Parameter content", "... ...": "... ..."}}}}\n'
    '{{"name": "... ...", "parameters": {{"... ...": "... ...", "... ...": "... ..."}}}}\n'
    "...\n</tool_call>\n<response> AI's final response </response>\n```\n\n**Important Notes**\n1. You must "
    "always include the `<think>` field to outline your reasoning. Provide at least one of `<tool_call>` or "
    "`<response>`. Decide whether to use `<tool_call>` (possibly multiple times), `<response>`, or both.\n"
    "2. You can invoke multiple tool calls simultaneously in the `<tool_call>` fields. Each tool call should "
    'be a JSON object with a "name" field and an "parameters" field containing a dictionary of parameters. '
    'If no parameters are needed, leave the "parameters" field an empty dictionary.\n3. Refer to the '
    "previous dialogue records in the history, including the user's queries, previous `<tool_call>`, "
    "`<response>`, and any tool feedback noted as `<obs>` (if exists)."
)
# One fake tool a line: name | description | user query | param:type:value/value ...
FIXTURE_TOOLS = """\
get_weather | Current weather of a city. | Weather in {city} in {unit}? | city:str:Paris/Oslo unit:str:celsius/kelvin
convert_currency | Convert money. | Convert {amount} {src} to {dst}. | amount:float:10.0/2.5 src:str:USD/EUR dst:str:JPY
get_stock_price | Latest price of a stock. | How much is {symbol} trading at? | symbol:str:AAPL/NVDA/TSLA
search_books | Search a book catalogue. | Find {limit} books about {query}. | query:str:dune/python limit:int:3/5/10
get_time | Current time in a time zone. | What time is it in {timezone}? | timezone:str:JST/UTC/CET
list_holidays | Public holidays of a country. | Holidays of {country} in {year}? | country:str:US/FR year:int:2023/2024
"""
REPLIES = ["Hello! How can I help you today?", "You're welcome, glad I could help.", "Sure, what else?"]
# The same output contract in a few words: a CPU run of the tiny model pays for every prompt token.
SHORT_TEMPLATE = (
    "Tools:\n{tools}\nAnswer as <think> ... </think> then <tool_call> (one JSON object "
    '{{"name": ..., "parameters": {{...}}}} a line) </tool_call> or <response> ... </response>.'
)
THINK_CALL = (
    "<think> I should use the appropriate tool with proper parameters to respond to the user's need. </think>"
)
THINK_REPLY = "<think> I should respond to the user directly; no tool applies. </think>"


def fixture_tools() -> dict[str, tuple[str, str, dict[str, tuple[str, list]]]]:
    """name -> (description, query template, {param: (type, candidate values)})."""
    cast = {"str": str, "int": int, "float": float}
    tools = {}
    for line in FIXTURE_TOOLS.strip().splitlines():
        name, desc, query, params = (part.strip() for part in line.split(" | "))
        specs = [spec.split(":", 2) for spec in params.split()]
        tools[name] = (desc, query, {p: (t, [cast[t](v) for v in vs.split("/")]) for p, t, vs in specs})
    return tools


def fixture_records(n: int, seed: int = 0, short_prompt: bool = False) -> list[dict]:
    """`n` records {instruction, input, output} in RLLA-4k's schema and prompt layout: a tool list in
    the system text, one user turn, and mostly tool-call targets (1-3 calls), some reply-only ones."""
    rng, tools = random.Random(seed), fixture_tools()
    records = []
    for _ in range(n):
        listed = rng.sample(sorted(tools), rng.randint(1, 3))
        lines = []
        for i, name in enumerate(listed):
            spec = {
                p: {"description": f"The {p}.", "type": t, "default": ""}
                for p, (t, _) in tools[name][2].items()
            }
            lines.append(
                f"{i + 1}. Name: {name}\nDescription: {tools[name][0]}\nParameters: {json.dumps(spec)}"
            )
        if rng.random() < 0.15:
            user, output = (
                "Thanks, that is all.",
                f"{THINK_REPLY}\n<response>{rng.choice(REPLIES)}</response>",
            )
        else:
            calls, asks = [], []
            for name in rng.sample(listed, rng.randint(1, len(listed))):
                args = {p: rng.choice(values) for p, (_, values) in tools[name][2].items()}
                calls.append(json.dumps({"name": name, "parameters": args}))
                asks.append(tools[name][1].format(**args))
            user, output = (
                " ".join(asks),
                f"{THINK_CALL}\n<tool_call>\n" + "\n".join(calls) + "\n</tool_call>",
            )
        history = f"**Dialogue Records History**\n<user> {user} </user>"
        records.append(
            {
                "instruction": (SHORT_TEMPLATE if short_prompt else SYSTEM_TEMPLATE).format(
                    tools="\n".join(lines)
                ),
                "input": history,
                "output": output,
            }
        )
    return records


def write_rlla_fixture(path: str | Path, n: int = 200, seed: int = 0) -> Path:
    """Write `n` generated records as upstream's raw JSON; `path` is the .json file or its directory."""
    path = Path(path)
    file = path if path.suffix == ".json" else path / RAW_NAME
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(fixture_records(n, seed), indent=2), encoding="utf-8")
    return file
