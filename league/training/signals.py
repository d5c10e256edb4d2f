"""Ctrl-C and SIGTERM: stop after the step in progress, keep everything, exit.

The first SIGINT or SIGTERM only sets `StopSignals.received`; the loop sees it
between env steps (and learners between minibatches), the trainer writes a
checkpoint and the league state, prints how to resume, and raises
`KeyboardInterrupt` (SIGINT) or `SystemExit(143)` (SIGTERM). A second signal
acts at once: Ctrl-C raises `KeyboardInterrupt` wherever the run is, SIGTERM
ends the process. Handlers are installed only in the main thread (Python
delivers signals there) and the previous ones come back afterwards.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

SIGNALS = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


class StopSignals:
    """Context manager: records the first stop signal, lets a second one through."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = SIGNALS[signum]
        # A second signal of either kind acts at once.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def __bool__(self) -> bool:
        return self.received is not None
