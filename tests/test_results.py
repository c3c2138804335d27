import json

import pytest

from multibackend.results import REQUIRED_FIELDS, SCHEMA_VERSION, read_results, write_json_atomic
from multibackend.runtime.errors import ResultsError


def minimal_payload(**overrides):
    payload = {name: None for name in REQUIRED_FIELDS}
    payload.update(schema_version=SCHEMA_VERSION, example="xor", history={"loss": [1.0]}, test={"loss": 1.0})
    payload.update(overrides)
    return payload


def test_atomic_write_leaves_only_the_file(tmp_path):
    path = write_json_atomic(tmp_path / "sub" / "r.json", minimal_payload())
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]
    assert read_results(path)["example"] == "xor"


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
        (json.dumps({"schema_version": SCHEMA_VERSION}), "missing fields"),
        (json.dumps(minimal_payload(example="mnist")), "not 'xor'"),
    ],
)
def test_bad_results_files_are_named(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ResultsError, match=message) as caught:
        read_results(path, example="xor")
    assert str(path) in str(caught.value)
