"""Sharing the cores among processes side by side (`runtime.cores`): disjoint shares, and pinning that ends."""

import os

import pytest

from multibackend.runtime import cores

needs_affinity = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="the system cannot pin a process")


@needs_affinity
def test_the_cores_are_split_into_disjoint_equal_shares_in_order(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {7, 2, 3, 5, 11})
    assert cores.core_shares(2) == [(2, 3), (5, 7)]
    assert cores.core_shares(5) == [(2,), (3,), (5,), (7,), (11,)]
    assert cores.core_shares(6) == []  # more processes than cores: none is pinned
    assert cores.core_shares(1) == []


@needs_affinity
def test_a_pinned_block_runs_on_its_cores_and_gets_its_cores_back():
    before = os.sched_getaffinity(0)
    last = max(before)
    with cores.pinned_to_cores((last,)):
        assert os.sched_getaffinity(0) == {last}
    assert os.sched_getaffinity(0) == before
    with cores.pinned_to_cores(()):
        assert os.sched_getaffinity(0) == before
