"""A course split across machines: `verify --shard K/N` on each, `verify merge` joining them into one matrix."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from multibackend.runtime.errors import UsageError
from multibackend.verify import shards

from ..conftest import run_cli

BACKENDS = "torch,tensorflow,jax"


def plain_course(folder):
    """Five scripts that need no backend (a Python process each, no Keras import: quick), one of them broken."""
    folder.mkdir()
    for number in range(1, 5):
        (folder / f"example{number}.py").write_text(f"print('accuracy', {number} / 10)\n")
    (folder / "broken.py").write_text("raise SystemExit('broken on purpose')\n")
    return folder


def matrix(payload: dict) -> list[tuple]:
    return sorted((c["file"], c["backend"], c["status"], c["error"], c["backend_used"]) for c in payload["cells"])


def test_shares_are_disjoint_cover_every_run_and_follow_the_durations():
    runs = [(f"f{number}.py", backend) for number in range(7) for backend in ("torch", "jax")]
    durations = {run: 100.0 if run[0] == "f0.py" else 1.0 for run in runs}
    parts = [shards.runs_of(shards.Shard(index, 3), runs, durations) for index in (1, 2, 3)]
    assert sorted(run for part in parts for run in part) == sorted(runs)
    assert [("f0.py", "jax")] in parts and [("f0.py", "torch")] in parts  # each 100-s run has a shard to itself
    assert parts == [shards.runs_of(shards.Shard(index, 3), runs, durations) for index in (1, 2, 3)]  # deterministic
    even = [len(shards.runs_of(shards.Shard(index, 3), runs)) for index in (1, 2, 3)]
    assert max(even) - min(even) <= 1


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "3", "a/b", "1/2/3", "-1/2"])
def test_a_share_must_be_k_of_n(text):
    with pytest.raises(ValueError, match="K/N"):
        shards.parse_shard(text)


def test_three_shards_merged_make_the_matrix_of_one_run(tmp_path):
    course = plain_course(tmp_path / "course")
    common = ["verify", str(course), "--backends", BACKENDS, "--offline-datasets", "off", "--jobs", "1"]
    whole = run_cli(*common, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 1  # the broken script
    # The shards run as separate processes at once, as CI jobs would, balanced by the whole run's durations.
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "multibackend", *common, "--shard", f"{k}/3", "--out", str(tmp_path / f"shard{k}")]
            + ["--durations-from", str(tmp_path / "whole" / "verify.json")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in (1, 2, 3)
    ]
    for process in processes:
        process.communicate(timeout=300)
        assert process.returncode in (0, 1)
    parts = [json.loads((tmp_path / f"shard{k}" / "verify.json").read_text()) for k in (1, 2, 3)]
    assert sum(len(part["cells"]) for part in parts) == 15 and all(part["verdicts"] == {} for part in parts)
    assert "in another shard" in (tmp_path / "shard1" / "verify.md").read_text()
    folders = [str(tmp_path / f"shard{k}") for k in (3, 1, 2)]
    merged = run_cli(
        "verify", "merge", *folders, "--out", str(tmp_path / "merged"), "--junit-xml", str(tmp_path / "m.xml")
    )
    assert merged.returncode == 1, merged.stderr
    one, joined = (json.loads((tmp_path / name / "verify.json").read_text()) for name in ("whole", "merged"))
    assert matrix(joined) == matrix(one)
    assert joined["verdicts"] == one["verdicts"] and joined["verdicts"][str(course / "broken.py")] == "fails everywhere"
    assert joined["backends"] == one["backends"] and joined["passed"] is one["passed"] is False
    assert joined["merged_from"] == folders and "Merged from 3 runs" in merged.stdout
    assert (tmp_path / "m.xml").read_text().count("<testcase") == 15


def shard_payload(tmp_path, name: str, index: int, count: int, **changed) -> str:
    """A shard's verify.json as verify writes one: a.py under torch and jax, planned over `count` shares, holding
    exactly the runs of share `index`."""
    plan = [{"file": "a.py", "backend": backend, "shard": number % count + 1} for number, backend in enumerate(PAIR)]
    payload = {
        "backends": list(PAIR),
        "files": ["a.py"],
        "cells": [
            {"file": "a.py", "backend": entry["backend"], "status": "passed", "seconds": 1.0, "error": ""}
            for entry in plan
            if entry["shard"] == index
        ],
        "warnings": [],
        "passed": True,
        "created": "2026-12-02T00:00:00+00:00",
        "smoke": False,
        "shard": {"index": index, "count": count},
        "plan": plan,
        **changed,
    }
    (tmp_path / name).mkdir()
    (tmp_path / name / "verify.json").write_text(json.dumps(payload))
    return str(tmp_path / name)


PAIR = ("torch", "jax")


def test_a_merge_refuses_a_missing_shard_a_shard_twice_and_another_run(tmp_path):
    first, second = shard_payload(tmp_path, "one", 1, 2), shard_payload(tmp_path, "two", 1, 2)
    smoke = shard_payload(tmp_path, "smoke", 2, 2, smoke=True)
    read = [(folder, shards.read_verify_file(tmp_path / folder, "verify merge:")) for folder in ("one", "two", "smoke")]
    with pytest.raises(UsageError, match="shard 2/2 of the run under torch,jax missing"):
        shards.merge(read[:1])
    with pytest.raises(UsageError, match="shard 1/2 is given twice"):
        shards.merge(read[:2])
    with pytest.raises(UsageError, match="smoke is not a shard of the same run .*differs in: smoke"):
        shards.merge([read[0], read[2]])
    for args in ([first], [first, second], [first, smoke]):
        result = run_cli("verify", "merge", *args, "--out", str(tmp_path / "merged"))
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "merged").exists()


def test_shards_with_only_the_fields_the_contract_requires_merge(tmp_path):
    # A hand-made or older shard: no pins, gated cells or settings (they are optional in the schema).
    one, two = shard_payload(tmp_path, "one", 1, 2), shard_payload(tmp_path, "two", 2, 2)
    result = run_cli("verify", "merge", one, two, "--out", str(tmp_path / "m"))
    assert result.returncode == 0, result.stderr
    merged = json.loads((tmp_path / "m" / "verify.json").read_text())
    assert [cell["backend"] for cell in merged["cells"]] == ["torch", "jax"] and merged["verdicts"] == {
        "a.py": "portable"
    }


def edited(folder: str, change) -> str:
    """The shard's verify.json after `change(payload)`, as a hand would edit it."""
    path = Path(folder) / "verify.json"
    payload = json.loads(path.read_text())
    change(payload)
    path.write_text(json.dumps(payload))
    return folder


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda p: p["cells"].clear(), "is its share (1/2) but it holds no run of it"),
        (lambda p: p.update(shard={"index": 1, "count": 1}), "its plan names a shard beyond its 1 shares"),
        (
            lambda p: p.update(shard={"index": 1, "count": 1}, plan=[{**e, "shard": 1} for e in p["plan"]]),
            "a.py under jax is its share (1/1) but it holds no run of it",
        ),
        (lambda p: p["cells"].append({**p["cells"][0], "backend": "tensorflow"}), "a run of a.py under tensorflow"),
        (lambda p: p["cells"].append(dict(p["cells"][0])), "a.py under torch is there twice"),
        (lambda p: p["plan"].pop(), "its plan does not hold each of its files under each of its backends once"),
        (lambda p: p.pop("plan"), "records no plan"),
    ],
)
def test_a_merge_refuses_a_hand_edited_shard(tmp_path, edit, named):
    first = edited(shard_payload(tmp_path, "one", 1, 2), edit)
    second = shard_payload(tmp_path, "two", 2, 2)
    result = run_cli("verify", "merge", first, second, "--out", str(tmp_path / "merged"))
    assert result.returncode == 2 and named in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "merged").exists()


