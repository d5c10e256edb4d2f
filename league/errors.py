"""The errors a user can cause and fix: one family, each naming the culprit and the fix.

`LeagueError` is the root of every expected error the league package raises
(a config that cannot work, a run directory that cannot be used, a damaged
league state, a policy that misbehaves). The command line prints such errors
as one line and exits non-zero; anything else is a bug and keeps its
traceback. Errors of the env wrappers (`wrappers.errors.WrapperError`) are the
other half of the family: `EXPECTED_ERRORS` holds both roots.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from wrappers.errors import WrapperError


class LeagueError(Exception):
    """An expected error: the message says what is wrong and how to fix it."""


class ConfigError(LeagueError, ValueError):
    """A config option that is unknown, out of range, or cannot work with the others."""


class RunDirError(LeagueError, ValueError):
    """The run directory cannot be used: missing, unwritable, full, taken, or inconsistent."""


class PolicyError(LeagueError, ValueError):
    """A policy acted in a way the env cannot take (an action it cannot use, or none)."""


class UnknownPolicyError(LeagueError, KeyError):
    """No policy of that id in the league (the message lists the ones there are)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MappingError(LeagueError, ValueError):
    """A mapping (the league's, or yours) seated a policy where it cannot play, or a
    match result does not fit the league."""


EXPECTED_ERRORS: tuple[type[Exception], ...] = (LeagueError, WrapperError)


def unknown_keys(kind: str, unknown: Iterable[str], valid: Iterable[str]) -> ConfigError:
    """ConfigError for keys of `kind` that do not exist, with the closest valid one."""
    valid = list(valid)
    unknown = [str(k) for k in unknown]
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, valid, n=1)
        if close:
            hints.append(f"{key!r} -> did you mean {close[0]!r}?")
    hint = f" ({'; '.join(hints)})" if hints else ""
    return ConfigError(
        f"unknown {kind} {', '.join(map(repr, unknown))}{hint}; valid: {', '.join(valid)}"
    )
