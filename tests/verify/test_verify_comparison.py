"""The measurements of verified runs: how a call's steps are timed, how backends are compared on a file and a course,
the CSV, and regressions against a baseline. Real runs are in test_verify.py; here the arithmetic, once."""

import csv
import io

import pytest

from multibackend.report.ratios import geometric_means, ranked, speed_text
from multibackend.runtime.errors import UsageError
from multibackend.verify import comparison, regressions
from multibackend.verify.measure import _Epoch, summarize


def call(method="fit", line=5, steps=10, steady=0.1, first=1.0, **logs):
    return {
        "method": method,
        "line": line,
        "batch_size": 32,
        "epochs": 1,
        "steps": steps,
        "seconds": first + steady * (steps - 1),
        "first_step_s": first,
        "steady_step_s": steady,
        "logs": logs or {"loss": 0.5, "accuracy": 0.9},
    }


def cell(backend, calls, status="passed", file="course.py", memory=500.0):
    return {
        "file": file,
        "backend": backend,
        "status": status,
        "seconds": 9.0,
        "error": "",
        "calls": calls,
        "device_used": "cpu: Test CPU (2 cores)",
        "peak_memory_mb": memory,
    }


def test_a_call_s_first_step_is_apart_and_its_steady_step_is_the_median_over_epochs():
    epochs = [_Epoch([0.0, 1.0, 1.1, 1.2], 1.3), _Epoch([2.0, 2.1], 2.2), _Epoch([3.0, 3.5], 4.0)]
    steps, first, steady = summarize(epochs)
    assert steps == 8 and first == pytest.approx(1.0)
    assert steady == pytest.approx(0.1)  # epochs: 0.3 s / 3 steps, 0.2 / 2, 1.0 / 2: the median, not the mean
    assert summarize([_Epoch([5.0], 5.4)]) == (1, pytest.approx(0.4), None)  # one step: no steady time
    assert summarize([_Epoch([], None)]) == (0, None, None)


def test_an_epoch_s_last_step_is_left_out_where_the_steps_before_it_are_known_to_have_computed():
    # A last, partial batch is traced again (JAX, TensorFlow): 0.8 s here, where a step takes 0.1 s.
    epochs = [_Epoch([0.0, 1.0, 1.1, 1.2], 2.0, before_last=1.2), _Epoch([3.0, 3.1, 3.2], 4.0, before_last=3.2)]
    assert summarize(epochs) == (7, pytest.approx(1.0), pytest.approx(0.1))
    without = [_Epoch(epoch.begins, epoch.end) for epoch in epochs]
    assert summarize(without)[2] == pytest.approx(1 / 3)


def test_ratios_name_the_fastest_and_average_geometrically():
    assert ranked({"torch": 3.0, "jax": 1.5, "tensorflow": None}) == [("jax", 1.5, 1.0), ("torch", 3.0, 2.0)]
    assert speed_text({"torch": 3.0, "jax": 1.5}, "s/epoch") == "fastest **jax** at 1.5 s/epoch (slower: torch 2.0x)"
    means = geometric_means([{"jax": 1.0, "torch": 4.0}, {"jax": 1.0, "torch": 1.0}])
    assert means == {"jax": 1.0, "torch": pytest.approx(2.0)}


def test_backends_are_compared_on_the_same_calls_only():
    cells = [
        cell("torch", [call(steady=0.2), call("fit", line=9, steady=1.0)]),  # line 9: only torch got there
        cell("jax", [call(steady=0.05, first=2.0, accuracy=0.95, loss=0.4)]),
        cell("tensorflow", [call(steady=0.1)], status="failed"),  # a failed run is not compared
    ]
    found = comparison.compare_file("course.py", cells)
    assert found.method == "fit" and found.calls == 1 and set(found.backends) == {"torch", "jax"}
    assert found.backends["torch"].steady_s == pytest.approx(2.0)  # 0.2 s x 10 steps
    assert found.ratios == {"jax": 1.0, "torch": pytest.approx(4.0)} and found.fastest == "jax"
    assert found.backends["jax"].compile_s == pytest.approx(1.95)
    assert found.spread == ("loss", pytest.approx(0.1))  # the largest: accuracy differs by 0.05
    text = comparison.backend_cell(found, "torch")
    assert text.startswith("2 s (4.00x) · compile 0.8 s · 500 MiB"), text


def test_a_file_that_trains_nothing_is_compared_on_its_evaluate_and_predict_calls():
    cells = [cell(name, [call("predict", steps=4, steady=speed)]) for name, speed in (("torch", 0.3), ("jax", 0.1))]
    found = comparison.compare_file("course.py", cells)
    assert found.method == "evaluate/predict" and found.fastest == "jax"