def test_shards_planned_with_other_durations_are_not_merged(tmp_path):
    # The case: one shard balanced by an earlier run's durations, the other not; the failing file ran in
    # neither, and the merge said PASSED.
    course = tmp_path / "course"
    course.mkdir()
    for name in ("b", "c", "d"):
        (course / f"{name}.py").write_text("print('fine')\n")
    (course / "a.py").write_text("raise SystemExit('fails')\n")
    files = [str(course / f"{name}.py") for name in ("a", "b", "c", "d")]
    durations = tmp_path / "durations.json"
    durations.write_text(
        json.dumps(
            {
                "backends": ["torch"],
                "files": files,
                "cells": [
                    {"file": file, "backend": "torch", "status": "passed", "seconds": 9.0 if "c.py" in file else 1.0}
                    | {"error": ""}
                    for file in files
                ],
                "warnings": [],
                "passed": True,
                "created": "2026-12-02T00:00:00+00:00",
            }
        )
    )
    common = ["verify", str(course), "--backends", "torch", "--offline-datasets", "off", "--jobs", "1"]
    first = run_cli(*common, "--shard", "1/2", "--durations-from", str(durations), "--out", str(tmp_path / "s1"))
    second = run_cli(*common, "--shard", "2/2", "--out", str(tmp_path / "s2"))
    ran = [
        cell["file"]
        for shard in ("s1", "s2")
        for cell in json.loads((tmp_path / shard / "verify.json").read_text())["cells"]
    ]
    assert first.returncode in (0, 1) and second.returncode in (0, 1)
    assert str(course / "a.py") not in ran  # the two plans left it to each other
    merged = run_cli("verify", "merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", str(tmp_path / "m"))
    assert merged.returncode == 2 and "planned differently" in merged.stderr, merged.stderr
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["merge", "NOWHERE"], "unreadable"),
        (["merge"], "needs the folders"),
        (["merge", "ONE", "--smoke"], "not --smoke"),
        (["COURSE", "--durations-from", "NOWHERE"], "needs --shard"),
        (["COURSE", "--shard", "1/2", "--durations-from", "NOWHERE"], "unreadable"),
        (["COURSE", "--shard", "2/1"], "K/N"),
    ],
)
def test_bad_shard_and_merge_input_is_one_line(tmp_path, args, named):
    course = plain_course(tmp_path / "course")
    one = shard_payload(tmp_path, "one", 1, 2)
    given = [{"NOWHERE": str(tmp_path / "nowhere"), "ONE": one, "COURSE": str(course)}.get(arg, arg) for arg in args]
    result = run_cli("verify", *given, "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and named in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_the_course_workflow_commands_split_and_merge_a_course(tmp_path):
    # The reusable workflow's own command lines, with its expressions filled in as GitHub would fill them, run here:
    # two backends x two shards, the artifacts copied as download-artifact lays them out, then the merge job.
    import re
    import shutil

    import yaml

    from multibackend.backends import NAMES

    from ..conftest import REPO

    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "verify-course.yml").read_text())
    [plan_step] = [step for step in workflow["jobs"]["plan"]["steps"] if step.get("id") == "plan"]
    [verify_step] = [
        step for step in workflow["jobs"]["shard"]["steps"] if "multibackend verify" in step.get("run", "")
    ]
    [merge_step] = [step for step in workflow["jobs"]["merge"]["steps"] if "verify merge" in step.get("run", "")]
    course = plain_course(tmp_path / "course")
    output = tmp_path / "github_output"

    def filled(command: str, values: dict) -> str:
        return re.sub(r"\$\{\{\s*([\w.-]+)\s*\}\}", lambda match: str(values[match[1]]), command)

    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "GITHUB_OUTPUT": str(output)}
    plan = filled(plan_step["run"], {"inputs.shard-count": 2})
    subprocess.run(plan, shell=True, check=True, env={**env, "BACKENDS": ""}, cwd=tmp_path)
    planned = dict(line.split("=", 1) for line in output.read_text().splitlines())
    shard_numbers = json.loads(planned["shards"])
    assert shard_numbers == [1, 2] and json.loads(planned["backends"]) == list(NAMES)  # every backend, by default
    for backend in ("torch", "jax"):
        for shard in shard_numbers:
            values = {
                "inputs.paths": course,
                "matrix.backend": backend,
                "matrix.shard": shard,
                "inputs.shard-count": 2,
                "inputs.verify-args": "--jobs 1 --offline-datasets off",
                "inputs.pass-env": "COURSE_TOKEN KAGGLE_*",
                "inputs.incremental": "true",
            }
            command = filled(verify_step["run"], values)
            subprocess.run(["bash", "-e", "-c", command], check=True, env=env, cwd=tmp_path, capture_output=True)
            artifact = tmp_path / "shards" / f"verify-{backend}-{shard}"
            artifact.mkdir(parents=True)
            shutil.copy(tmp_path / f"verify-{backend}-{shard}" / "verify.json", artifact)
    merge = filled(merge_step["run"], {"inputs.regression-args": "--max-slowdown 1.5"})
    merged = subprocess.run(["bash", "-c", merge], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert merged.returncode == 1, merged.stderr  # the broken script
    payload = json.loads((tmp_path / "verify" / "verify.json").read_text())
    assert "baseline" not in payload and (tmp_path / "verify" / "calls.csv").read_text().startswith("file,backend,")
    assert payload["backends"] == ["torch", "jax"] and len(payload["cells"]) == 10
    assert payload["verdicts"][str(course / "broken.py")] == "fails everywhere"
    assert (tmp_path / "verify" / "junit.xml").read_text().count("<testcase") == 10
    assert payload["pass_env"] == ["COURSE_TOKEN", "KAGGLE_*"]  # every run got them, and the merge says so
    assert json.loads((tmp_path / ".verify-state" / "verify-state.json").read_text())[
        "runs"
    ]  # what actions/cache keeps
    (tmp_path / "verify-baseline").mkdir()  # as actions/cache restores the default branch's last matrix
    shutil.copy(tmp_path / "verify" / "verify.json", tmp_path / "verify-baseline")
    again = subprocess.run(["bash", "-c", merge], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 1, again.stderr
    payload = json.loads((tmp_path / "verify" / "verify.json").read_text())
    assert payload["baseline"]["source"] == "verify-baseline" and payload["baseline"]["max_slowdown"] == 1.5
    assert payload["regressions"] == []  # the same runs: nothing slower


@pytest.mark.backend
def test_a_seed_makes_a_rerun_print_the_same_numbers(tmp_path):
    # Course code rarely seeds itself: without --seed, two runs (or two shards and one run) print other numbers.
    from ..conftest import BACKEND

    course = tmp_path / "course"
    course.mkdir()
    (course / "fit.py").write_text(
        "import keras\nimport numpy as np\n"
        "x = np.random.rand(64, 3).astype('float32')\ny = (x.sum(1) > 1.5).astype('float32')\n"
        "model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation='relu'), keras.layers.Dense(1)])\n"
        "model.compile('sgd', 'mse')\n"
        "print('loss', model.fit(x, y, epochs=2, batch_size=8, verbose=0).history['loss'][-1])\n"
    )
    lines = []
    for run in ("first", "second"):
        result = run_cli("verify", str(course), "--backends", BACKEND, "--seed", "7", "--out", str(tmp_path / run))
        assert result.returncode == 0, result.stdout + result.stderr
        payload = json.loads((tmp_path / run / "verify.json").read_text())
        assert payload["seed"] == 7
        lines.append(payload["cells"][0]["last_line"])
    assert lines[0].startswith("loss ") and lines[0] == lines[1]
