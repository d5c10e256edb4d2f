"""A population at the cost of one policy: training rate on connect four, side by side.

In one run, each entry in its own process for the same wall time, entries
interleaved round by round so that a slow stretch of the machine hits them all:

- the plain PettingZoo loop (one core, random legal moves): the env's own rate;
- "previous path": this code with the previous milestone's defaults (one model
  per learner, 96 envs stepped in the training process), and, with
  `--previous-checkout DIR`, that milestone's own code (a git worktree of it);
- the current defaults (stacked learners, envs and workers chosen at start),
  without connect four's preset (`preset=False`: the MLP learners, the
  machinery every env gets);
- scaling: the same with 1, 2, 6, 16 and 32 learners;
- with `--envs`, populations at a fixed env count (how the default env count
  for a population was chosen);
- with `--modes`, only the three-line call (preset on) in sync and async mode.

    .venv/bin/python tests/benchmarks/bench_population.py --seconds 60 --rounds 2 \\
        --previous-checkout /tmp/previous   # git worktree add /tmp/previous a51deae
    .venv/bin/python tests/benchmarks/bench_population.py --modes --seconds 60 --rounds 2

Rate = env steps per second of training-loop time (trainer.json's env_steps /
elapsed); each learner trains on every sample it collects. Peak RSS covers the
training process and its env workers. This code's runs also record where the
loop's time goes (`time_shares`: handing actions to the env workers, waiting
for them, acting, learning, the rest; bench_ray.py's `Timing`). Prints one
JSON line per measurement and a markdown table of medians with ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "benchmarks" / "baselines"))
ENV = "classic/connect_four-v3"
PREVIOUS_DEFAULTS = {"stack": False, "num_workers": 0, "num_envs": 96}


def train(seconds: float, options: dict, timed: bool, env: str = ENV) -> dict:
    """One training run in this process; called in a child process. `timed`: also the
    shares of the loop's time in env send/wait, acting and learning (bench_ray's Timing,
    which wraps this code's objects; not for a previous checkout)."""
    import league

    observers = []
    if timed:
        from bench_ray import Timing

        observers.append(Timing())
    with tempfile.TemporaryDirectory() as tmp:
        league.train(
            env,
            max_seconds=seconds,
            total_steps=0,
            run_dir=f"{tmp}/run",
            progress=False,
            tensorboard=False,
            **({"observers": observers} if timed else {}),  # a previous checkout has none
            **options,
        )
        commit = json.loads(Path(f"{tmp}/run/trainer.json").read_text())
        config = json.loads(Path(f"{tmp}/run/config.json").read_text())
    rss = sum(
        resource.getrusage(who).ru_maxrss
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    learners = options.get("num_policies", 6)
    return {
        "env_steps": commit["env_steps"],
        "env_steps_per_s": commit["env_steps"] / commit["elapsed"],
        "trained_samples": sum(commit["learner_steps"].values()),
        "seconds": commit["elapsed"],
        "peak_rss_mb": rss / 1024,
        "rss_mb_per_learner": rss / 1024 / learners,
        "num_envs": config.get("num_envs"),
        "num_workers": config.get("num_workers"),
        **({"time_shares": observers[0].fractions(commit["elapsed"])} if timed else {}),
    }


def plain(seconds: float) -> dict:
    """The plain PettingZoo loop on connect four: random legal moves, one core."""
    import time

    import numpy as np
    from pettingzoo.classic import connect_four_v3

    env = connect_four_v3.env()
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _agent in env.agent_iter():
            obs, _, terminated, truncated, _ = env.last()
            if terminated or truncated:
                action = None
            else:
                mask = obs["action_mask"]
                action = int(np.argmax(np.where(mask, rng.random(len(mask)), -1.0)))
                steps += 1
            env.step(action)
        env.reset()
    return {"env_steps_per_s": steps / (time.perf_counter() - started)}


def child(
    name: str,
    seconds: float,
    options: dict,
    checkout: str | None = None,
    env: str = ENV,
    timed: bool = True,
) -> dict | None:
    """`train` (or `plain`) in a fresh process: one JSON line of results, or None.
    `timed=False` leaves out the time shares (their wrappers cost a little)."""
    environ = dict(os.environ)
    if checkout:
        environ["PYTHONPATH"] = checkout
    else:
        # The training machinery's rate, on the MLP learners every env gets without a
        # preset (connect four's own, board CNN learners with the mirror averaged, trains
        # at about 0.56x; docs/benchmarks.md). A previous checkout has no presets.
        options = {"preset": False, **options}
    timed = timed and checkout is None
    job = {"name": name, "seconds": seconds, "options": options, "timed": timed}
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps({**job, "env": env})],
        capture_output=True,
        text=True,
        env=environ,
        cwd=checkout or ROOT,
        timeout=seconds * 4 + 300,
    )
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("{"):
            return {"name": name, **json.loads(line)}
    print(f"# {name} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--previous-checkout", help="a checkout of the previous milestone")
    parser.add_argument("--scaling", default="1,2,6,16,32")
    parser.add_argument(
        "--envs",
        default="",
        help="extra cases at a fixed env count, LEARNERS:ENVS,... (e.g. 6:192,6:384)",
    )
    parser.add_argument(
        "--modes",
        action="store_true",
        help="only the three-line call (connect four's preset on, seed 28) in sync and async "
        "mode, alternated S A A S ...: env steps and trained samples per second of each",
    )
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "population.jsonl"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        job = json.loads(args.child)
        if job["name"] == "plain":
            print(json.dumps(plain(job["seconds"])))
        else:
            print(json.dumps(train(job["seconds"], job["options"], job["timed"], job["env"])))
        return
    if args.modes:
        modes(args.seconds, args.rounds, args.out)
        return

    cases: list[tuple[str, dict, str | None]] = [("plain", {}, None)]
    if args.previous_checkout:
        cases.append(("previous code (defaults then)", {}, args.previous_checkout))
    cases.append(("previous defaults (this code)", PREVIOUS_DEFAULTS, None))
    for n in [int(x) for x in args.scaling.split(",")]:
        cases.append((f"defaults, {n} learners", {"num_policies": n}, None))
    for case in filter(None, args.envs.split(",")):
        n, envs = (int(x) for x in case.split(":"))
        cases.append((f"{n} learners, {envs} envs", {"num_policies": n, "num_envs": envs}, None))
    results: dict[str, list[dict]] = {name: [] for name, _, _ in cases}
    with open(args.out, "a") as log:
        for r in range(args.rounds):
            for name, options, checkout in cases:
                result = child(name, args.seconds, options, checkout)
                if result is None:
                    continue
                result["round"] = r
                results[name].append(result)
                print(json.dumps(result), flush=True)
                log.write(json.dumps(result) + "\n")
    table(results)


