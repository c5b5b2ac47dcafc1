"""Running one pipeline stage ahead of the next in a background thread.

``prefetched(items)`` iterates ``items`` in a worker thread and hands the results over
through a small bounded queue, so the stage that produces them (reading and decoding
packet batches) runs while the consumer works on the previous one (folding batches into
flows, writing). This pays because both stages spend most of their time inside numpy and
pyarrow loops, which release the GIL: on two cores the two stages overlap instead of
adding up.

Order is kept, at most ``depth`` finished items wait in the queue (memory stays bounded;
neither thread keeps a reference to an item it has handed on, so an item lives from its
production until the consumer lets go of it, and no longer),
an exception raised by the producer is raised again in the consumer at the point the
failing item would have arrived, and leaving the consumer loop early (``break``, an
exception, Ctrl-C) stops the producer before its next item. The consumer waits for that
at most ``_LEAVE_WAIT_S``: a producer blocked in a read that may never return (a FIFO
nobody writes to) must not keep Ctrl-C from working; it is a daemon thread.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()
_POLL_S = 0.05  # how often a blocked producer checks whether the consumer went away
# how long a consumer that leaves early waits for the producer to notice; a producer stuck
# in a blocking read (a FIFO, a socket) is a daemon thread and is left to the process exit
_LEAVE_WAIT_S = 1.0


def prefetched(
    items: Iterable[T],
    depth: int = 2,
    name: str = "portlabel-prefetch",
    meanwhile: Callable[[], object] | None = None,
) -> Iterator[T]:
    """The items of ``items``, produced in a background thread up to ``depth`` ahead.

    ``meanwhile`` runs in the consumer's thread once the producer has started, before the
    first item is waited for: one-time work of the consumer's (imports, tables) then
    overlaps the producer's first items instead of delaying the first hand-over.
    """
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        source = iter(items)
        try:
            for item in source:
                if not put(([item], None)):  # in a box the consumer empties
                    return
                del item  # not held while the next one is produced
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put((_END, exc))
            return
        finally:  # a generator left early runs its cleanup here, in its own thread
            close = getattr(source, "close", None)
            if close is not None:
                close()
        put((_END, None))

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    drained = False
    try:
        if meanwhile is not None:
            meanwhile()
        while True:
            box, exc = handoff.get()
            if box is _END:
                drained = True
                if exc is not None:
                    raise exc
                return
            yield box.pop()  # this frame keeps no reference while the consumer works
    finally:
        stop.set()
        worker.join(None if drained else _LEAVE_WAIT_S)


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
