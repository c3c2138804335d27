"""Property-based: whatever a results file holds, it either validates and renders, or is named and skipped."""

import json

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from multibackend.report.comparison import write_report  # noqa: E402
from multibackend.results import REQUIRED_FIELDS  # noqa: E402

from .helpers import minimal_payload  # noqa: E402

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
FIELDS = sorted(
    {
        *REQUIRED_FIELDS,
        "trainer",
        "misclassified",
        "final_weights",
        "solve_rate",
        "metric",
        "host",
        "steps_per_second",
        "peak_rss_bytes",
    }
)


@pytest.mark.filterwarnings("ignore:No artists with labels")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(FIELDS), value=JSON_VALUES, example=st.sampled_from(["xor", "mnist"]))
def test_any_field_value_either_renders_or_is_named_and_skipped(tmp_path_factory, field, value, example):
    folder = tmp_path_factory.mktemp("results")
    good = minimal_payload(
        example=example, test={"loss": 0.1, "accuracy" if example == "mnist" else "binary_accuracy": 1.0}
    )
    (folder / f"{example}-jax-cpu.json").write_text(json.dumps(good))
    broken = {**good, "backend": "torch", field: value}
    (folder / f"{example}-torch-cpu.json").write_text(json.dumps(broken))
    warnings = []
    report = tmp_path_factory.mktemp("report")
    write_report([folder], report, warn=warnings.append)
    if warnings:  # skipped: named, with the field, in one line
        (line,) = warnings
        named = ("field", "name says", "example", "is not a JSON number")  # NaN and Infinity are not strict JSON
        assert f"{example}-torch-cpu.json" in line and any(reason in line for reason in named)
    else:  # accepted: it is in the runs table beside the good file
        assert f"| {example} | torch |" in (report / "comparison.md").read_text()
