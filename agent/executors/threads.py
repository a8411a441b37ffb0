"""A bounded pool of daemon threads for handlers that are plain functions.

concurrent.futures.ThreadPoolExecutor joins its threads when the
interpreter exits, so one handler stuck in a loop would keep the agent from
ever exiting after SIGTERM. These threads are daemons: a call that never
returns is abandoned at exit instead of waited for. Threads start on demand,
up to `max_threads`, and an idle thread ends after `idle_timeout_s`, so a
burst of blocking calls does not keep its threads resident.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

_WorkItem = tuple[Future[Any], Callable[[], Any]]


class DaemonThreadPool:
    """Runs calls on at most `max_threads` daemon threads; extra calls wait in a queue."""

    def __init__(self, max_threads: int, *, idle_timeout_s: float = 60.0) -> None:
        if max_threads < 1:
            raise ValueError(f"max_threads must be at least 1, got {max_threads}")
        self._max_threads = max_threads
        self._idle_timeout_s = idle_timeout_s
        self._queue: queue.SimpleQueue[_WorkItem | None] = queue.SimpleQueue()
        # The counters below change only under the lock.
        self._lock = threading.Lock()
        self._threads = 0
        # Threads blocked waiting for the next call.
        self._idle = 0
        # Calls submitted and not yet taken by a thread.
        self._queued = 0
        self._closed = False

    @property
    def threads(self) -> int:
        return self._threads

    def submit(self, call: Callable[[], Any]) -> Future[Any]:
        """Queue `call`; the future ends with its return value or exception.

        Cancelling the future before a thread has taken the call skips the
        call. Raises RuntimeError after `shutdown`.
        """
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the handler thread pool is shut down")
            self._queued += 1
            if self._queued > self._idle and self._threads < self._max_threads:
                self._threads += 1
                threading.Thread(target=self._work, name="handler", daemon=True).start()
        self._queue.put((future, call))
        return future

    def shutdown(self) -> None:
        """Stop taking calls; threads end once the queue is empty, without being waited for."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = self._threads
        for _ in range(threads):
            self._queue.put(None)

    def _work(self) -> None:
        while (item := self._next_item()) is not None:
            future, call = item
            if future.set_running_or_notify_cancel():
                _run(future, call)
            # Drop the references now: an idle thread must not keep a result alive.
            del future, call, item

    def _next_item(self) -> _WorkItem | None:
        """Wait for the next call; None when this thread should end."""
        while True:
            with self._lock:
                self._idle += 1
            try:
                item = self._queue.get(timeout=self._idle_timeout_s)
            except queue.Empty:
                with self._lock:
                    self._idle -= 1
                    # A call counted but not yet put may be waiting for this thread.
                    if self._queued > self._idle:
                        continue
                    self._threads -= 1
                    return None
            with self._lock:
                self._idle -= 1
                if item is None:
                    self._threads -= 1
                    return None
                self._queued -= 1
                return item


def _run(future: Future[Any], call: Callable[[], Any]) -> None:
    try:
        result = call()
    except BaseException as error:
        future.set_exception(error)
    else:
        future.set_result(result)
