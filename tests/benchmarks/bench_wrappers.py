"""Seat-steps per second: a plain PettingZoo loop vs. `wrappers.vector` (serial
and with worker processes), on connect four (AEC), pistonball and simple_spread
(parallel). Run by hand; prints a markdown table (docs/benchmarks.md).

    .venv/bin/python tests/benchmarks/bench_wrappers.py --seconds 5 --rounds 5

A seat-step is one decision of a live seat: in the plain AEC loop the dead
steps (action None) are not counted. Every loop draws its random legal actions
the same way: uniform floats, then the argmax over the legal actions (masked
Discrete), floor(u * n) (unmasked Discrete) or low + u * (high - low) (Box).
The plain loop draws per decision; the vector loops draw for the whole batch
at once, as a policy would act on a batch.

Besides wall-clock rates the script measures CPU time per seat-step, summed
over the parent and the worker processes. On a machine shared with other
work, wall-clock rates move with the neighbours' load; CPU time per seat-step
mostly does not, so it shows the wrappers' own cost.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pettingzoo
from gymnasium import spaces

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import wrappers


def connect_four() -> Any:
    from pettingzoo.classic import connect_four_v3

    return connect_four_v3.env()


def pistonball() -> Any:
    from pettingzoo.butterfly import pistonball_v6

    return pistonball_v6.parallel_env()


def simple_spread() -> Any:
    from mpe2 import simple_spread_v3

    return simple_spread_v3.parallel_env()


ENVS: dict[str, Callable[[], Any]] = {
    "connect four (AEC)": connect_four,
    "pistonball (parallel, 20 seats)": pistonball,
    "simple_spread (parallel, 3 seats)": simple_spread,
}


@dataclass
class Run:
    """One timed window of one case."""

    seat_steps: int
    wall_s: float
    cpu_s: float

    @property
    def rate(self) -> float:
        return self.seat_steps / self.wall_s

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.seat_steps * 1e6


def _draw(space: spaces.Space, mask: np.ndarray | None, rng: np.random.Generator) -> Any:
    """One random legal action, by the same rule `_draw_batch` applies to a batch."""
    if isinstance(space, spaces.Discrete):
        if mask is not None:
            return int(np.argmax(rng.random(mask.shape[0]) * mask)) + int(space.start)
        return int(rng.random() * space.n) + int(space.start)
    u = rng.random(space.shape)
    return (space.low + u * (space.high - space.low)).astype(space.dtype)


def _draw_batch(
    space: spaces.Space, mask: np.ndarray | None, shape: tuple[int, ...], rng: np.random.Generator
) -> np.ndarray:
    if isinstance(space, spaces.Discrete):
        if mask is not None:
            return np.argmax(rng.random(mask.shape) * mask, axis=-1) + int(space.start)
        return (rng.random(shape) * space.n).astype(np.int64) + int(space.start)
    u = rng.random(shape + space.shape)
    return (space.low + u * (space.high - space.low)).astype(space.dtype)


def _cpu_seconds(pids: list[int]) -> float:
    """CPU time used so far by this process (all threads) and the processes `pids`."""
    total = time.process_time()
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def _timed(step: Callable[[], int], seconds: float, pids: list[int]) -> Run:
    warmup = time.perf_counter() + min(1.0, seconds / 5)
    while time.perf_counter() < warmup:
        step()
    seat_steps = 0
    cpu = _cpu_seconds(pids)
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        seat_steps += step()
    wall = time.perf_counter() - start
    return Run(seat_steps, wall, _cpu_seconds(pids) - cpu)


def plain_loop(env_fn: Callable[[], Any], seconds: float, seed: int) -> Run:
    """One env stepped by hand, the way PettingZoo's docs do it."""
    env = env_fn()
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    is_aec = isinstance(env, pettingzoo.AECEnv)
    action_spaces = {a: env.action_space(a) for a in env.possible_agents}

    def aec_steps() -> int:
        decisions = 0
        for _ in range(20):
            obs, _, term, trunc, info = env.last()
            if term or trunc:
                env.step(None)
                if not env.agents:
                    env.reset()
                continue
            agent = env.agent_selection
            mask = obs["action_mask"] if isinstance(obs, dict) else info.get("action_mask")
            env.step(_draw(action_spaces[agent], mask, rng))
            decisions += 1
        return decisions

    def parallel_step() -> int:
        actions = {a: _draw(action_spaces[a], None, rng) for a in env.agents}
        env.step(actions)
        if not env.agents:
            env.reset()
        return len(actions)

    try:
        return _timed(aec_steps if is_aec else parallel_step, seconds, [])
    finally:
        env.close()