def test_the_course_names_its_fastest_backend_and_the_notes_say_what_the_numbers_are_worth():
    payload = {
        "files": ["a.py", "b.py", "c.py"],
        "cells": [
            cell("torch", [call(steady=0.4)], file="a.py"),
            cell("jax", [call(steady=0.1)], file="a.py"),
            cell("torch", [call(steady=0.1)], file="b.py"),
            cell("jax", [call(steady=0.2)], file="b.py"),
            cell("jax", [call(steady=0.2)], file="c.py"),  # one backend only: nothing to compare
        ],
        "smoke": True,
        "jobs": 2,
    }
    found = comparison.compare_course(payload)
    assert [item.file for item in found] == ["a.py", "b.py"]
    summary = comparison.course_summary(found)
    assert summary["fastest"] == "jax" and summary["wins"] == {"torch": 1, "jax": 1}
    assert summary["geometric_means"]["torch"] == pytest.approx(2.0)  # 4x on a.py, 1x on b.py
    notes = comparison.timing_notes(payload)
    assert len(notes) == 2 and "Smoke run" in notes[0] and "--jobs 1" in notes[1]


def test_every_measured_call_is_a_csv_row():
    payload = {"cells": [cell("torch", [call(), call("evaluate", steps=2)]), cell("jax", [])]}
    rows = list(csv.DictReader(io.StringIO(comparison.csv_text(payload))))
    assert [row["method"] for row in rows] == ["fit", "evaluate"]
    assert rows[0]["samples_per_s"] == "320.0" and rows[0]["device_used"] == "cpu: Test CPU (2 cores)"
    assert rows[0]["cell"] == "" and rows[0]["line"] == "5" and '"accuracy": 0.9' in rows[0]["logs"]


def tracking(cells, **settings):
    return regressions.Tracking({"cells": cells, "smoke": False, **settings}, "old/verify.json")


def test_a_regression_is_a_slower_steady_time_or_a_worse_final_metric():
    before = [cell("torch", [call(steady=0.1)]), cell("jax", [call(steady=0.1)])]
    now = {
        "cells": [
            cell("torch", [call(steady=0.2, accuracy=0.8, loss=0.7)]),  # 2x slower, accuracy 0.1 lower, loss higher
            cell("jax", [call(steady=0.12)]),  # 1.2x: within 1.25x
        ],
        "smoke": False,
        "seed": 0,
        "atol": 0.012,
        "rtol": 0.0,
    }
    found = regressions.find_regressions(now, tracking(before, seed=0))
    assert [(item["backend"], item["kind"], item.get("metric")) for item in found] == [
        ("torch", "slower", None),
        ("torch", "metric worse", "accuracy"),
        ("torch", "metric worse", "loss"),
    ]
    assert found[0]["ratio"] == pytest.approx(2.0) and "allowed 1.25x" in found[0]["detail"]
    assert regressions.find_regressions({**now, "atol": 0.5}, tracking(before, seed=0))[1:] == []  # tolerated
    unseeded = regressions.find_regressions({**now, "seed": None}, tracking(before))
    assert [item["kind"] for item in unseeded] == ["slower"]  # other random starts: metrics differ by chance


def test_calls_are_matched_in_order_across_commits_and_timed_over_the_baseline_s_steps():
    before = [cell("torch", [call(line=5, steps=48, steady=0.1)])]
    # The file was edited above the call (line 9 now), and an early stop ran twice the steps at the same speed.
    now = {"cells": [cell("torch", [call(line=9, steps=96, steady=0.1)])], "smoke": False}
    assert regressions.find_regressions(now, tracking(before)) == []
    slower = {"cells": [cell("torch", [call(line=9, steps=96, steady=0.2)])], "smoke": False}
    [found] = regressions.find_regressions(slower, tracking(before))
    assert found["ratio"] == pytest.approx(2.0)


def test_a_tiny_slowdown_is_noise_and_a_baseline_with_other_settings_is_refused():
    before = [cell("jax", [call(steady=0.001)])]  # 10 steps: 0.01 s
    now = {"cells": [cell("jax", [call(steady=0.004)])], "smoke": False}  # 4x, but 0.03 s
    assert regressions.find_regressions(now, tracking(before)) == []
    with pytest.raises(
        UsageError, match=r"^--baseline old/verify.json: it ran with smoke true, this run with smoke false"
    ):
        regressions.check_comparable({"smoke": False}, tracking(before, smoke=True))
