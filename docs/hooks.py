"""MkDocs hook: the results-file pages' field tables, generated from the JSON Schemas in `multibackend/schemas/`."""

from __future__ import annotations

import json
import re
from pathlib import Path

SCHEMAS = Path(__file__).resolve().parents[1] / "multibackend" / "schemas"
PLACEHOLDER = re.compile(r"<!-- schema: (\w+) -->")


def _type(spec: dict) -> str:
    if "enum" in spec:
        return "one of " + ", ".join(f"`{value}`" for value in spec["enum"])
    kind = spec.get("type", "any")
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    if kind == "array" and isinstance(spec.get("items"), dict):
        return f"array of {_type(spec['items'])}"
    if spec.get("format"):
        kind += f" ({spec['format']})"
    return kind


def _rows(properties: dict, required: set, prefix: str = "") -> list[str]:
    rows = []
    for name, spec in properties.items():
        field = f"{prefix}{name}"
        note = spec.get("description", "")
        rows.append(f"| `{field}` | {'yes' if name in required else ''} | {_type(spec)} | {note} |")
        items = spec.get("items") if spec.get("type") == "array" else None
        if isinstance(items, dict) and items.get("properties"):
            rows += _rows(items["properties"], set(items.get("required", [])), f"{field}[].")
        elif spec.get("properties"):
            rows += _rows(spec["properties"], set(spec.get("required", [])), f"{field}.")
    return rows


def schema_table(kind: str) -> str:
    """A Markdown table of every field of one schema, nested fields included."""
    schema = json.loads((SCHEMAS / f"{kind}.schema.json").read_text())
    header = ["| field | required | type | notes |", "| --- | --- | --- | --- |"]
    return "\n".join(header + _rows(schema["properties"], set(schema.get("required", []))))


def on_page_markdown(markdown: str, **kwargs) -> str:
    return PLACEHOLDER.sub(lambda match: schema_table(match.group(1)), markdown)
