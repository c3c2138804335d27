"""Workers on two backends share one study on a real PostgreSQL server; one is killed in the middle of a trial."""

import dataclasses
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

from multibackend.evolve import config as evolve_config
from multibackend.evolve import study as evolve_study
from multibackend.evolve.genome import Genome
from multibackend.runtime.backend import installed_backends

from ..postgres import postgres_server

SETTINGS = {"generations": 5, "population": 2, "max_epochs": 1, "train_samples": 1500}
# Every gene but the layer sizes: once all are drawn, a killed trial's retry has its whole genome to train.
GENES = {field.name for field in dataclasses.fields(Genome) if field.name != "units"} | {"n_layers"}


def worker_command(backend: str, storage: str, results: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "multibackend",
        "evolve",
        "--join",
        "--backend",
        backend,
        "--storage",
        storage,
        "--study",
        "shared",
        "--generations",
        str(SETTINGS["generations"]),
        "--population",
        str(SETTINGS["population"]),
        "--max-epochs",
        str(SETTINGS["max_epochs"]),
        "--train-samples",
        str(SETTINGS["train_samples"]),
        "--budget",
        "4",
        "--results",
        results,
    ]


def trial_table(trials) -> str:
    """One line per trial: what a failure needs to tell which trial trained which genome, when, and why."""
    lines = []
    for t in trials:
        genome = hash(tuple(sorted(t.params.items()))) % 10_000 if t.params else "-"
        marks = {
            key: t.user_attrs[key]
            for key in ("worker", "backend", "same_genome_as", "retry_of", "baseline", "place")
            if key in t.user_attrs
        }
        marks.update({key: t.system_attrs[key] for key in ("failed_trial",) if key in t.system_attrs})
        marks["queued"] = "fixed_params" in t.system_attrs
        times = f"{str(t.datetime_start)[11:19]}-{str(t.datetime_complete)[11:19]}"
        lines.append(f"  {t.number} {t.state.name} genome {genome} {times} {marks}")
    return "\n".join(lines)


@pytest.mark.cross_backend
def test_three_workers_on_two_backends_share_a_postgresql_study_and_a_killed_trial_is_retried(tmp_path):
    other = next((name for name in ("jax", "tensorflow") if name in installed_backends()), None)
    if "torch" not in installed_backends() or other is None:
        pytest.skip("needs torch and one more backend")
    total = SETTINGS["generations"] * SETTINGS["population"]
    with postgres_server() as url:
        config = evolve_config.EvolveConfig(
            backend="torch", storage=url, study="shared", results_dir=str(tmp_path), **SETTINGS
        )
        evolve_study.open_study(config)  # made once, as `multibackend evolve` on the first machine makes it
        env = {**os.environ, "OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
        workers, logs = {}, {}
        for index, backend in enumerate(("torch", "torch", other)):
            # Output to files: a pipe nobody reads fills up and stops the worker (and the others wait on its trial).
            log = tmp_path / f"worker-{index}-{backend}.log"
            with log.open("w") as stream:
                process = subprocess.Popen(
                    worker_command(backend, url, str(tmp_path)),
                    env=env,
                    start_new_session=True,
                    stdout=stream,
                    stderr=subprocess.STDOUT,
                )
            workers[process.pid], logs[process.pid] = process, log
        study = optuna.load_study(study_name="shared", storage=url)
        victim, killed_trial, deadline = None, None, time.time() + 240
        try:
            while killed_trial is None and time.time() < deadline:
                trials = study.get_trials(deepcopy=False)
                done = sum(t.state.name == "COMPLETE" for t in trials)
                for trial in trials:
                    pid = int(trial.user_attrs.get("worker", "x:0").rsplit(":", 1)[1])
                    # A torch trial that is training (its genome drawn), after two finished; the other torch worker goes on.
                    training = (
                        trial.state.name == "RUNNING"
                        and GENES <= set(trial.params)
                        and trial.user_attrs.get("backend") == "torch"
                    )
                    if done >= 2 and training and pid in workers:
                        victim, killed_trial = workers[pid], trial.number
                        os.killpg(pid, signal.SIGKILL)
                        break
                time.sleep(0.2)
            assert killed_trial is not None, "no torch trial was seen running"
            victim.wait()
            for pid, process in workers.items():
                if process is not victim:
                    try:
                        process.wait(timeout=max(1.0, deadline - time.time()))
                    except subprocess.TimeoutExpired:
                        states = [(t.number, t.state.name, t.user_attrs.get("worker")) for t in study.get_trials()]
                        raise AssertionError(f"worker {pid} still runs; killed {victim.pid}; trials {states}") from None
                    assert process.returncode == 0, logs[pid].read_text()[-2000:]
        finally:
            for process in workers.values():
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        trials = optuna.load_study(study_name="shared", storage=url).get_trials()
    summary = f"killed trial {killed_trial}:\n{trial_table(trials)}"
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == total, summary
    trained = [t for t in complete if "same_genome_as" not in t.user_attrs]
    assert len({tuple(sorted(t.params.items())) for t in trained}) == len(trained), f"a genome trained twice; {summary}"
    killed = next(t for t in trials if t.number == killed_trial)
    assert killed.state.name == "FAIL", summary
    retried = [t for t in complete if t.system_attrs.get("failed_trial") == killed_trial]
    assert len(retried) == 1 and retried[0].params == killed.params, summary
    assert all(t.user_attrs.get("backend") in ("torch", other) for t in trials if t.state.name != "WAITING")
    assert {t.user_attrs["backend"] for t in complete} == {"torch", other}
