"""Events from the engine thread to the HTTP event loop with one wake-up per burst: the engine hands over a token
for every live row at each decode step, and waking the loop for each one (`call_soon_threadsafe` writes to the loop's
self-pipe) took ~15% of the engine thread at 32 rows."""

from __future__ import annotations

import asyncio
import threading


class Handoff:
    """Puts (queue, item) pairs on asyncio queues of one loop from another thread, in the order given."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self._lock = threading.Lock()
        self._pending: list[tuple[asyncio.Queue, object]] = []
        self._scheduled = False

    def put(self, queue: asyncio.Queue, item: object) -> None:
        with self._lock:
            self._pending.append((queue, item))
            if self._scheduled:  # the loop will deliver it with the others
                return
            self._scheduled = True
        self.loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            pending, self._pending, self._scheduled = self._pending, [], False
        for queue, item in pending:
            queue.put_nowait(item)
