"""Adversarial inputs and faults for `multibackend evolve`: seeds, storage, outputs, a real SIGTERM."""

import dataclasses
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from multibackend.evolve import config as evolve_config
from multibackend.evolve import recovery as evolve_recovery
from multibackend.evolve import storage as evolve_storage
from multibackend.evolve import study as evolve_study
from multibackend.runtime.cores import core_shares

from ..conftest import (
    BACKEND,
    SEEDS_OUTSIDE_THE_FRAMEWORKS_RANGE,
    assert_output_file_refused,
    assert_seed_refused,
    one_line_error,
)
from ..helpers import as_a_foreground_job, evolve_command

pytestmark = pytest.mark.adversarial


@pytest.mark.parametrize("seed", SEEDS_OUTSIDE_THE_FRAMEWORKS_RANGE)
def test_seeds_outside_the_frameworks_range_are_refused(capsys, seed):
    assert_seed_refused(capsys, seed, "evolve")


@pytest.mark.parametrize("command", [["evolve", "--results"], ["evolve", "--out"]])
def test_an_output_folder_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, command):
    assert_output_file_refused(tmp_path, capsys, *command)


@pytest.mark.parametrize("storage", ["sqlite:///", "sqlite:///:memory:"])
def test_an_in_memory_study_is_refused(capsys, storage):
    assert "in-memory database" in one_line_error(capsys, "evolve", "--storage", storage)


def worker_processes(parent_marker: str) -> list[int]:
    """Pids of running helper workers (jobs of `work_on_study`) whose command line holds `parent_marker`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "multibackend.runtime.job" in text and "work_on_study" in text and parent_marker in text:
            found.append(int(cmdline.parent.name))
    return found


def runs_on(pid: int, cores: set[int]) -> bool:
    """Whether process `pid` may run on `cores` only (False once it ended)."""
    try:
        return os.sched_getaffinity(pid) == cores
    except ProcessLookupError:
        return False


@pytest.mark.slow
def test_sigterm_to_evolve_ends_its_helper_workers(tmp_path):
    results = tmp_path / "results"
    command = evolve_command(
        tmp_path,
        BACKEND,
        "--workers",
        "2",
        "--generations",
        "40",  # longer than the test waits: it ends the search itself
        "--population",
        "2",
        "--max-epochs",
        "1",
        "--train-samples",
        "1500",
    )
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not worker_processes(str(results)) and time.time() < deadline and process.poll() is None:
        time.sleep(0.5)
    helpers = worker_processes(str(results))
    assert helpers, "the helper worker never started"
    shares = core_shares(2)
    if shares:  # each worker on cores of its own: this process on the first share, the helper on the second
        wait_for(lambda: runs_on(helpers[0], set(shares[1])), process, seconds=20)  # a job pins itself as it starts
        search_cores = os.sched_getaffinity(process.pid)
        # The search ends its helpers before it takes its cores back: with the helper still there, it was searching.
        assert worker_processes(str(results)) == helpers, "the search ended before its cores could be read"
        assert search_cores == set(shares[0]), f"the search's own process runs on cores {search_cores}"
    time.sleep(3)  # let it get into its first trial
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143 and stderr.strip().splitlines()[-1] == "multibackend: terminated", stderr
    time.sleep(0.5)
    assert worker_processes(str(results)) == [], "a helper worker trains on after its parent was terminated"


OPEN_STORAGE = """
import sys
from multibackend.evolve.storage import make_storage
from multibackend.runtime.errors import UsageError
try:
    make_storage(sys.argv[1])
except UsageError as error:
    sys.exit(str(error))
