"""The errors the wrappers raise: each names the env, seat or option at fault.

`WrapperError` is their root, so a caller can tell a problem with the env or
its input (print the message, fix the input) from a bug (keep the traceback).
"""

from __future__ import annotations


class WrapperError(Exception):
    """An expected error of the env wrappers; the message says what to change."""


class EnvError(WrapperError, ValueError):
    """The thing given is not an env we can wrap, or names no env."""


class SpaceError(WrapperError, ValueError):
    """An observation or action space the contract cannot represent."""


class ActionError(WrapperError, ValueError):
    """Actions of the wrong length, shape or range, or forbidden by the action mask."""


class RewardError(WrapperError, ValueError):
    """The env produced a NaN or infinite reward."""


class WorkerError(WrapperError, RuntimeError):
    """An env raised inside a worker process; the message holds its traceback."""
