import dataclasses
import json
import re

import pytest

from multibackend.results import SCHEMA_VERSION, read_results, write_json_atomic
from multibackend.runtime.errors import ResultsError

from .helpers import minimal_payload


def test_atomic_write_leaves_only_the_file(tmp_path):
    path = write_json_atomic(tmp_path / "sub" / "r.json", minimal_payload())
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]
    assert read_results(path).example == "xor"


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = write_json_atomic(tmp_path / "r.json", minimal_payload())
    before = path.read_text()
    with pytest.raises(TypeError):
        write_json_atomic(path, {"not serialisable": object()})
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "unreadable"),
        (json.dumps([1, 2]), "not a JSON object"),
        (json.dumps(minimal_payload(schema_version=SCHEMA_VERSION + 1)), "newer"),
        (json.dumps({"schema_version": SCHEMA_VERSION}), "field \\(top level\\): '.*' is a required property"),
        (json.dumps(minimal_payload(example="mnist", test={"loss": 1.0, "accuracy": 0.9})), "not 'xor'"),
        (
            json.dumps(minimal_payload(history={"loss": [1.0, "x"]})),
            r"field history\.loss\[1\]: 'x' is not of type 'number'",
        ),
        (json.dumps(minimal_payload(epochs="200")), "field epochs: '200' is not of type 'integer'"),
        (json.dumps(minimal_payload(test={"loss": 1.0})), "field test: 'binary_accuracy' is a required property"),
        (json.dumps(minimal_payload(median_epoch_seconds=0)), "field median_epoch_seconds"),
        (
            json.dumps(minimal_payload(final_weights=[[[1, 2], [3, 4]], [0, 0], [[1], [2], [3]], [0]])),
            r"field final_weights\[2\]",
        ),
        (json.dumps(minimal_payload(backend="mxnet")), "field backend: 'mxnet' is not one of"),
    ],
)
def test_bad_results_files_are_named(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ResultsError, match=message) as caught:
        read_results(path, example="xor")
    assert str(path) in str(caught.value)


def test_misclassified_digits_outside_the_test_set_are_refused(tmp_path):
    path = tmp_path / "mnist.json"
    mnist = minimal_payload(example="mnist", test={"loss": 0.1, "accuracy": 0.98}, misclassified=[[10_000, 1, 2]])
    path.write_text(json.dumps(mnist))
    with pytest.raises(ResultsError, match=r"field misclassified\[0\]\[0\]"):
        read_results(path)


def typed_records():
    from multibackend.evolve.summary import Summary
    from multibackend.results import BenchResult, ParityResult, RunResult
    from multibackend.verify.model import VerifyReport

    return [RunResult, ParityResult, BenchResult, VerifyReport, Summary]


@pytest.mark.parametrize("record", typed_records(), ids=lambda record: record.__name__)
def test_a_typed_record_names_the_fields_of_its_schema_and_the_same_required_ones(record):
    from multibackend import schemas

    schema = schemas.schema(record.SCHEMA)
    assert set(record.file_fields()) == set(schema["properties"])
    required = {
        f.name
        for f in dataclasses.fields(record)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    assert required == set(schema["required"])


def test_a_run_result_reads_back_what_it_wrote_and_older_files_get_the_defaults(tmp_path):
    from multibackend.results import RunResult

    path = write_json_atomic(tmp_path / "xor-torch-cpu.json", minimal_payload(host="box"))
    run = read_results(path, example="xor")
    assert run.path == str(path) and run.host == "box" and run.solve_rate is None
    assert run.trainer == "fit" and run.metric == "accuracy"  # absent from files older than the loop
    assert RunResult.from_json(run.to_json()) == run and "path" not in run.to_json()
    assert "solve_rate" not in run.to_json()  # unset optional fields are not written as null


def test_a_set_of_outputs_is_written_whole_or_not_at_all(tmp_path):
    # The second file cannot be written (a file stands where its folder goes): the first keeps its old content.
    from multibackend.runtime.errors import OutputError
    from multibackend.runtime.outputs import write_together

    (tmp_path / "a.json").write_text("old")
    (tmp_path / "blocker").write_text("")
    with pytest.raises(OutputError, match="previous files are kept"):
        write_together({tmp_path / "a.json": "new", tmp_path / "blocker" / "b.md": "new"})
    assert (tmp_path / "a.json").read_text() == "old"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.json", "blocker"]  # no temporary file left
    write_together({tmp_path / "a.json": "new", tmp_path / "b.md": b"new"})
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.md").read_text() == "new"


def test_every_committed_evolve_summary_fits_its_contract_and_a_bad_one_does_not():
    from multibackend import schemas
    from multibackend.runtime.errors import ResultsError

    from .conftest import REPO

    summaries = sorted((REPO / "reports").rglob("evolve*.json"))
    assert len(summaries) >= 5
    for path in summaries:
        schemas.validate("evolve", json.loads(path.read_text()))
    summary = json.loads(summaries[0].read_text())
    for broken, field in (
        ({**summary, "storage": "postgresql://evolve:plain@db/evolve"}, "storage"),
        (
            {**summary, "front": [{"trial": 1, "params": 0, "genome": "", "validation_accuracy": 0.9}]},
            "front[0].params",
        ),
        ({key: value for key, value in summary.items() if key != "hypervolume"}, "(top level)"),
    ):
        with pytest.raises(ResultsError, match=re.escape(f"field {field}")):
            schemas.validate("evolve", broken)