"""


def test_workers_that_open_a_new_sqlite_study_at_once_all_open_it(tmp_path):
    # Each one creates the tables of a new database; without retries, 11 of 15 pairs here had one fail ("table
    # alembic_version already exists"), and a CI run's search exited 2 when the test's own reader opened it too.
    for round_ in range(3):
        url = f"sqlite:///{tmp_path / f'study-{round_}.db'}"
        openers = [
            subprocess.Popen([sys.executable, "-c", OPEN_STORAGE, url], stderr=subprocess.PIPE, text=True)
            for _ in range(3)
        ]
        said = [opener.communicate(timeout=120)[1] for opener in openers]
        assert [opener.returncode for opener in openers] == [0, 0, 0], said


def test_a_study_name_that_cannot_name_a_file_is_refused_before_any_work(capsys, tmp_path):
    line = one_line_error(capsys, "evolve", "--study", "course/v2", "--results", str(tmp_path / "r"))
    assert "--study 'course/v2'" in line and not (tmp_path / "r").exists()


def load_trials(db: Path, study: str) -> list:
    import optuna

    if not db.exists():
        return []
    try:
        return optuna.load_study(study_name=study, storage=f"sqlite:///{db}").get_trials(deepcopy=False)
    except Exception:  # noqa: BLE001 - the study may not be created yet
        return []


def training(trials: list) -> list:
    """The running trials that train, with their whole genome drawn: a size per layer, and every other gene."""
    from multibackend.evolve.genome import Genome

    other_genes = len(dataclasses.fields(Genome))  # n_layers in the place of `units`
    return [
        t
        for t in trials
        if t.state.name == "RUNNING"
        and t.user_attrs.get("place") == "training"
        and len(t.params) == t.params.get("n_layers", 99) + other_genes
    ]


def wait_for(condition, process: subprocess.Popen, seconds: float = 240):
    deadline = time.time() + seconds
    while time.time() < deadline and process.poll() is None:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    status = process.poll()
    said = process.stderr.read() if status is not None and process.stderr else ""
    said = said.decode(errors="replace") if isinstance(said, bytes) else said
    raise AssertionError(f"never happened (the search's exit status: {status}); it said: {said[-3000:]}")


@pytest.mark.slow
def test_ctrl_c_in_the_baseline_is_one_line_and_a_resume_trains_the_baseline(tmp_path):
    command = evolve_command(tmp_path, BACKEND, "--generations", "1", "--population", "2")
    db, study = tmp_path / "results" / "evolve.db", f"mnist-dense-{BACKEND}"
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=as_a_foreground_job
    )
    [baseline] = wait_for(lambda: training(load_trials(db, study)), process)
    assert baseline.user_attrs.get("baseline")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and stderr.strip().splitlines()[-1] == "multibackend: interrupted", stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    interrupted = next(t for t in load_trials(db, study) if t.number == baseline.number)
    assert interrupted.state.name == "FAIL" and interrupted.user_attrs["interrupted"]
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((tmp_path / "results" / f"evolve-{study}.json").read_text())
    assert summary["baseline"] is not None and summary["baseline"]["params"] == 407_050
    retried = [t for t in load_trials(db, study) if t.user_attrs.get("retry_of") == baseline.number]
    assert [t.state.name for t in retried] == ["COMPLETE"] and retried[0].params == interrupted.params


@pytest.mark.slow
def test_after_sigterm_to_two_workers_a_resume_trains_every_killed_genome(tmp_path):
    # Ten trials, the signal sent while two train and at least four are left: the helper worker starts a Keras
    # process of its own, and on a loaded machine the main one had done four of six trials before it joined
    # (the search then ended before the signal).
    command = evolve_command(tmp_path, BACKEND, "--generations", "5", "--population", "2")
    db, study = tmp_path / "results" / "evolve.db", f"mnist-dense-{BACKEND}"
    process = subprocess.Popen([*command, "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def two_train_with_work_left() -> list:
        trials = load_trials(db, study)
        found = training(trials)
        complete = sum(t.state.name == "COMPLETE" for t in trials)
        return found if len(found) == 2 and complete <= 4 else []

    killed = wait_for(two_train_with_work_left, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr.decode(errors="replace")[-3000:]
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    complete = [t for t in load_trials(db, study) if t.state.name == "COMPLETE"]
    for trial in killed:  # the main worker's (interrupted) and the helper's (killed, found stale)
        assert any(done.params == trial.params for done in complete), f"trial {trial.number}'s genome never trained"


def test_a_sqlite_write_waits_out_a_lock_held_longer_than_sqlites_default(tmp_path):
    # Two workers and a reader share one SQLite file: on a loaded CI machine a lock outlived SQLite's default 5 s and
    # a heartbeat's write failed, which stopped the search as if its disk had failed.
    import sqlite3
    import threading

    import optuna

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=evolve_storage.make_storage(url), directions=["maximize", "minimize"])
    trial = study.ask()
    holder = sqlite3.connect(tmp_path / "s.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(7.0, holder.execute, args=("COMMIT",))
    release.start()
    try:
        started = time.monotonic()
        trial.set_user_attr("place", "training")  # Optuna tries such a write once (it retries a new trial's)
        assert time.monotonic() - started >= 6.5  # it did wait on the lock
    finally:
        release.join()
        holder.close()
    assert study.trials[0].user_attrs == {"place": "training"}


def params_of(units: int) -> dict:
    from multibackend.evolve.genome import Genome

    return Genome((units,), "relu", "adam", 1e-3, 128, 0.0, 1).to_params()


def test_a_killed_trial_holds_its_place_until_its_retry_is_queued(tmp_path, monkeypatch):
    # Optuna fails a killed worker's trial, then queues its retry: a trial that looked in between took the last
    # place, and the retry was pruned with the study full (a CI run of the distributed test).
    import optuna
    from optuna.trial import TrialState

    study = optuna.create_study(
        storage=evolve_storage.make_storage(f"sqlite:///{tmp_path / 's.db'}"), directions=["maximize", "minimize"]
    )
    study.add_trial(optuna.create_trial(params={}, distributions={}, values=[0.9, 100.0]))
    study.enqueue_trial(params_of(32))
    killed = study.ask()
    killed.set_user_attr("place", "training")
    study.tell(killed.number, state=TrialState.FAIL)  # as `fail_stale_trials` fails it, before the retry is queued
    fresh = study.ask()
    monkeypatch.setattr(study, "stop", lambda: None)  # outside `optimize`, Optuna's own refuses
    with pytest.raises(optuna.TrialPruned, match="budget is spent"):  # waited: the last place is the killed one's
        evolve_recovery.wait_for_a_free_place(fresh, total=2, deadline=time.monotonic() + 2, poll_seconds=0.2)

    optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)(study, study.trials[killed.number])
    with pytest.raises(optuna.TrialPruned, match="a queued trial goes first"):
        evolve_recovery.wait_for_a_free_place(fresh, total=2, deadline=time.monotonic() + 60)
    retry = study.ask()
    assert study.trials[retry.number].system_attrs["failed_trial"] == killed.number
    evolve_recovery.wait_for_a_free_place(retry, total=2, deadline=time.monotonic() + 60)  # returns: it trains


def test_a_trial_failed_by_its_own_error_or_long_ago_holds_no_place(tmp_path):
    import optuna
    from optuna.trial import TrialState

    study = optuna.create_study(
        storage=evolve_storage.make_storage(f"sqlite:///{tmp_path / 's.db'}"), directions=["maximize", "minimize"]
    )
    study.enqueue_trial(params_of(32))
    errored = study.ask()
    errored.set_user_attr("place", "training")
    errored.set_user_attr("error", "FloatingPointError: NaN loss")
    study.tell(errored.number, state=TrialState.FAIL)
    fresh = study.ask()
    evolve_recovery.wait_for_a_free_place(fresh, total=1, deadline=time.monotonic() + 60)  # returns at once
    long_ago = study.trials[errored.number]
    long_ago.user_attrs.pop("error")
    long_ago.datetime_complete -= dt.timedelta(seconds=evolve_recovery.RETRY_QUEUE_SECONDS + 1)
    assert not evolve_recovery.awaiting_retry(long_ago, study.trials)
    long_ago.datetime_complete += dt.timedelta(seconds=evolve_recovery.RETRY_QUEUE_SECONDS)
    assert evolve_recovery.awaiting_retry(
        long_ago, study.trials
    )  # the same trial, failed a second ago: holds its place


def test_a_queued_trial_never_gives_its_place_to_another_queued_one(tmp_path):
    # Two killed workers' genomes queued again: the first one taken must train, not be pruned for the second;
    # a trial with a genome of the sampler's own gives its place to a queued one.
    import optuna

    from multibackend.evolve.recovery import wait_for_a_free_place

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", directions=["maximize", "minimize"])
    fresh = study.ask()  # nothing queued yet: the sampler's
    study.enqueue_trial(params_of(32))
    study.enqueue_trial(params_of(64))
    retry = study.ask()  # the first queued genome
    wait_for_a_free_place(retry, total=10, deadline=time.monotonic() + 60)  # returns: it may train
    assert retry.user_attrs["place"] == "training"
    with pytest.raises(optuna.TrialPruned, match="a queued trial goes first"):
        wait_for_a_free_place(fresh, total=10, deadline=time.monotonic() + 60)


def test_a_trial_killed_inside_ask_does_not_hold_its_place_for_ever(tmp_path, monkeypatch):
    # A worker SIGKILLed inside Optuna's ask leaves a running trial with no heartbeat, which Optuna never finds
    # stale: the resume of such a search waited on it for good (the last place of the study was "taken").
    import optuna

    study = optuna.create_study(
        storage=evolve_storage.make_storage(f"sqlite:///{tmp_path / 's.db'}"), directions=["maximize", "minimize"]
    )
    study.enqueue_trial(params_of(32), user_attrs={"baseline": True})
    killed_queued = study.ask()  # took the queued genome, then its worker died: no worker, no heartbeat
    killed_drawn = study.ask()  # a sampler's trial, killed before it drew anything
    alive = study.ask()
    alive.set_user_attr("worker", "host:1")
    assert evolve_recovery.fail_trials_killed_in_ask(study) == []  # younger than the time an ask may take
    monkeypatch.setattr(evolve_recovery, "ASK_SECONDS", 0.0)
    waiting = study.ask()
    waiting.set_user_attr("worker", "host:2")
    # Three places: `alive` holds one and the two killed trials the others, until found dead here; then the
    # queued genome of one of them goes first.
    with pytest.raises(optuna.TrialPruned, match="a queued trial goes first"):
        evolve_recovery.wait_for_a_free_place(waiting, total=3, deadline=time.monotonic() + 30, poll_seconds=0.05)
    states = {t.number: t.state.name for t in study.get_trials(deepcopy=False)}
    assert states[killed_queued.number] == "FAIL" and states[killed_drawn.number] == "FAIL"
    assert states[alive.number] == "RUNNING"
    [requeued] = [t for t in study.get_trials(deepcopy=False) if t.state.name == "WAITING"]
    assert requeued.user_attrs == {"retry_of": killed_queued.number, "baseline": True}
    assert requeued.system_attrs["fixed_params"] == params_of(32)


def test_a_trial_marked_as_a_workers_is_found_stale_if_killed_before_optunas_first_beat(tmp_path):
    # Optuna's heartbeat thread may beat after the objective marks the trial as its worker's; a worker killed in
    # between left a running trial that no heartbeat ever named stale, and a resume in CI waited on it until its
    # budget (600 s). The objective beats first itself, on the storage the study really has (Optuna's cache).
    import sqlite3

    import optuna

    from multibackend.evolve.objective import Objective

    db = tmp_path / "s.db"
    study = optuna.create_study(
        storage=evolve_storage.make_storage(f"sqlite:///{db}"), directions=["maximize", "minimize"]
    )
    killed = study.ask()  # outside `optimize`: no heartbeat thread, as when the worker dies before it beats
    config = evolve_config.EvolveConfig(backend=BACKEND, results_dir=str(tmp_path), population=2, max_epochs=1)
    Objective(config, {}, tmp_path).admit(killed)
    assert study.trials[killed.number].user_attrs["worker"]
    with sqlite3.connect(db) as connection:  # the worker dies: its last beat grows older than the grace period
        connection.execute("UPDATE trial_heartbeats SET heartbeat = '2000-01-01 00:00:00'")
    optuna.storages.fail_stale_trials(study)
    assert study.trials[killed.number].state.name == "FAIL"


def test_a_resume_queues_every_owed_genome_again_the_baseline_first(tmp_path):
    from optuna.trial import TrialState

    from multibackend.evolve.genome import suggest_genome

    config = evolve_config.EvolveConfig(backend=BACKEND, results_dir=str(tmp_path), population=2, max_epochs=1)
    study = evolve_study.open_study(config)  # a new study: the baseline queued
    trials = {}
    for ending in ("baseline interrupted", "interrupted", "crashed", "complete"):
        trial = study.ask()  # the queued baseline first, then the sampler's genomes
        suggest_genome(trial, config.max_epochs)
        if "interrupted" in ending:
            trial.set_user_attr("interrupted", True)
        done = ending == "complete"
        study.tell(trial, [0.9, 1000.0] if done else None, state=TrialState.COMPLETE if done else TrialState.FAIL)
        trials[ending] = study.get_trials(deepcopy=False)[-1]
    resumed = evolve_study.open_study(config)
    waiting = [t for t in resumed.get_trials(deepcopy=False) if t.state == TrialState.WAITING]
    assert [(t.user_attrs.get("baseline", False), t.user_attrs["retry_of"]) for t in waiting] == [
        (True, trials["baseline interrupted"].number),
        (False, trials["interrupted"].number),
    ]
    assert [t.system_attrs["fixed_params"] for t in waiting] == [
        trials["baseline interrupted"].params,
        trials["interrupted"].params,
    ]
    again = evolve_study.open_study(config)  # a second start queues nothing twice
    assert len([t for t in again.get_trials(deepcopy=False) if t.state == TrialState.WAITING]) == 2


def test_a_worker_that_joins_while_the_baseline_is_half_drawn_does_not_queue_it_again(tmp_path):
    # A worker's open_study saw the baseline trial running with some of its genes drawn, took that part for the
    # genome, queued the baseline a second time, and two workers trained it side by side (the PostgreSQL test's
    # "a genome trained twice" in a clean-clone CI).
    import optuna

    config = evolve_config.EvolveConfig(backend=BACKEND, results_dir=str(tmp_path), population=2, max_epochs=1)
    study = evolve_study.open_study(config)  # the first worker: the baseline queued
    baseline = study.ask()
    assert baseline.user_attrs.get("baseline")
    baseline.suggest_int("n_layers", 1, 3)  # its genome half drawn from the fixed params
    evolve_study.open_study(config)  # the second worker joins
    states = [t.state.name for t in optuna.load_study(study_name=config.study_name, storage=config.storage_url).trials]
    assert states == ["RUNNING"], "the baseline was queued again while it trains"


def test_a_wrong_database_password_is_never_printed(tmp_path, capsys):
    url = "postgresql+psycopg2://evolve:pw-s3cret-4@127.0.0.1:1/evolve"  # nothing listens on port 1
    line = one_line_error(capsys, "evolve", "--storage", url, "--results", str(tmp_path / "r"))
    assert "pw-s3cret-4" not in line and "evolve:***@127.0.0.1" in line


def test_storage_urls_are_shown_and_stored_with_the_password_masked():
    from multibackend.evolve.config import EvolveConfig
    from multibackend.evolve.storage import shown_storage

    assert (
        shown_storage("postgresql+psycopg2://evolve:p@ss:w0rd@db:5432/e")
        == "postgresql+psycopg2://evolve:***@db:5432/e"
    )
    assert shown_storage("sqlite:///results/evolve.db") == "sqlite:///results/evolve.db"
    assert EvolveConfig("jax", storage="mysql://u:secret@h/d").storage_shown == "mysql://u:***@h/d"
    from ..conftest import REPO

    for path in (REPO / "reports").rglob("*.json"):
        assert not re_password().search(path.read_text()), path


def re_password():
    import re

    return re.compile(r"://[^:/@\"]*:(?!\*\*\*@)[^@/\"]+@")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--study", ""], "--study ''"),
        (["--workers", "1000000"], "--workers 1000000: at most"),
        (["--storage", "sqlite:///AFILE/e.db"], "cannot make its folder"),
        (["--storage", "journal:///AFOLDER"], "is a folder, not a database file"),
        (["--storage", "sqlite:///AFOLDER"], "is a folder, not a database file"),
    ],
)
def test_bad_study_storage_and_worker_settings_are_one_line(tmp_path, capsys, args, named):
    (tmp_path / "afile").write_text("")
    (tmp_path / "afolder").mkdir()
    given = [
        arg.replace("AFILE", str(tmp_path / "afile")).replace("AFOLDER", str(tmp_path / "afolder")) for arg in args
    ]
    started = time.monotonic()
    line = one_line_error(capsys, "evolve", *given, "--results", str(tmp_path / "r"), "--out", str(tmp_path / "o"))
    assert named in line and time.monotonic() - started < 30, line
    assert not worker_processes(str(tmp_path / "r"))


def test_a_storage_made_read_only_mid_search_is_one_line_and_keeps_its_trials(tmp_path):
    # The storage's failure is the search's business, not the backend's: this runs once, under the default backend.
    import sqlite3

    from multibackend.verify import containment

    if not containment.available():
        pytest.skip("no mount namespaces here to make the folder read-only under the search")
    results = tmp_path / "results"
    command = evolve_command(
        tmp_path, BACKEND, "--generations", "30", "--population", "2", "--max-epochs", "1", "--train-samples", "1500"
    )
    # The search runs in a mount namespace of its own; once its study has a complete trial, its results folder is
    # mounted read-only over itself there, as a disk that turned read-only would be.
    database = results / "evolve.db"
    ready = f"python3 -c \"import sqlite3,sys; c=sqlite3.connect('file:{database}?mode=ro', uri=True); n=c.execute(\\\"select count(*) from trials where state='COMPLETE'\\\").fetchone()[0]; sys.exit(0 if n else 1)\""
    script = (
        '"$@" & search=$!; '
        f"until [ -s {database} ] && {ready} 2>/dev/null || ! kill -0 $search 2>/dev/null; do sleep 0.5; done; "
        f"mount --bind -o ro {results} {results}; wait $search"
    )
    finished = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *command],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = finished.stderr.strip().splitlines()
    assert finished.returncode == 2 and "stopped taking writes" in lines[-1], finished.stderr[-2000:]
    kept = sqlite3.connect(database).execute("select count(*) from trials where state='COMPLETE'").fetchone()[0]
    assert kept >= 1
