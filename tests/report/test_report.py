"""The comparison report from real (short) results files."""

import json
import re
import shutil
import subprocess
import sys

import pytest

from multibackend.report.collect import collect_results, misclassified_overlap
from multibackend.report.comparison import write_report
from multibackend.report.plots import xor_surface
from multibackend.results import RunResult
from multibackend.runtime.backend import installed_backends

from ..conftest import run_cli
from ..helpers import minimal_payload

PLOTS = {
    "xor-history.png",
    "mnist-history.png",
    "epoch-seconds.png",
    "misclassified-overlap.png",
    "xor-surfaces.png",
    "xor-solve-rate.png",
}


SHORT_RUNS = """
from multibackend.runtime.backend import hide_other_frameworks
from multibackend.training.runner import RunConfig, run

hide_other_frameworks({backend!r})  # as `multibackend run` does

for example, settings in (("xor", {{"seeds": 1}}), ("mnist", {{"epochs": 1}})):
    payload = run(RunConfig(example, backend={backend!r}, device="cpu", out_dir={out!r}, verbose=0, **settings))
    assert payload.passed, payload
"""


def assert_self_contained(page: str):
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", page)
    assert "<link" not in page and "<script" not in page
    assert page.count("data:image/png;base64,") >= len(PLOTS)


def test_report_from_real_results_of_this_backend(real_results, tmp_path, backend):
    warnings = []
    page = write_report([real_results], tmp_path / "report", warn=warnings.append)
    assert warnings == []
    names = {path.name for path in (tmp_path / "report").iterdir()}
    assert PLOTS | {f"misclassified-{backend}-cpu.png", "comparison.md", "comparison.html"} <= names
    markdown = (tmp_path / "report" / "comparison.md").read_text()
    assert f"| xor | {backend} |" in markdown and f"| mnist | {backend} |" in markdown
    assert "Keras `fit` on MNIST (cpu): fastest" in markdown and "Keras `fit` on XOR (cpu): fastest" in markdown
    assert "407,050" in markdown
    assert_self_contained(page.read_text())


def test_bad_files_are_named_and_skipped(real_results, tmp_path, backend):
    folder = tmp_path / "mixed"
    shutil.copytree(real_results, folder)
    (folder / "xor-jax-gpu.json").write_text("{truncated")
    mnist = json.loads((folder / f"mnist-{backend}-cpu.json").read_text())
    (folder / "xor-tensorflow-gpu.json").write_text(json.dumps(mnist))  # an MNIST file under an XOR name
    (folder / "mnist-torch-gpu.json").write_text(json.dumps({**mnist, "schema_version": 99}))
    warnings = []
    write_report([folder], tmp_path / "report", warn=warnings.append)
    assert len(warnings) == 3
    assert any("xor-jax-gpu.json" in w and "unreadable" in w for w in warnings)
    assert any("mnist-torch-gpu.json" in w and "newer" in w for w in warnings)
    assert any("xor-tensorflow-gpu.json" in w and "not 'xor'" in w for w in warnings)
    assert f"| mnist | {backend} |" in (tmp_path / "report" / "comparison.md").read_text()


def gpu_copy(results, folder, backend: str):
    """`folder` holding this backend's MNIST run relabelled as a GPU run of another machine."""
    folder.mkdir()
    payload = json.loads((results / f"mnist-{backend}-cpu.json").read_text())
    payload.update(device="gpu", device_name="NVIDIA H200 (139 GiB)", host="elsewhere")
    (folder / f"mnist-{backend}-gpu.json").write_text(json.dumps(payload))
    return folder


def test_results_from_several_machines_merge(real_results, tmp_path, backend):
    gpu_folder = gpu_copy(real_results, tmp_path / "gpu", backend)
    rows = collect_results([real_results, gpu_folder])
    assert {("mnist", backend, "cpu", "fit"), ("mnist", backend, "gpu", "fit"), ("xor", backend, "cpu", "fit")} == set(
        rows
    )


def test_report_cli_errors_are_one_line(tmp_path):
    result = run_cli("report", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "does not exist" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("report", str(empty), "--out", str(tmp_path / "r"))
    assert result.returncode == 2 and "no usable Keras fit results files" in result.stderr


def test_overlap_counts():
    def mnist_run(backend: str, wrong: list[int]) -> RunResult:
        misclassified = [[index, 0, index] for index in wrong]
        test = {"loss": 0.1, "accuracy": 0.98}
        return RunResult.from_json(
            minimal_payload(example="mnist", backend=backend, misclassified=misclassified, test=test)
        )

    runs = [mnist_run("torch", [1, 2, 3]), mnist_run("jax", [1, 2, 4])]
    overlap = misclassified_overlap(runs)
    assert overlap["shared_by_all"] == 2 and overlap["wrong_anywhere"] == 4
    assert overlap["unique"] == {"torch (cpu)": 1, "jax (cpu)": 1}


def test_xor_surface_reproduces_the_stored_prediction(real_results):
    payload = json.loads((real_results / next(p.name for p in real_results.glob("xor-*.json"))).read_text())
    import numpy as np

    outputs = xor_surface(payload["final_weights"], np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float))
    assert ((outputs > 0.5).astype(int) == [0, 1, 1, 0]).all()


