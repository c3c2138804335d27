"""The verify matrix as JUnit XML, as pytest writes it and CI services read it: a test case per file and backend."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

FAILURES = {"failed": "failed", "output differs": "output differs", "timed out": "timed out"}


def document(payload: dict) -> ElementTree.ElementTree:
    """Builds the JUnit tree of a verify payload: one `testcase` per (file, backend), in one `testsuite`.

    A failed, timed-out or differing cell is a `failure` whose text lists every differing cell; a backend
    that is not installed is `skipped`.
    """
    cells = payload["cells"]
    counts = {
        "tests": len(cells),
        "failures": sum(cell["status"] in FAILURES for cell in cells),
        "errors": 0,
        "skipped": sum(cell["status"] == "not installed" for cell in cells),
        "time": sum(cell["seconds"] for cell in cells),
    }
    suites = ElementTree.Element("testsuites")
    suite = ElementTree.SubElement(suites, "testsuite", name="multibackend verify", timestamp=payload["created"],
                                   **{key: f"{value:.3f}" if key == "time" else str(value)
                                      for key, value in counts.items()})  # fmt: skip
    for cell in cells:
        case = ElementTree.SubElement(suite, "testcase", classname=cell["file"], name=cell["backend"],
                                      time=f"{cell['seconds']:.3f}")  # fmt: skip
        if cell["status"] in FAILURES:
            failure = ElementTree.SubElement(case, "failure", type=FAILURES[cell["status"]], message=cell["error"])
            failure.text = "\n".join(cell.get("differences") or [cell["error"]])
        elif cell["status"] == "not installed":
            ElementTree.SubElement(case, "skipped", message=f"not installed: {cell['error']}")
        if cell.get("last_line"):
            ElementTree.SubElement(case, "system-out").text = cell["last_line"]
    ElementTree.indent(suites)
    return ElementTree.ElementTree(suites)


def write(payload: dict, path: Path) -> None:
    """Writes the JUnit XML of a verify payload to `path` (its folder is made when missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document(payload).write(path, encoding="utf-8", xml_declaration=True)
