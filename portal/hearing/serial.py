"""Work done in order, on a thread of its own that runs while there is work."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)


class Serial:
    """Runs tasks one after another on a thread of its own, started when work comes: one
    hearing's tasks never overlap, and whoever submits never waits for them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._tasks: deque[Callable[[], None]] = deque()
        self._running = False

    def submit(self, task: Callable[[], None]) -> None:
        with self._lock:
            self._tasks.append(task)
            if self._running:
                return
            self._running = True
        threading.Thread(target=self._run, name=self.name, daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._tasks:
                    self._running = False
                    return
                task = self._tasks.popleft()
            try:
                task()
            except Exception:  # a task reports its own errors; this keeps the thread going
                log.exception("%s: a task failed", self.name)

    @property
    def idle(self) -> bool:
        """Nothing waits to run (the task running now, if any, is not counted)."""
        with self._lock:
            return not self._tasks
