"""How portlabel runs pyshark's tshark and dumpcap processes: exit statuses kept exact.

Two defects of pyshark 0.6 under asyncio's child watchers, fixed once here for the
tshark file backend and the pyshark live source:

- At the end of tshark's output pyshark kills a tshark that is just exiting;
  ``Popen.kill`` then reaps it before asyncio's watcher can ("Unknown child process pid
  N, will report returncode 255" on stderr), and pyshark reports the lost status as a
  crash. ``with_exact_exits(cls)`` awaits the exit first, so only a real failure
  (non-zero status) is reported.
- tshark's notice when run as root ("Running as user root...") becomes pyshark's "last
  error line", the text of any failure. It is not kept.

And one of asyncio's (Python < 3.12): pyshark opened on the main thread installs a
``SafeChildWatcher`` bound to that thread's loop, which is inactive for a capture run on
any other thread ("asyncio.get_child_watcher() is not activated"). ``ensure_child_watcher``
puts a ``ThreadedChildWatcher`` (it serves every loop) in its place when needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import warnings

ROOT_NOTICE = "Running as user"
EXIT_WAIT = 30.0  # seconds a process that has closed its output gets to exit


def with_exact_exits(capture_class: type) -> type:
    """A subclass of a pyshark capture class with the two fixes above."""

    class Exact(capture_class):
        async def _cleanup_subprocess(self, process):
            if process.returncode is None and (
                self._eof_reached or getattr(self, "_portlabel_stopping", False)
            ):
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(process.wait(), EXIT_WAIT)  # else it is killed
            return await super()._cleanup_subprocess(process)

        async def _handle_process_stderr_forever(self, stderr):
            while True:
                line = await stderr.readline()
                if not line:
                    break
                text = line.decode(errors="replace").strip()
                if text and not text.startswith(ROOT_NOTICE):
                    self._last_error_line = text

    Exact.__name__ = Exact.__qualname__ = f"Exact{capture_class.__name__}"
    return Exact


def ensure_child_watcher(force: bool = False) -> None:
    """Make asyncio's child watcher one that serves this thread's loop (see above)."""
    if sys.platform == "win32" or sys.version_info >= (3, 12):
        return  # no child watchers to mind there (3.12+ uses pidfds or threads itself)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if not force and asyncio.get_child_watcher().is_active():
            return
        watcher = asyncio.ThreadedChildWatcher()
        try:
            asyncio.set_child_watcher(watcher)
        except ValueError:  # closing the old one needs the main thread (a signal handler)
            asyncio.get_event_loop_policy()._watcher = watcher  # set it, old left unclosed
