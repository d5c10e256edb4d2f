"""Learning benchmark: the README defaults on connect four for 10 minutes.

Trains in chunks (`--chunk` seconds each, resuming the same run), and after
every chunk plays the top-rated learner against the random policy (taking its
most likely action, "greedy", and sampling its actions, "sampled") and, both
sides sampling, against the previous chunk's top learner, seats alternated.
Writes the learning curve to docs/learning_curve.png and prints a markdown
summary with 95% Wilson intervals. Evaluation time is not counted as training time.

    .venv/bin/python tests/benchmarks/bench_learning.py --minutes 10 --games 400
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import league
from league.evaluate import play_games

ENV = "classic/connect_four-v3"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--chunk", type=float, default=60.0, help="seconds between evaluations")
    parser.add_argument("--games", type=int, default=400, help="games in the final evaluation")
    parser.add_argument("--curve-games", type=int, default=100, help="games per curve point")
    parser.add_argument("--run-dir", default="runs/bench_learning")
    parser.add_argument("--plot", default="docs/learning_curve.png")
    parser.add_argument("--replot", metavar="LOG", help="only redraw the plot from a run's output")
    parser.add_argument(
        "--config",
        default="{}",
        help="JSON of `league.train` options to change from the defaults (a variant run)",
    )
    args = parser.parse_args()
    if args.replot:
        lines = Path(args.replot).read_text().splitlines()
        _plot([json.loads(line) for line in lines if line.startswith("{")], args.plot)
        return

    overrides = json.loads(args.config)
    run_dir = Path(args.run_dir)
    if run_dir.exists():
        raise SystemExit(f"{run_dir} exists; remove it or pass --run-dir")
    points = []
    previous = None
    trained = 0.0
    run = None
    while trained < args.minutes * 60 - 1:
        chunk = min(args.chunk, args.minutes * 60 - trained)
        start = time.monotonic()
        if run is None:
            run = league.train(
                ENV,
                num_policies=6,
                max_seconds=chunk,
                total_steps=0,
                run_dir=str(run_dir),
                progress=False,
                **overrides,
            )
        else:
            run = league.train(
                ENV, resume=str(run_dir), max_seconds=chunk, total_steps=0, progress=False
            )
        trained += time.monotonic() - start
        best = run.best()
        greedy = run.policy(best, deterministic=True)
        final_round = trained >= args.minutes * 60 - 1
        games = args.games if final_round else args.curve_games
        results = {}
        for name, handle in (("greedy", greedy), ("sampled", run.policy(best))):
            results[name] = play_games(
                ENV,
                handle,
                run.policy("random"),
                games=games,
                seed=len(points),
                policy_name=best,
                opponent_name="random",
            )
        vs_previous = None
        if previous is not None:
            # Sampled on both sides: two greedy players replay the same two games.
            vs_previous = play_games(
                ENV,
                run.policy(best),
                previous,
                games=args.curve_games,
                seed=len(points),
                policy_name=best,
                opponent_name="previous best",
            )
        points.append(
            {
                "seconds": round(trained, 1),
                "env_steps": run.env_steps,
                "best": best,
                "vs_random": results["greedy"].win_rate,
                "vs_random_ci": results["greedy"].interval(),
                "vs_random_sampled": results["sampled"].win_rate,
                "vs_random_sampled_ci": results["sampled"].interval(),
                "vs_random_games": games,
                "vs_previous": None if vs_previous is None else vs_previous.score,
                "vs_previous_actions": "sampled",
            }
        )
        print(json.dumps(points[-1]), flush=True)
        previous = copy.deepcopy(run.policy(best))

    final = points[-1]
    steps_per_s = final["env_steps"] / final["seconds"]
    print()
    print(
        "| minutes | env steps | env steps/s | top learner | actions | games vs random "
        "| win rate | 95% CI |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for kind, key in (("greedy", "vs_random"), ("sampled", "vs_random_sampled")):
        lo, hi = final[f"{key}_ci"]
        print(
            f"| {final['seconds'] / 60:.1f} | {final['env_steps']:,} | {steps_per_s:,.0f} | "
            f"{final['best']} | {kind} | {final['vs_random_games']} | {final[key]:.3f} | "
            f"{lo:.3f}-{hi:.3f} |"
        )
    _plot(points, args.plot)


def _plot(points: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [p["seconds"] / 60 for p in points]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, style, label in (
        ("vs_random", "o-", "top learner vs random, greedy (win rate, 95% CI)"),
        ("vs_random_sampled", "^-", "top learner vs random, sampled (win rate, 95% CI)"),
    ):
        ax.plot(minutes, [p[key] for p in points], style, label=label)
        lo = [p[f"{key}_ci"][0] for p in points]
        hi = [p[f"{key}_ci"][1] for p in points]
        ax.fill_between(minutes, lo, hi, alpha=0.15)
    prev = [
        (m, p["vs_previous"])
        for m, p in zip(minutes, points, strict=True)
        if p["vs_previous"] is not None
    ]
    if prev:
        xs, ys = zip(*prev, strict=True)
        # Runs before this key existed played the previous top greedily on both sides.
        actions = points[-1].get("vs_previous_actions", "greedy, 2 distinct games")
        ax.plot(xs, ys, "s--", label=f"top learner vs previous top ({actions}, score)")
    ax.axhline(0.95, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("training time (minutes, 2 CPU cores)")
    ax.set_ylabel("rate")
    ax.set_ylim(0, 1.02)
    ax.set_title("connect four, README defaults (6 PPO learners)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"curve: {path}")


if __name__ == "__main__":
    main()
