"""The run directory: every file of a run, and every check before a run touches one.

```
runs/<name>/config.json      the resolved TrainConfig ("planned": what was chosen, why)
            trainer.json     the commit point: counters and the checkpoint file of every policy
            league.json      league.json.bak   matches.csv.gz   leaderboard.csv   payoff.csv
            history.csv      ratings and returns at every checkpoint
            pbt.csv          ladder.csv   (with pbt, and with the reference ladder)
            ratings.png      payoff.png   returns.png   ladder.png   (runs of a minute or more)
            checkpoints/<policy>/<learner step>.pt
            tb/              TensorBoard scalars
```

A checkpoint writes the policy files, then the league's files, then
`trainer.json`; a run killed at any moment reopens at its last complete
checkpoint. `RunDir.create` refuses a directory that holds a run (or moves it
aside to a dated backup on request) before anything is written; `claim` makes
a training process the directory's only writer (an exclusive `flock` on
`.lock`, which the system drops when the process ends, however it ends; forked
env workers close their inherited copy), so a second run or resume into a
directory being trained stops before it writes;
`RunDir.open` finds a run (its config.json); `check_resumable` checks, before a
resume, that its files agree with each other.
Opening never writes, so a read-only copy of a run can be loaded.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import time
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from league._io import atomic_write_bytes, atomic_write_text
from league.errors import RunDirError
from league.records import STATE_FILE as LEAGUE_FILE

try:
    import fcntl
except ImportError:  # Windows has no fcntl: runs there are not guarded against a second writer
    fcntl = None

CONFIG_FILE = "config.json"
PLANNED = "planned"  # config.json: the options the planner chose, and why
COMMIT_FILE = "trainer.json"
CHECKPOINTS = "checkpoints"
# Any of these means the directory holds (part of) a run.
RUN_MARKERS = (CONFIG_FILE, COMMIT_FILE, LEAGUE_FILE, "matches.csv", "matches.csv.gz", CHECKPOINTS)
LOCK_FILE = ".lock"  # held (flock) by the process training into the directory; holds its pid
_HELD: weakref.WeakSet[io.TextIOWrapper] = weakref.WeakSet()  # lock files this process holds


def _drop_inherited_locks() -> None:
    """In a forked child (an env worker started with fork): close the lock files it
    inherited, so that a lock ends with the process that claimed it and not with the
    last of its workers (an flock belongs to every process that shares the file)."""
    for lock in list(_HELD):
        with contextlib.suppress(OSError):
            lock.close()
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_inherited_locks)


class RunDir:
    """One run's directory: its config, checkpoints and commit file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock: io.TextIOWrapper | None = None

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    # -- finding and claiming a directory ------------------------------------

    @classmethod
    def create(
        cls, path: str | os.PathLike[str], overwrite: bool = False, min_free_mb: int = 0
    ) -> RunDir:
        """A directory for a new run. One that holds a run is refused, or with
        `overwrite=True` moved aside to `<path>.backup-<time>` (never deleted)."""
        run = cls(path)
        if run.holds_run():
            if not overwrite:
                raise RunDirError(
                    f"{str(run.path)!r} already holds a run; pass resume={str(run.path)!r} to "
                    "continue it, run_dir= a new directory, or overwrite=True to move it aside "
                    "to a dated backup"
                )
            run.claim()  # refuses a run that another process is training right now
            run.release()
            backup = run.move_aside()
            print(f"league: moved the run that was in {run.path} to {backup}")
        run.check_writable(min_free_mb)
        return run

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RunDir:
        """An existing run (to resume or load); RunDirError if there is none."""
        run = cls(path)
        if not run.path.is_dir():
            raise RunDirError(f"run directory {str(run.path)!r} does not exist")
        if not (run.path / CONFIG_FILE).is_file():
            raise RunDirError(f"{str(run.path)!r} is not a run directory (it has no {CONFIG_FILE})")
        return run

    def claim(self) -> None:
        """Make this process the directory's only writer until `release` (or its end);
        RunDirError, naming the other process, if one is training into it now."""
        if self._lock is not None or fcntl is None:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        lock = open(self.path / LOCK_FILE, "a+")  # noqa: SIM115 (held open until release)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.seek(0)
            pid = lock.read().strip() or "unknown"
            lock.close()
            if pid == str(os.getpid()):  # a Trainer built here and not run (nor collected)
                who = "a Trainer of this process that has not run yet"
            else:
                who = f"another process (pid {pid})"
            raise RunDirError(
                f"{str(self.path)!r} is being trained by {who}; wait for it to end (or stop "
                "it: it saves on Ctrl-C or SIGTERM), or pass run_dir= another directory"
            ) from None
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        self._lock = lock
        _HELD.add(lock)

    def release(self) -> None:
        """Let another process train into the directory (see `claim`)."""
        if self._lock is not None:
            _HELD.discard(self._lock)
            with contextlib.suppress(OSError):
                self._lock.close()  # closing the file drops the flock
            self._lock = None

    def holds_run(self) -> bool:
        return any((self.path / name).exists() for name in RUN_MARKERS)

    def move_aside(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        backup = self.path.with_name(f"{self.path.name}.backup-{stamp}")
        n = 1
        while backup.exists():
            n += 1
            backup = self.path.with_name(f"{self.path.name}.backup-{stamp}-{n}")
        self.path.rename(backup)
        return backup

    def check_writable(self, min_free_mb: int = 0) -> None:
        """Fail before training when the directory cannot hold a run."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_bytes(b"x")
            probe.unlink()
        except OSError as err:
            raise RunDirError(
                f"run directory {str(self.path)!r} is not writable ({err.strerror}); "
                "pass run_dir= a directory you can write to"
            ) from err
        free_mb = shutil.disk_usage(self.path).free // 2**20
        if free_mb < min_free_mb:
            raise RunDirError(
                f"run directory {str(self.path)!r} has only {free_mb} MiB free; at least "
                f"{min_free_mb} MiB (min_free_mb) are needed for checkpoints: free some space "
                "or pass run_dir= on another disk"
            )

    # -- config and commit file ----------------------------------------------

    def read_config(self) -> dict[str, Any]:
        """The run's TrainConfig as data (without the planner's reasons)."""
        config = _read_json(self.path / CONFIG_FILE)
        config.pop(PLANNED, None)
        return config

    def read_planned(self) -> dict[str, str]:
        """The options the planner chose for the run (option -> why); {} for runs
        that predate the record."""
        return _read_json(self.path / CONFIG_FILE).get(PLANNED, {})

    def write_config(self, data: dict[str, Any], planned: dict[str, str] | None = None) -> None:
        data = {**data, PLANNED: planned or {}}
        text = json.dumps(data, indent=1, sort_keys=True, default=str)
        atomic_write_text(self.path / CONFIG_FILE, text)

    def has_commit(self) -> bool:
        return (self.path / COMMIT_FILE).is_file() and (self.path / LEAGUE_FILE).is_file()

    def read_commit(self) -> dict[str, Any]:
        """The last complete checkpoint's counters and files (trainer.json)."""
        if not self.has_commit():
            raise RunDirError(
                f"{str(self.path)!r} has no complete checkpoint ({COMMIT_FILE} and "
                f"{LEAGUE_FILE} are needed); start a new run instead"
            )
        return _read_json(self.path / COMMIT_FILE)

    def commit(self, state: dict[str, Any]) -> None:
        """Write trainer.json (the commit point), then drop checkpoint files it does not name."""
        atomic_write_text(self.path / COMMIT_FILE, json.dumps(state, indent=1, sort_keys=True))
        self._prune(state["files"].values())

    def check_resumable(self, env_name: str, seats: list[str], learner_ids: list[str]) -> None:
        """RunDirError, in one line naming the path and the mismatch, unless the last
        checkpoint belongs to this env and these learners and all its files exist."""
        state = self.read_commit()
        where = f"cannot resume {str(self.path)!r}"
        if state.get("env") != env_name or state.get("seats") != seats:
            raise RunDirError(
                f"{where}: it trained env {state.get('env')!r} with seats {state.get('seats')}, "
                f"not {env_name!r} with seats {seats}"
            )
        saved = list(state.get("learner_steps", {}))
        if sorted(saved) != sorted(learner_ids):
            raise RunDirError(
                f"{where}: its checkpoint holds learners {saved} but its config builds "
                f"{learner_ids}; the directory mixes two runs: start a new run"
            )
        missing = [f for f in state["files"].values() if not (self.path / f).is_file()]
        if missing:
            raise RunDirError(f"{where}: checkpoint files are missing: {missing}")

    # -- policy checkpoints --------------------------------------------------

    def policy_path(self, policy_id: str, step: int) -> Path:
        return self.path / CHECKPOINTS / policy_id.replace("/", "_") / f"{int(step)}.pt"

    def save_policy(self, policy_id: str, step: int, payload: dict[str, Any]) -> str:
        """Write one policy file; returns its path relative to the run directory."""
        path = self.policy_path(policy_id, step)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        atomic_write_bytes(path, buffer.getvalue())
        return self.relative(path)

    def load_policy(self, relative: str) -> dict[str, Any]:
        return torch.load(self.path / relative, map_location="cpu", weights_only=False)

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.path))

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    def _prune(self, keep_files: Iterable[str]) -> None:
        root = self.path / CHECKPOINTS
        if not root.is_dir():
            return
        keep = {self.path / f for f in keep_files}
        for folder in root.iterdir():
            for path in folder.glob("*.pt"):
                if path not in keep:
                    path.unlink(missing_ok=True)
            if not any(folder.iterdir()):
                folder.rmdir()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise RunDirError(f"{path} is damaged ({err}); it cannot be read") from err