def modes(seconds: float, rounds: int, out: str) -> None:
    """Sync against async on the three-line call, in the order S A, A S, S A, ... so that
    a linear drift of the machine hits both alike; lines tagged "check": "modes-rate"."""
    rates: dict[str, list[tuple[float, float]]] = {"sync": [], "async": []}
    with open(out, "a") as log:
        for r in range(rounds):
            for mode in ("sync", "async") if r % 2 == 0 else ("async", "sync"):
                options = {"preset": True, "mode": mode, "seed": 28}
                result = child(f"three-line call, {mode}", seconds, options, timed=False)
                if result is None:
                    continue
                result.update(check="modes-rate", repeat=r, mode=mode)
                result["samples_per_s"] = result["trained_samples"] / result["seconds"]
                rates[mode].append((result["env_steps_per_s"], result["samples_per_s"]))
                print(json.dumps(result), flush=True)
                log.write(json.dumps(result) + "\n")
    print("\n| mode | env steps/s | trained samples/s |")
    print("| --- | --- | --- |")
    for mode, runs in rates.items():
        steps = ", ".join(f"{a:,.0f}" for a, _ in runs)
        print(f"| {mode} | {steps} | {', '.join(f'{b:,.0f}' for _, b in runs)} |")


def table(results: dict[str, list[dict]]) -> None:
    def median(name: str, key: str = "env_steps_per_s") -> float | None:
        values = [r[key] for r in results.get(name, []) if key in r]
        return statistics.median(values) if values else None

    plain_rate = median("plain")
    base = median("previous code (defaults then)") or median("previous defaults (this code)")
    one = median("defaults, 1 learners")
    print("\n| run | env steps/s | / plain loop | / previous | / 1 learner | peak RSS MB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in results:
        rate = median(name)
        if rate is None:
            continue
        ratios = [f"{rate / x:.2f}x" if x else "-" for x in (plain_rate, base, one)]
        rss = median(name, "peak_rss_mb")
        print(f"| {name} | {rate:,.0f} | {' | '.join(ratios)} | {rss or 0:,.0f} |")


if __name__ == "__main__":
    main()
