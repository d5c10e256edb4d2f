"""Training throughput, side by side in one run: ours (sync, async, batched) against
Stable-Baselines3 + SuperSuit, Sample Factory 2.1.1 and the plain PettingZoo loop.

Every entry runs in its own process (so peak memory is its own) for the same
number of seconds, one after the other, on the same machine; each prints one
JSON line and this driver prints a markdown table with ratios. Same env,
preprocessing, number of envs, network (MLP 64x64, Tanh, separate actor and
critic), rollout and batch size everywhere (tests/benchmarks/baselines/README.md).

    bash tests/benchmarks/setup_baselines.sh          # SB3 into .venv, Sample Factory venv
    .venv/bin/python tests/benchmarks/bench_training.py --seconds 90
    .venv/bin/python tests/benchmarks/bench_training.py --env pistonball --seconds 180 \
        --only plain,async2,sb3,sf    # a longer run of the entries a ratio compares

"Training rate" is seat-steps that a learner trained on, per wall second,
setup excluded: for ours, learner samples / time in the training loop.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASELINES = ROOT / "tests" / "benchmarks" / "baselines"
MAIN_PY = str(ROOT / ".venv" / "bin" / "python")
SF_PY = str(ROOT / ".bench" / "sf" / "bin" / "python")

PISTONBALL = {"num_envs": 4, "rollout": 64, "batch_size": 5120}
TICTACTOE = {"num_envs": 32, "rollout": 64, "batch_size": 2048}
# The learner every trainer runs (the baselines' MLP; bench_pistonball_update.py too).
PPO = {"hidden_sizes": [64, 64], "encoder": "mlp", "update_epochs": 4, "num_minibatches": 4}
# Our entries: (mode, batched, env worker processes).
OURS = {
    "sync0": ("sync", 0, 0),
    "sync2": ("sync", 0, 2),
    "async2": ("async", 0, 2),
    "sync_batched2": ("sync", 1, 2),
    "async_batched2": ("async", 1, 2),
}
ENTRIES = ("plain", *OURS, "sb3", "sf_plain", "sf")


def ours(env: str, seconds: float, mode: str, batched: bool, workers: int) -> dict:
    """Run our trainer for `seconds` and measure it (called in a child process)."""
    import resource
    import tempfile

    sys.path.insert(0, str(BASELINES))
    import _common

    import league

    _common.quiet()
    settings = PISTONBALL if env == "pistonball" else TICTACTOE
    env_fn = _pistonball if env == "pistonball" else "classic/tictactoe-v3"
    with tempfile.TemporaryDirectory() as run_dir:
        run = league.train(
            env_fn,
            policies=[{"algo": "ppo", **PPO}],
            # The baselines' learner and nothing else: tic-tac-toe's preset (eight board
            # views averaged, a stronger entropy bonus) would cost ours alone.
            preset=False,
            opponents=[],
            teams={f"piston_{i}": "pistons" for i in range(20)} if env == "pistonball" else None,
            mode=mode,
            batched=batched,
            mix_policies_in_one_env=False if batched else None,
            num_workers=workers,
            max_seconds=seconds,
            total_steps=0,
            run_dir=run_dir,
            progress=False,
            tensorboard=False,
            checkpoint_seconds=10**9,
            **settings,
        )
        committed = json.loads((Path(run.run_dir) / "trainer.json").read_text())
        trained = sum(committed["learner_steps"].values())
        usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        name = f"league {mode}{' batched' if batched else ''}, {workers} workers"
        return {
            "name": name,
            "env": env,
            "seat_steps_per_s": trained / committed["elapsed"],
            "trained_samples": trained,
            "seconds": committed["elapsed"],
            "peak_rss_mb": (usage + children) / 1024,
            **settings,
        }


def _pistonball():
    sys.path.insert(0, str(BASELINES))
    import _common

    return _common.pistonball(max_cycles=125, obs="84", continuous=True)


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _child(args: list[str], python: str = MAIN_PY, timeout: float = 900) -> dict | None:
    """Run one entry; beside its JSON line, the machine's median CPU use over its life
    (sampled every half second: setup is a minority of the samples, so the median is
    the steady state). Near 1.0 means every core was busy: a faster rate then needs
    less work per sample, not better overlap."""
    busy: list[float] = []
    done = threading.Event()

    def sample() -> None:
        before = _cpu_times()
        while not done.wait(0.5):
            now = _cpu_times()
            if now[1] > before[1]:
                busy.append((now[0] - before[0]) / (now[1] - before[1]))
            before = now

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out = subprocess.run(
            [python, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
        )
    finally:
        done.set()
        sampler.join()
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("{"):
            result = json.loads(line)
            if busy:
                result["machine_cpu_busy"] = round(statistics.median(busy), 3)
            return result
    print(f"# {args[0]} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--env", choices=["pistonball", "tictactoe", "both"], default="both")
    parser.add_argument("--ours-only", action="store_true")
    parser.add_argument(
        "--only",
        help=f"comma-separated entries to run (default: all): {','.join(ENTRIES)}",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        env, mode, batched, workers = args.child.split(",")
        print(json.dumps(ours(env, args.seconds, mode, batched == "1", int(workers))))
        return

    envs = ["pistonball", "tictactoe"] if args.env == "both" else [args.env]
    only = set(args.only.split(",")) if args.only else set(ENTRIES)
    unknown = only - set(ENTRIES)
    if unknown:
        parser.error(f"--only: unknown entries {sorted(unknown)}; choose from {ENTRIES}")
    if args.ours_only:
        only -= {"sb3", "sf_plain", "sf"}
    secs = str(args.seconds)
    rows = []
    for env in envs:
        results = []
        if "plain" in only:
            plain = [str(BASELINES / "plain_pettingzoo.py"), "--env", env, "--seconds", secs]
            results.append(_child(plain))
        for entry, (mode, batched, workers) in OURS.items():
            if entry not in only or (env == "tictactoe" and batched):
                continue  # tic-tac-toe: one learner in self-play, batched equals sync
            child = [__file__, "--seconds", secs, "--child", f"{env},{mode},{batched},{workers}"]
            results.append(_child(child))
        if env == "pistonball" and "sb3" in only:
            sb3 = [str(BASELINES / "sb3_supersuit.py"), "--seconds", secs, "--num-envs", "4"]
            results.append(_child(sb3))
        if os.path.exists(SF_PY) and "sf_plain" in only:
            sf_plain = [str(BASELINES / "plain_pettingzoo.py"), "--env", env, "--seconds", secs]
            if env == "tictactoe":
                sf_plain += ["--adapter", "sf"]
            sf_plain_result = _child(sf_plain, python=SF_PY)
            if sf_plain_result:
                sf_plain_result["name"] += " (sf venv)"
            results.append(sf_plain_result)
        if os.path.exists(SF_PY) and "sf" in only:
            sf = [str(BASELINES / "sf_pettingzoo.py"), "--env", env, "--seconds", secs]
            results.append(_child(sf, python=SF_PY))
        for r in results:
            if r:
                print(json.dumps(r), flush=True)
        rows.append((env, [r for r in results if r]))
    _table(rows)


def _table(rows: list) -> None:
    for env, results in rows:
        by_name = {r["name"]: r for r in results}
        plain = next((r for r in results if r["name"] == "plain_pettingzoo"), None)
        sb3 = by_name.get("sb3_supersuit")
        sf = by_name.get("sf_pettingzoo")
        print(f"\n### {env}\n")
        print(
            "| trainer | seat-steps/s | / plain loop | / SB3+SuperSuit | / Sample Factory | "
            "peak RSS MB | CPU busy |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for r in results:
            rate = r["seat_steps_per_s"]
            ratios = " | ".join(
                f"{rate / base['seat_steps_per_s']:.2f}x" if base else "-"
                for base in (plain, sb3, sf)
            )
            busy = r.get("machine_cpu_busy")
            busy = f"{busy:.0%}" if busy is not None else "-"
            rss = r.get("peak_rss_mb", 0)
            print(f"| {r['name']} | {rate:,.0f} | {ratios} | {rss:,.0f} | {busy} |")


if __name__ == "__main__":
    main()
