"""Strength per CPU-minute: train a league, then play its top learner against the ladder.

For each named config and each seed, in its own process: `league.train` on the
env with the library's defaults plus the config's options, for the same
budget: `--minutes` of wall time, or `--steps` env steps (a step budget gives
every config the same training whatever else the machine is doing; the docs
give the wall time it equals at the default's measured rate); then the
leaderboard's top-rated learner (the rule fixed
before any run: never chosen by these evaluations) plays `--games` games
against every rung of the env's reference ladder, greedy, exactly half in
each seat, with 95% Wilson intervals. One JSON line per run goes to
`--out`; the end prints markdown tables per config, pooled over seeds (Wilson
intervals over all games) and across seeds (the mean of the seeds' scores with
a Student t interval, which counts how much seeds differ; docs/benchmarks.md).

    .venv/bin/python tests/benchmarks/bench_strength.py --env connect_four --minutes 10 \\
        --seeds 0,1,2,3 --config 'default={}' --config 'lone={"num_policies": 1, \\
        "league": {"strategy": "self_play"}}'

Configs are `name=JSON` of `league.train` options. Training time excludes the
ladder evaluations that run during training (they are off the training clock).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
ENVS = {"connect_four": "classic/connect_four-v3", "tictactoe": "classic/tictactoe-v3"}


def child(
    name: str,
    env: str,
    minutes: float,
    steps: int,
    seed: int,
    options: dict,
    games: int,
    keep: str | None = None,
) -> dict:
    import league
    from league.evaluate import wilson
    from league.ladder import evaluate_ladder, ladder_rungs
    from league.training.plan import EnvInfo

    env_kwargs, pad = options.get("env_kwargs") or None, options.get("pad", False)
    info = EnvInfo.probe(ENVS[env], pad=pad, env_kwargs=env_kwargs, measure=False)
    with tempfile.TemporaryDirectory() as tmp:
        # The config's name too: runs of two configs started in the same second differ.
        run_dir = f"{keep}/{name}_{env}_seed{seed}_{int(time.time())}" if keep else f"{tmp}/run"
        started = time.monotonic()
        run = league.train(
            ENVS[env],
            max_seconds=0 if steps else minutes * 60,
            total_steps=steps,
            seed=seed,
            run_dir=run_dir,
            progress=False,
            **options,
        )
        wall = time.monotonic() - started
        commit = json.loads(Path(run_dir, "trainer.json").read_text())
        config = json.loads(Path(run_dir, "config.json").read_text())
        board = run.leaderboard()
        top = run.best()
        obs_space, action_space = info.spaces[info.roles[0]]
        results = evaluate_ladder(
            ENVS[env],
            {top: run.policy(top, deterministic=True)},
            ladder_rungs(info.name, action_space, obs_space),
            games,
            seed=1000 + seed,
            env_kwargs=env_kwargs,
            pad=pad,
        )
    row = board[board["policy"] == top].iloc[0]
    return {
        "env": env,
        "seed": seed,
        "options": options,
        "minutes": minutes,
        "steps_budget": steps,
        "wall_seconds": round(wall, 1),
        "train_seconds": round(commit["elapsed"], 1),
        "env_steps": commit["env_steps"],
        "env_steps_per_s": round(commit["env_steps"] / commit["elapsed"]),
        "num_envs": config["num_envs"],
        "learner_steps": commit["learner_steps"],
        "snapshots": int((board["kind"] == "snapshot").sum()),
        "top": top,
        "top_league_role": row["league_role"],
        "ladder": {
            r.opponent: {
                "games": r.games,
                "wins": r.wins,
                "draws": r.draws,
                "losses": r.losses,
                "score": r.score,
                "win_rate": r.win_rate,
                "win_ci": wilson(r.wins, r.games),
                "by_seat": r.by_seat,
            }
            for r in results
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", choices=sorted(ENVS), default="connect_four")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=0, help="env-step budget (replaces minutes)")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--games", type=int, default=400)
    parser.add_argument("--config", action="append", default=[], help="name=JSON (repeatable)")
    parser.add_argument("--out", default=None, help="JSON lines (default docs/results/...)")
    parser.add_argument("--keep", metavar="DIR", help="keep each run directory under DIR")
    parser.add_argument("--table", metavar="JSONL", help="only print the tables of a results file")
    parser.add_argument(
        "--paired",
        nargs=2,
        metavar=("A", "B"),
        help="with --table: instead of the tables, config A's score minus config B's on every "
        "rung, per seed both ran, and the mean with a 95%% Student t interval; a config is "
        "every line of that name, whatever its round, as in the tables, or of any of several "
        "names joined by commas (one arm run under a new name on new seeds: u21,u22), and a "
        "seed both ran must have one line of each",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        job = json.loads(args.child)
        print(json.dumps(child(**job)), flush=True)
        return
    if args.paired and not args.table:
        parser.error("--paired compares the lines of a results file: give it with --table JSONL")
    if args.table:
        rows = [json.loads(line) for line in Path(args.table).read_text().splitlines() if line]
        if args.paired:
            paired(rows, *args.paired)
        else:
            table(rows)
        return
    out = Path(args.out or ROOT / "docs" / "results" / f"strength_{args.env}.jsonl")
    configs = dict(c.split("=", 1) for c in args.config) or {"default": "{}"}
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for name, options in configs.items():
            job = {
                "name": name,
                "env": args.env,
                "minutes": args.minutes,
                "steps": args.steps,
                "seed": seed,
                "options": json.loads(options),
                "games": args.games,
                "keep": args.keep,
            }
            proc = subprocess.run(
                [sys.executable, __file__, "--child", json.dumps(job)],
                capture_output=True,
                text=True,
                cwd=ROOT,
                env=dict(os.environ),
            )
            lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
            if not lines:
                print(f"# {name} seed {seed} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
                continue
            result = {"config": name, **json.loads(lines[-1])}
            rows.append(result)
            with open(out, "a") as f:
                f.write(json.dumps(result) + "\n")
            print(json.dumps(result), flush=True)
    table(rows)


def table(rows: list[dict]) -> None:
    rungs = list(dict.fromkeys(r for row in rows for r in row["ladder"]))
    print("\n| config | seed | env steps/s | top learner | " + " | ".join(rungs) + " |")
    print("| --- | ---: | ---: | --- |" + " ---: |" * len(rungs))
    for row in rows:
        cells = []
        for r in rungs:
            cell = row["ladder"][r]
            cells.append(f"{cell['score']:.3f} ({cell['wins']}/{cell['draws']}/{cell['losses']})")
        print(
            f"| {row['config']} | {row['seed']} | {row['env_steps_per_s']:,} | {row['top']} | "
            + " | ".join(cells)
            + " |"
        )
    print("\nPooled over seeds: win rate (95% CI), score\n")
    config_table(rows, rungs, pooled_cell)
    print("\nAcross seeds: mean of the seeds' scores (95% t interval over seeds)\n")
    config_table(rows, rungs, seed_cell)


def config_table(
    rows: list[dict], rungs: list[str], cell: Callable[[list[dict], str], str]
) -> None:
    """One markdown row per config: `cell(that config's rows, rung)` for every rung."""
    print("| config | seeds | " + " | ".join(rungs) + " |")
    print("| --- | ---: |" + " --- |" * len(rungs))
    for name in dict.fromkeys(row["config"] for row in rows):
        mine = [row for row in rows if row["config"] == name]
        print(f"| {name} | {len(mine)} | " + " | ".join(cell(mine, r) for r in rungs) + " |")


def pooled_cell(rows: list[dict], rung: str) -> str:
    """Win rate over all the games of `rows`, its 95% Wilson interval, and the score."""
    from league.evaluate import wilson

    wins = sum(row["ladder"][rung]["wins"] for row in rows)
    games = sum(row["ladder"][rung]["games"] for row in rows)
    score = sum(row["ladder"][rung]["score"] * row["ladder"][rung]["games"] for row in rows)
    lo, hi = wilson(wins, games)
    return f"{wins / games:.3f} ({lo:.3f}-{hi:.3f}), {score / games:.3f}"


def seed_cell(rows: list[dict], rung: str) -> str:
    """Mean over seeds of each seed's score (win 1, draw 1/2), with a Student t 95%
    interval. The pooled Wilson interval counts only game-to-game chance; training
    seeds differ by more (docs/benchmarks.md, round 13), and this interval counts that."""
    scores = np.array([score(row, rung) for row in rows])
    if len(scores) < 2:
        return f"{scores.mean():.3f}"
    lo, hi = t_interval(scores)
    return f"{scores.mean():.3f} ({lo:.3f}-{hi:.3f})"


def paired(rows: list[dict], a: str, b: str) -> None:
    """Config `a`'s score minus config `b`'s on every rung, per seed both ran, then the mean
    difference with a Student t 95% interval over those seeds. Either may name several
    configs joined by commas, read as one. Pairing by seed takes out what a seed does to
    both configs, which the across-seeds table still counts."""
    names = list(dict.fromkeys(row["config"] for row in rows))
    for name in (*a.split(","), *b.split(",")):
        if name not in names:
            raise SystemExit(f"--paired: no config {name!r} in the file; it has {', '.join(names)}")
    mine = {name: [row for row in rows if row["config"] in name.split(",")] for name in (a, b)}
    seeds = sorted({row["seed"] for row in mine[a]} & {row["seed"] for row in mine[b]})
    if not seeds:
        raise SystemExit(
            f"--paired: {a} (seeds {sorted({row['seed'] for row in mine[a]})}) and {b} "
            f"(seeds {sorted({row['seed'] for row in mine[b]})}) ran no seed in common; "
            f"configs in the file: {', '.join(names)}"
        )
    run = {}
    for name in (a, b):
        for seed in seeds:
            lines = [row for row in mine[name] if row["seed"] == seed]
            if len(lines) > 1:
                raise SystemExit(
                    f"--paired: {name} has {len(lines)} lines for seed {seed} (rounds "
                    f"{[row.get('round') for row in lines]}, step budgets "
                    f"{[row.get('steps_budget') for row in lines]}); pairing needs one line "
                    "per config and seed"
                )
            run[name, seed] = lines[0]
    rungs = [
        r for r in run[a, seeds[0]]["ladder"] if all(r in row["ladder"] for row in run.values())
    ]
    diffs = {r: np.array([score(run[a, s], r) - score(run[b, s], r) for s in seeds]) for r in rungs}
    print(
        f"\n{a} minus {b}: score per seed, and the mean over the {len(seeds)} seeds both ran "
        "(95% t interval)\n"
    )
    print("| seed | " + " | ".join(rungs) + " |")
    print("| ---: |" + " ---: |" * len(rungs))
    for i, seed in enumerate(seeds):
        print(f"| {seed} | " + " | ".join(f"{diffs[r][i]:+.3f}" for r in rungs) + " |")
    cells = []
    for r in rungs:
        mean = diffs[r].mean()
        if len(seeds) < 2:
            cells.append(f"{mean:+.3f}")
            continue
        lo, hi = t_interval(diffs[r])
        cells.append(f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    print(f"| mean, {len(seeds)} seeds | " + " | ".join(cells) + " |")


def score(row: dict, rung: str) -> float:
    """One run's score on a rung (win 1, draw 1/2, loss 0, over its games)."""
    return row["ladder"][rung]["score"]


def t_interval(values: np.ndarray) -> tuple[float, float]:
    """The Student t 95% interval of the mean of `values` (at least two)."""
    from scipy import stats

    mean = values.mean()
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return mean - half, mean + half


if __name__ == "__main__":
    main()
