"""Shared pieces of the peer baselines: env preprocessing, memory, JSON output.

Imported by scripts that run under two different virtual environments (the
main `.venv` with pettingzoo 1.27 / supersuit 3.11 / numpy 2, and `.bench/sf`
with pettingzoo 1.24.3 / supersuit 3.9.3 / numpy 1.26), so it only uses APIs
that both versions share.

Pistonball preprocessing (every baseline, and what our trainer must match):

    pistonball_v6.parallel_env(max_cycles=M, continuous=C)   # 20 seats, obs 457x120x3 uint8
    supersuit.color_reduction_v0(env, mode="B")               # blue channel -> 457x120 uint8
    supersuit.resize_v1(env, S, S, linear_interp=True)        # -> SxS uint8 (S = 84; "small": 32)
    supersuit.frame_stack_v1(env, K)                          # only when K > 1 -> SxSxK
    supersuit.dtype_v0(env, np.float32)
    supersuit.normalize_obs_v0(env, env_min=0.0, env_max=1.0)  # x / 255
    supersuit.flatten_v0(env)                                  # -> (S*S*K,) float32 in [0, 1]

Actions: continuous Box(-1, 1, (1,)) float32 by default (the env's default),
Discrete(3) with `--discrete`.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import threading
import time
import warnings
from typing import Any

import numpy as np

OBS_SIZES = {"84": 84, "small": 32}


def obs_size(name: str) -> int:
    """`--obs` value -> side of the square observation ("84", "small" = 32, or a number)."""
    return OBS_SIZES.get(name) or int(name)


def quiet() -> None:
    """Silence the per-step warnings PettingZoo/gymnasium print (illegal moves,
    out-of-bounds actions, deprecations): printing them would cost env time."""
    warnings.filterwarnings("ignore")
    try:
        from pettingzoo.utils.env_logger import EnvLogger

        EnvLogger.suppress_output()
    except Exception:
        pass


def pistonball(
    max_cycles: int = 125,
    obs: str = "84",
    frame_stack: int = 1,
    continuous: bool = True,
    raw: bool = False,
) -> Any:
    """The preprocessed pistonball parallel env described in the module docstring."""
    quiet()
    import supersuit as ss
    from pettingzoo.butterfly import pistonball_v6

    env = pistonball_v6.parallel_env(max_cycles=max_cycles, continuous=continuous)
    if raw:
        return env
    size = obs_size(obs)
    env = ss.color_reduction_v0(env, mode="B")
    env = ss.resize_v1(env, size, size, linear_interp=True)
    if frame_stack > 1:
        env = ss.frame_stack_v1(env, frame_stack)
    env = ss.dtype_v0(env, np.float32)
    env = ss.normalize_obs_v0(env, env_min=0.0, env_max=1.0)
    env = ss.flatten_v0(env)
    return env


def preprocessing_text(obs: str, frame_stack: int, raw: bool = False) -> str:
    if raw:
        return "raw 457x120x3 uint8 (no preprocessing)"
    size = obs_size(obs)
    stack = f" + frame_stack {frame_stack}" if frame_stack > 1 else ""
    return (
        f"color_reduction B + resize {size}x{size} bilinear{stack} + float32/255 + flatten "
        f"-> ({size * size * frame_stack},)"
    )


# ---------------------------------------------------------------- memory


def peak_rss_mb() -> float:
    """ru_maxrss of this process + ru_maxrss of its waited-for children (MiB).

    RUSAGE_CHILDREN reports the largest single descendant, not a sum, so for
    multi-process trainers see also `TreeRss` (sampled PSS sum over the tree)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + kids) / 1024.0


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tasks:  # a child belongs to the thread that forked it
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return kids


def _mem_kb(pid: int) -> int:
    """Proportional set size of a process (shared pages split between their
    users, so a sum over processes counts shared memory once); VmRSS where
    smaps_rollup is unavailable."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_pss_mb(pid: int | None = None) -> float:
    """Current summed PSS of a process and all its descendants (MiB; Linux /proc)."""
    pid = os.getpid() if pid is None else pid
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += _mem_kb(p)
        todo.extend(_children(p))
    return total / 1024.0


class TreeRss:
    """Samples the summed PSS of this process tree in a daemon thread; `.peak_mb`."""

    def __init__(self, interval: float = 0.5) -> None:
        self.peak_mb = 0.0
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, tree_pss_mb())
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, tree_pss_mb())


# ---------------------------------------------------------------- output


def versions(*names: str) -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def machine() -> dict[str, Any]:
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {"cpus": os.cpu_count(), "loadavg_1m_at_end": load, "host_platform": platform.platform()}


def emit(result: dict[str, Any]) -> None:
    """Print the one JSON result line on stdout (and flush)."""
    sys.stdout.write(json.dumps(result, sort_keys=False) + "\n")
    sys.stdout.flush()


class Stopwatch:
    """(time, count) marks; `rate()` over the marks after `skip` warm-up marks."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, int]] = []

    def mark(self, count: int, now: float | None = None) -> None:
        self.marks.append((time.perf_counter() if now is None else now, count))

    def window(self, skip: int = 0) -> tuple[int, float]:
        marks = self.marks[skip:] if len(self.marks) > skip + 1 else self.marks
        if len(marks) < 2:
            return 0, 0.0
        (t0, n0), (t1, n1) = marks[0], marks[-1]
        return n1 - n0, t1 - t0
