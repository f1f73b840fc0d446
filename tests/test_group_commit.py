"""Group commit: callers queued while a batch runs share the next call; a bad item fails its own
caller only (with retry_alone), and every waiter gets an answer."""

from __future__ import annotations

import threading

import pytest

from multimodal.group_commit import GroupCommit


def _queued_callers(commit: GroupCommit, inputs: list[list[int]]) -> dict[int, object]:
    results: dict[int, object] = {}

    def call(i: int) -> None:
        try:
            results[i] = commit.submit(inputs[i])
        except Exception as exc:  # noqa: BLE001 - the test reads it
            results[i] = exc

    with commit._run_lock:  # a batch is "running": every caller queues behind it
        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(inputs))]
        for t in threads:
            t.start()
        while len(commit._queue) < len(inputs):
            pass
    for t in threads:
        t.join(10)
    return results


def test_queued_callers_share_one_call_and_get_their_own_results():
    batches = []
    commit = GroupCommit(lambda items: batches.append(list(items)) or [x * 10 for x in items])
    results = _queued_callers(commit, [[1, 2], [3], [4, 5, 6]])
    assert results == {0: [10, 20], 1: [30], 2: [40, 50, 60]}
    assert len(batches) == 1 and sorted(batches[0]) == [1, 2, 3, 4, 5, 6]
    assert commit.submit([7]) == [70]  # alone, it runs at once


def test_a_bad_item_fails_only_its_caller():
    def run(items):
        if -1 in items:
            raise ValueError("no negative ids")
        return items

    results = _queued_callers(GroupCommit(run), [[1], [-1], [2]])
    assert results[0] == [1] and results[2] == [2]
    assert isinstance(results[1], ValueError)


def test_without_retry_every_waiter_gets_the_failure():
    def run(items):
        raise RuntimeError("backend broke")

    results = _queued_callers(GroupCommit(run, retry_alone=False), [[1], [2]])
    assert all(isinstance(r, RuntimeError) for r in results.values())
    with pytest.raises(RuntimeError):
        GroupCommit(lambda items: items[:-1]).submit([1, 2])  # a result short: an error, not a hang