@pytest.mark.cross_backend
def test_report_over_every_installed_backend(tmp_path):
    backends = installed_backends()
    if len(backends) < 2:
        pytest.skip(f"needs two backends, found {backends}")
    results = tmp_path / "results"
    for name in backends:  # one process per backend runs both examples (`run` itself is tested per backend)
        code = SHORT_RUNS.format(backend=name, out=str(results))
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
    result = run_cli("report", str(results), "--out", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr
    markdown = (tmp_path / "report" / "comparison.md").read_text()
    for name in backends:
        assert f"| xor | {name} |" in markdown and f"| mnist | {name} |" in markdown
        assert (tmp_path / "report" / f"misclassified-{name}-cpu.png").is_file()
    assert "shared vs unique" in markdown
    assert_self_contained((tmp_path / "report" / "comparison.html").read_text())


def test_fit_leads_and_loop_and_native_are_shown_beside_it(real_results, tmp_path, backend):
    from multibackend.report.compare import Outcome

    folder = tmp_path / "results"
    shutil.copytree(real_results, folder)
    fit = json.loads((folder / f"mnist-{backend}-cpu.json").read_text())
    assert fit["trainer"] == "fit"
    (folder / f"mnist-{backend}-cpu-loop.json").write_text(
        json.dumps({**fit, "trainer": "loop", "median_epoch_seconds": fit["median_epoch_seconds"] / 2})
    )
    bench_rows = [
        {
            "backend": backend,
            "trainer": trainer,
            "median_epoch_seconds": seconds,
            "paired_time_ratio_to_native": ratio,
            "time_ratio_to_native": ratio,
            "peak_rss_bytes": 2**29,
            "memory_ratio_to_native": 1.0,
        }
        for trainer, seconds, ratio in [("native", 0.5, 1.0), ("keras-fit", 1.0, 2.0), ("keras-loop", 0.55, 1.1)]
    ]
    bench = {"machine": "here", "repeats": 1, "rows": bench_rows, "created": "2026-11-29T00:00:00+00:00"}
    (folder / "bench.json").write_text(json.dumps(bench))
    crashed = Outcome("xor", backend, "cpu", "fit", "crashed", folder / f"xor-{backend}-cpu.json", "exit 1: OSError: x")
    write_report([folder], tmp_path / "report", warn=print, unfinished=[crashed])
    markdown = (tmp_path / "report" / "comparison.md").read_text()
    assert "## Fast path: the framework loop" in markdown and f"| mnist | {backend} |" in markdown
    cost_line = next(line for line in markdown.splitlines() if line.startswith(f"| {backend} | cpu |"))
    assert cost_line.endswith("| 0.500 | 2.00x | 2.00x | 1.10x |")
    assert "What Keras `fit` costs on MNIST" in markdown
    # The crashed XOR run's old file is not shown as if new; the report says it did not finish.
    assert f"| xor | {backend} | {fit['backend_version']}" not in markdown and "Keras `fit` on XOR" not in markdown
    assert f"| xor | {backend} | cpu | fit | CRASHED | exit 1: OSError: x |" in markdown
    assert f"Did not finish: xor on {backend} (fit) CRASHED: exit 1: OSError: x" in markdown


def test_a_file_whose_name_and_contents_disagree_is_skipped(real_results, tmp_path, backend):
    folder = tmp_path / "results"
    shutil.copytree(real_results, folder)
    fit = json.loads((folder / f"mnist-{backend}-cpu.json").read_text())
    (folder / f"mnist-{backend}-cpu-loop.json").write_text(json.dumps(fit))  # a fit run under a loop name
    (folder / f"mnist-{backend}-gpu.json").write_text(json.dumps(fit))  # a CPU run under a GPU name
    warnings = []
    rows = collect_results([folder], warn=warnings.append)
    assert len(warnings) == 2 and all("its name says" in warning for warning in warnings)
    assert set(rows) == {("xor", backend, "cpu", "fit"), ("mnist", backend, "cpu", "fit")}


def test_merged_folders_add_runs_but_not_their_parity_or_bench(real_results, tmp_path, backend):
    other = gpu_copy(real_results, tmp_path / "gpu", backend)
    # A valid parity.json (so only the merge rule, not the schema, can keep it out of the report).
    row = {"check": "x", "pair": "a vs b", "difference": 1.0, "tolerance": 0.0, "passed": False}
    stale = {
        "participants": ["a", "b"],
        "rows": [row],
        "passed": False,
        "failed_checks": ["x"],
        "max_difference": {"x": 1.0},
        "created": "2026-11-28T00:00:00+00:00",
    }
    (other / "parity.json").write_text(json.dumps(stale))
    write_report([real_results], tmp_path / "report", warn=print, merged=[other])
    markdown = (tmp_path / "report" / "comparison.md").read_text()
    assert "gpu: NVIDIA H200 (139 GiB)" in markdown and "Keras `fit` on MNIST (gpu)" in markdown
    assert "Parity (" not in markdown and "FAILED x" not in markdown


def test_a_field_of_the_wrong_type_is_named_and_its_file_skipped_while_the_rest_renders(
    real_results, tmp_path, backend
):
    folder = tmp_path / "results"
    shutil.copytree(real_results, folder)
    payload = json.loads((folder / f"mnist-{backend}-cpu.json").read_text())
    payload["history"]["loss"][0] = "low"
    (folder / f"mnist-{backend}-cpu.json").write_text(json.dumps(payload))
    (folder / "parity.json").write_text(json.dumps({"participants": ["a"], "rows": []}))
    warnings = []
    write_report([folder], tmp_path / "report", warn=warnings.append)
    assert any(
        f"mnist-{backend}-cpu.json" in w and "field history.loss[0]: 'low' is not of type 'number'" in w
        for w in warnings
    ), warnings
    assert any("parity.json" in w and "is a required property" in w for w in warnings), warnings
    markdown = (tmp_path / "report" / "comparison.md").read_text()
    assert f"| xor | {backend} |" in markdown and f"| mnist | {backend} |" not in markdown
