"""`verify.md` and `verify.html`: the verdicts, the file x backend matrix, the result lines and the warnings."""

from __future__ import annotations

import re
from dataclasses import asdict

from multibackend.runtime import templating
from multibackend.verify import comparison, outputs
from multibackend.verify.model import OTHER_SHARD, Run

MISSING_DOWNLOAD = re.compile(r"dataset missing: (\S+) \(not in the cache")


def _cell_text(cell: dict) -> str:
    """A row of the matrix as text: status, seconds, the backend that ran, the cells that ran, gated, skipped."""
    status = cell["status"]
    if status == OTHER_SHARD:
        return "in another shard"
    if status == "not installed":
        return f"not installed ({cell['error']})"
    shown = status if status in ("passed", "pinned") else status.upper()
    if cell.get("unchanged_since"):
        text = f"{shown} (unchanged since {cell['unchanged_since'][:16].replace('T', ' ')}: not run)"
    else:
        text = f"{shown} ({cell['seconds']:.1f} s)"
    if status not in ("passed",):
        text += f": {cell['error']}"
    return text + _ran_text(cell)


def _ran_text(cell: dict) -> str:
    parts = []
    if cell.get("backend_used") == "" and cell["status"] == "passed":
        parts.append("keras not imported")
    if cell.get("code_cells_gated"):
        parts.append(f"{len(cell['code_cells_gated'])} gated")
    if cell.get("code_cells_skipped"):
        parts.append(f"{len(cell['code_cells_skipped'])} skipped")
    ran = cell.get("code_cells_ran", 0)
    counts = f"{ran} cell{'s' if ran != 1 else ''} ran" + (f", {', '.join(parts)}" if parts else "")
    return f" · {counts}" if ran or parts else ""


def _context(payload: dict) -> dict:
    defaults = {**asdict(Run("", "", "", 0.0)), "backend_used": None}  # fields a file from an older version lacks
    cells = {(cell["file"], cell["backend"]): {**defaults, **cell} for cell in payload["cells"]}
    for file in payload["files"]:  # a shard's matrix: the runs of the other shards
        for backend in payload["backends"]:
            cells.setdefault((file, backend), {**defaults, "file": file, "backend": backend, "status": OTHER_SHARD})
    numbers = {key: ", ".join(outputs.numbers_in(cell.get("last_line", ""))) for key, cell in cells.items()}
    return {
        **payload,
        "cells": cells,
        "not_run": _not_run(cells.values()),
        "numbers": numbers,
        "cell_text": _cell_text,
        "ran_text": _ran_text,
        "compare_outputs": payload.get("compare_outputs", "off"),
        "verdicts": payload.get("verdicts", {}),
        "verdict_details": payload.get("verdict_details", {}),
        "smoke": payload.get("smoke", False),
        "smoke_sample": payload.get("smoke_sample"),
        "shard": payload.get("shard"),
        "merged_from": payload.get("merged_from"),
        **comparison.context(payload),
    }


def _not_run(cells) -> list[dict]:
    """The cells that runs did not run (an install, NBVAL_SKIP), each once with the backends whose runs skipped it."""
    found: dict[tuple, list[str]] = {}
    for cell in cells:
        for item in cell.get("code_cells_skipped") or []:
            found.setdefault((cell["file"], item["cell"], item.get("line"), item["reason"]), []).append(cell["backend"])
    return [
        {"file": file, "cell": number, "line": line, "reason": reason, "backends": backends}
        for (file, number, line, reason), backends in found.items()
    ]


def markdown_matrix(payload: dict) -> str:
    """The verdicts, then the file x backend matrix as a Markdown table, then the warnings."""
    return templating.render("multibackend.verify", "verify.md.j2", _context(payload)).rstrip("\n")


def html_matrix(payload: dict) -> str:
    """The verdicts and the matrix as a self-contained HTML page: status and seconds per cell, the result lines,
    the differences."""
    context = _context(payload)
    context["ratios_plot"] = comparison.plot_data_uri(context["comparisons"])
    return templating.render("multibackend.verify", "verify.html.j2", context)


def datasets_asked(payload: dict) -> list[str]:
    """Every file the runs asked Keras to download, once, with what became of it: in the cache, downloaded, or
    missing (an offline run that the cache could not answer); for a maintainer who fills the cache once."""
    found: dict[str, str] = {}
    for cell in payload["cells"]:
        for download in cell.get("downloads", []):
            state = "missing" if download.get("missing") else "downloaded" if download["downloaded"] else "in the cache"
            if found.get(download["origin"]) not in ("downloaded", "missing"):
                found[download["origin"]] = state
        missing = MISSING_DOWNLOAD.search(cell.get("error", ""))
        if missing:
            found[missing.group(1)] = "missing"
    return [f"{origin}: {state}" for origin, state in sorted(found.items())]
