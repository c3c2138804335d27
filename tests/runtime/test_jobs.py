"""Work in a backend's own process (`runtime.jobs`): the request's types survive, and every way a job ends is told."""

import dataclasses
import os
import signal
import threading
import time

import pytest

from multibackend.runtime import backend as backend_choice
from multibackend.runtime.errors import ChildCrashed, UsageError
from multibackend.runtime.jobs import JobRequest, from_fields, run_job

from ..conftest import BACKEND


@dataclasses.dataclass(frozen=True)
class Inner:
    name: str
    sizes: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class Arguments:
    count: int
    shape: tuple[int, ...]
    inner: Inner
    ratio: float | None = None


def describe(arguments: Arguments) -> dict:
    """What the child saw: the types of its arguments, and the backend fixed before any import of Keras."""
    import sys

    return {
        "shape_is_tuple": isinstance(arguments.shape, tuple),
        "inner": dataclasses.asdict(arguments.inner),
        "inner_is_dataclass": isinstance(arguments.inner, Inner),
        "keras_backend": os.environ["KERAS_BACKEND"],
        "keras_imported": "keras" in sys.modules,
        "pid": os.getpid(),
    }


def refuse(arguments: Arguments) -> None:
    raise UsageError(f"count {arguments.count} is not allowed")


def fail(arguments: Arguments) -> None:
    raise ValueError("a broken value\nand a second line that is not the error's first")


def frameworks_seen(modules: Inner) -> dict:
    """For each module named in `modules.name` (comma-separated): whether this process can import it."""
    import importlib
    import importlib.util

    seen = {}
    for module in modules.name.split(","):
        if importlib.util.find_spec(module).origin is not None:
            seen[module] = True  # found where it is installed (importing it would take seconds)
            continue
        try:
            importlib.import_module(module)
            seen[module] = True
        except ModuleNotFoundError:
            seen[module] = False
    return seen


def cores_of_this_process() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def sleep_for_ever() -> None:
    time.sleep(3600)


ARGUMENTS = Arguments(3, (28, 28), Inner("hidden", (512,)), 0.5)


def test_a_request_comes_back_as_the_same_dataclasses():
    request = JobRequest(BACKEND, "tests.runtime.test_jobs:describe", ARGUMENTS, cores=(0, 1))
    assert JobRequest.from_json(request.to_json()) == request
    assert from_fields(Arguments, dataclasses.asdict(ARGUMENTS)) == ARGUMENTS


def test_a_job_runs_in_another_process_with_its_backend_fixed_first():
    outcome = run_job(
        JobRequest(BACKEND, "tests.runtime.test_jobs:describe", ARGUMENTS, import_keras=False), timeout=120
    )
    assert outcome.ok, outcome.failure()
    seen = outcome.value
    assert seen["pid"] != os.getpid() and seen["keras_backend"] == BACKEND and not seen["keras_imported"]
    assert seen["shape_is_tuple"] and seen["inner_is_dataclass"] and seen["inner"] == {"name": "hidden", "sizes": [512]}


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="the system cannot pin a process")
def test_a_job_runs_on_the_cores_its_request_names_and_on_all_of_ours_when_it_names_none():
    ours = sorted(os.sched_getaffinity(0))
    function = "tests.runtime.test_jobs:cores_of_this_process"
    pinned = run_job(JobRequest(BACKEND, function, import_keras=False, cores=(ours[-1],)), timeout=120)
    assert pinned.ok, pinned.failure()
    assert pinned.value == [ours[-1]]
    free = run_job(JobRequest(BACKEND, function, import_keras=False), timeout=120)
    assert free.ok, free.failure()
    assert free.value == ours


def test_a_job_sees_only_its_own_backend_s_framework_unless_it_runs_code_that_is_not_ours():
    installed = backend_choice.installed_backends()
    if len(installed) < 2:
        pytest.skip(f"needs two backends, found {installed}")
    own = installed[0]
    modules = Inner(",".join(backend_choice.backends.backend(name).MODULES[0] for name in installed))
    for hide, expected in ((True, {name: name == own for name in installed}), (False, dict.fromkeys(installed, True))):
        request = JobRequest(own, "tests.runtime.test_jobs:frameworks_seen", modules, import_keras=False,
                             hide_other_frameworks=hide)  # fmt: skip
        outcome = run_job(request, timeout=120)
        assert outcome.ok, outcome.failure()
        assert {name: outcome.value[backend_choice.backends.backend(name).MODULES[0]] for name in installed} == expected