def vector_loop(
    env_fn: Callable[[], Any], seconds: float, seed: int, num_envs: int, num_workers: int
) -> Run:
    """`wrappers.vector`, acting on every env each step."""
    vec = wrappers.vector(env_fn, num_envs=num_envs, num_workers=num_workers)
    rng = np.random.default_rng(seed)
    roles = [
        (vec.action_spaces[seats[0]], vec.actions[role], vec.action_masks[role])
        for role, seats in vec.role_seats.items()
    ]

    def step() -> int:
        for space, actions, masks in roles:
            actions[...] = _draw_batch(space, masks, actions.shape[:2], rng)
        decisions = int(vec.active.sum())
        vec.step()
        return decisions

    try:
        vec.reset(seed=seed)
        return _timed(step, seconds, [p.pid for p in getattr(vec, "workers", [])])
    finally:
        vec.close()


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}, pettingzoo {pettingzoo.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per case and round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the table shows medians")
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--env", action="append", choices=list(ENVS), help="default: all")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print(f"machine: {machine()}", flush=True)
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    cases = {
        "plain": lambda fn, r: plain_loop(fn, args.seconds, r),
        "serial": lambda fn, r: vector_loop(fn, args.seconds, r, args.num_envs, 0),
        "workers": lambda fn, r: vector_loop(fn, args.seconds, r, args.num_envs, args.num_workers),
    }
    table = []
    for name in args.env or list(ENVS):
        runs: dict[str, list[Run]] = {case: [] for case in cases}
        # Rounds interleave the cases so a neighbour's load hits all of them alike.
        for r in range(args.rounds):
            for case, run in cases.items():
                runs[case].append(run(ENVS[name], r))
            line = {case: f"{v[-1].rate:,.0f}/s {v[-1].cpu_us:.0f}us" for case, v in runs.items()}
            print(f"{name} round {r}: {line}", flush=True)
        table.append((name, runs))
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")

    def cell(runs: list[Run], plain: list[Run] | None) -> str:
        rate = statistics.median(x.rate for x in runs)
        best = max(x.rate for x in runs)
        cpu = statistics.median(x.cpu_us for x in runs)
        if plain is None:
            return f"{rate:,.0f} ({best:,.0f}) | {cpu:.0f}"
        ratio = rate / statistics.median(x.rate for x in plain)
        best_ratio = best / max(x.rate for x in plain)
        return f"{rate:,.0f} ({best:,.0f}) | **{ratio:.2f}x** ({best_ratio:.2f}x) | {cpu:.0f}"

    w = args.num_workers
    print(
        "| env | plain loop seat-steps/s | CPU µs per seat-step "
        f"| serial vector ({args.num_envs} envs) | vs plain | CPU µs "
        f"| {w} worker processes ({args.num_envs} envs) | vs plain | CPU µs, all processes |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, runs in table:
        print(
            f"| {name} | {cell(runs['plain'], None)} | {cell(runs['serial'], runs['plain'])} "
            f"| {cell(runs['workers'], runs['plain'])} |"
        )
    print(
        f"\nMedians of {args.rounds} interleaved rounds of {args.seconds:g} s per case (in "
        "brackets: the best round, and best vs best); rates are wall-clock."
    )


if __name__ == "__main__":
    main()
