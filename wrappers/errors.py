"""The errors the wrappers raise: each names the env, seat or option at fault."""

from __future__ import annotations


class EnvError(ValueError):
    """The thing given is not an env we can wrap, or names no env."""


class SpaceError(ValueError):
    """An observation or action space the contract cannot represent."""


class ActionError(ValueError):
    """Actions of the wrong length, shape or range, or forbidden by the action mask."""


class RewardError(ValueError):
    """The env produced a NaN or infinite reward."""


class WorkerError(RuntimeError):
    """An env raised inside a worker process; the message holds its traceback."""