def test_a_usage_error_and_an_exception_come_back_as_one_line():
    refused = run_job(JobRequest(BACKEND, "tests.runtime.test_jobs:refuse", ARGUMENTS, import_keras=False), timeout=120)
    assert not refused.ok and refused.process.returncode == 2 and refused.reply.usage_error
    with pytest.raises(UsageError, match=r"^the job: count 3 is not allowed$"):
        refused.result("the job")
    failed = run_job(JobRequest(BACKEND, "tests.runtime.test_jobs:fail", ARGUMENTS, import_keras=False), timeout=120)
    assert failed.process.returncode == 1 and "Traceback" in failed.process.stderr  # kept for whoever reads the log
    assert failed.failure() == "ValueError: a broken value"
    with pytest.raises(ChildCrashed, match=r"^the job crashed: ValueError: a broken value$"):
        failed.result("the job")


def test_a_bad_backend_or_function_is_refused_before_any_work():
    unknown = run_job(JobRequest("theano", "tests.runtime.test_jobs:describe", ARGUMENTS), timeout=120)
    assert unknown.reply.usage_error and "unknown backend 'theano'" in unknown.failure()
    missing = run_job(JobRequest(BACKEND, "tests.runtime.test_jobs:no_such_function", import_keras=False), timeout=120)
    assert not missing.ok and missing.failure().startswith("AttributeError")


def test_a_job_past_its_time_limit_is_killed_and_says_so():
    outcome = run_job(JobRequest(BACKEND, "tests.runtime.test_jobs:sleep_for_ever", import_keras=False), timeout=3)
    assert outcome.process.timed_out and outcome.reply is None
    assert outcome.failure().startswith("timed out after")
    with pytest.raises(ChildCrashed, match=r"^the job timed out after \d+ s$"):
        outcome.result("the job")


def test_sigterm_to_a_job_ends_it_with_exit_143_and_no_reply():
    from multibackend.runtime import children

    before = set(os.listdir("/proc"))
    finished = {}
    thread = threading.Thread(
        target=lambda: finished.update(
            outcome=run_job(
                JobRequest(BACKEND, "tests.runtime.test_jobs:sleep_for_ever", import_keras=False), timeout=120
            )
        )
    )
    thread.start()
    deadline = time.time() + 60
    while not children._running and time.time() < deadline:
        time.sleep(0.05)
    [pid] = list(children._running)
    time.sleep(2)  # past the child's start, into the sleep
    os.kill(pid, signal.SIGTERM)
    thread.join(60)
    outcome = finished["outcome"]
    assert outcome.process.returncode == 143 and outcome.reply is None and "terminated" in outcome.process.stderr
    assert str(pid) not in set(os.listdir("/proc")) - before


def test_the_chosen_backends_are_checked_in_one_place(monkeypatch):
    monkeypatch.setattr(backend_choice, "installed_backends", lambda: ["torch", "jax"])
    assert backend_choice.chosen_backends(None) == ["torch", "jax"]
    assert backend_choice.chosen_backends(["jax", "torch", "jax"]) == ["jax", "torch"]
    with pytest.raises(UsageError, match=r"^unknown backend 'theano' \(choose from torch, tensorflow, jax\)$"):
        backend_choice.chosen_backends(["theano"])
    with pytest.raises(UsageError, match=r"^backend 'tensorflow' is not installed here \(installed: torch, jax\): pip"):
        backend_choice.chosen_backends(["tensorflow"])


def test_a_malformed_request_is_one_line_and_exit_2():
    import subprocess
    import sys

    for request in ("{not json", '{"function": "os:getcwd"}'):  # not JSON; no backend
        finished = subprocess.run(
            [sys.executable, "-m", "multibackend.runtime.job", request], capture_output=True, text=True, timeout=120
        )
        assert finished.returncode == 2 and len(finished.stderr.strip().splitlines()) == 1, finished.stderr
        assert finished.stderr.startswith("job: error: not a job request")
