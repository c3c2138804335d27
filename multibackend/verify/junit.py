"""The verify matrix as JUnit XML, as pytest writes it and CI services read it: a test case per file and backend."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ElementTree

FAILURES = ("failed", "output differs", "timed out", "wrong backend", "wrong device")
SKIPPED = ("not installed", "pinned")
# Terminal colour codes, then every character XML 1.0 forbids (a BEL, a form feed): an error message may hold any.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value) -> str:
    """Text that well-formed XML can hold: colour codes and the characters XML forbids are taken out."""
    return _NOT_XML.sub("", _ANSI.sub("", str(value)))


def document(payload: dict) -> ElementTree.ElementTree:
    """Builds the JUnit tree of a verify payload: one `testcase` per (file, backend), in one `testsuite`.

    A failed, timed-out, differing or wrong-backend cell is a `failure` whose text lists every differing cell; a
    backend that is not installed, or a file pinned to another backend, is `skipped`. Each case's properties name
    the backend that ran; a smoke run's suite says so in its name and properties.
    """
    cells = payload["cells"]
    smoke = bool(payload.get("smoke"))
    counts = {
        "tests": len(cells),
        "failures": sum(cell["status"] in FAILURES for cell in cells),
        "errors": 0,
        "skipped": sum(cell["status"] in SKIPPED for cell in cells),
        "time": sum(cell["seconds"] for cell in cells),
    }
    suites = ElementTree.Element("testsuites")
    name = "multibackend verify" + (" (smoke)" if smoke else "")
    suite = ElementTree.SubElement(
        suites,
        "testsuite",
        name=name,
        timestamp=payload["created"],
        **{key: f"{value:.3f}" if key == "time" else str(value) for key, value in counts.items()},
    )
    properties = ElementTree.SubElement(suite, "properties")
    ElementTree.SubElement(properties, "property", name="smoke", value=str(smoke).lower())
    regressions: dict[tuple, list[dict]] = {}
    for found in payload.get("regressions") or []:
        regressions.setdefault((found["file"], found["backend"]), []).append(found)
    for cell in cells:
        case = ElementTree.SubElement(
            suite, "testcase", classname=xml_text(cell["file"]), name=cell["backend"], time=f"{cell['seconds']:.3f}"
        )
        if cell["status"] not in SKIPPED:
            case_properties = ElementTree.SubElement(case, "properties")
            used = xml_text(cell.get("backend_used") or "")
            ElementTree.SubElement(case_properties, "property", name="backend_used", value=used)
            if cell.get("unchanged_since"):  # passed earlier with the same inputs (--state): not run again
                ElementTree.SubElement(
                    case_properties, "property", name="unchanged_since", value=cell["unchanged_since"]
                )
            for key, value in measured_properties(cell, regressions.get((cell["file"], cell["backend"]), [])):
                ElementTree.SubElement(case_properties, "property", name=key, value=xml_text(value))
        if cell["status"] in FAILURES:
            failure = ElementTree.SubElement(case, "failure", type=cell["status"], message=xml_text(cell["error"]))
            failure.text = xml_text("\n".join(cell.get("differences") or [cell["error"]]))
        elif cell["status"] in SKIPPED:
            ElementTree.SubElement(case, "skipped", message=xml_text(f"{cell['status']}: {cell['error']}"))
        if cell.get("last_line"):
            ElementTree.SubElement(case, "system-out").text = xml_text(cell["last_line"])
    ElementTree.indent(suites)
    return ElementTree.ElementTree(suites)


def measured_properties(cell: dict, regressions: list[dict]) -> list[tuple[str, str]]:
    """A run's measurements as JUnit properties, for CI services that chart them: the device, peak memory, and per
    measured call its steady step and first step times (`fit_1_steady_step_s`, ...); then each regression."""
    found = []
    if cell.get("device_used"):
        found.append(("device_used", cell["device_used"]))
    if cell.get("peak_memory_mb") is not None:
        found.append(("peak_memory_mb", f"{cell['peak_memory_mb']:g}"))
    counts: dict[str, int] = {}
    for call in cell.get("calls") or []:
        counts[call["method"]] = counts.get(call["method"], 0) + 1
        prefix = f"{call['method']}_{counts[call['method']]}"
        for key in ("steady_step_s", "first_step_s"):
            if call.get(key) is not None:
                found.append((f"{prefix}_{key}", f"{call[key]:.6g}"))
    found += [(f"regression_{number}", item["detail"]) for number, item in enumerate(regressions, 1)]
    return found


def to_bytes(payload: dict) -> bytes:
    """The JUnit XML of a verify payload, as the file's bytes."""
    stream = io.BytesIO()
    document(payload).write(stream, encoding="utf-8", xml_declaration=True)
    return stream.getvalue()
