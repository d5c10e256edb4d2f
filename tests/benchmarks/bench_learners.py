"""How far apart a run's learners are, and whether games among them rank them.

The leaderboard picks a run's top learner by rating. This plays every learner
of each run against every rung of the env's reference ladder (`--games` a
rung, greedy, half in each seat), and, with `--pair-games N`, a round-robin
among the learners alone (N games a pair, greedy, half in each seat, from the
ladder's random openings): a learner's tournament score is its mean score over
the others. One JSON line per learner goes to `--out`; the end prints, per
run, each learner's ladder scores and tournament score beside the
leaderboard's pick, and the Spearman correlation between tournament and
ladder ranks (taken within each run) over all learners. Round 44d of
docs/benchmarks.md ran it on four kept runs.

    .venv/bin/python tests/benchmarks/bench_learners.py runs/h44/* --games 200 --pair-games 100
"""

from __future__ import annotations

import argparse
import itertools
import json
from typing import Any

import numpy as np
from scipy.stats import rankdata

import league
from league.evaluate import play_games
from league.ladder import OPENING_PLIES, evaluate_ladder, ladder_rungs
from league.training.plan import EnvInfo


def tournament(
    env_fn: Any, handles: dict[str, Any], games: int, seed: int = 0, opening_plies: int = 0
) -> dict[str, float]:
    """Every pair plays `games` games; each player's mean score over its opponents."""
    scores: dict[str, list[float]] = {name: [] for name in handles}
    for a, b in itertools.combinations(handles, 2):
        result = play_games(
            env_fn,
            handles[a],
            handles[b],
            games=games,
            seed=seed,
            policy_name=a,
            opponent_name=b,
            opening_plies=opening_plies,
        )
        scores[a].append(result.score)
        scores[b].append(1.0 - result.score)
    return {name: float(np.mean(s)) for name, s in scores.items()}


def within_run_ranks(values: list[float]) -> np.ndarray:
    """Ranks 0..n-1, ties sharing their mean rank."""
    return rankdata(values) - 1.0


def measure(run_dir: str, games: int, pair_games: int, seed: int) -> list[dict[str, Any]]:
    run = league.load(run_dir)
    env_fn = run.config.env
    env = EnvInfo.probe(env_fn, run.config.pad, run.config.env_kwargs, measure=False)
    obs_space, action_space = env.spaces[env.roles[0]]
    board = run.leaderboard()
    learners = list(board[board["kind"] == "learner"]["policy"])
    handles = {pid: run.policy(pid, deterministic=True) for pid in learners}
    ladder = evaluate_ladder(
        env_fn,
        handles,
        ladder_rungs(env.name, action_space, obs_space),
        games,
        seed=seed,
        env_kwargs=run.config.env_kwargs or None,
        pad=run.config.pad,
    )
    plies = OPENING_PLIES.get(env.name, 0)
    pairs = tournament(env_fn, handles, pair_games, seed, plies) if pair_games else {}
    return [
        {
            "run": str(run_dir),
            "seed": run.config.seed,
            "policy": pid,
            "leaderboard_top": pid == learners[0],
            "ladder_games": games,
            "ladder": {r.opponent: r.score for r in ladder if r.policy == pid},
            "tournament_score": pairs.get(pid),
            "tournament_games_per_pair": pair_games or None,
        }
        for pid in learners
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--games", type=int, default=200, help="ladder games a rung")
    parser.add_argument("--pair-games", type=int, default=0, help="round-robin games a pair")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="append one JSON line per learner")
    args = parser.parse_args()
    lines = [
        line
        for run_dir in args.runs
        for line in measure(run_dir, args.games, args.pair_games, args.seed)
    ]
    if args.out:
        with open(args.out, "a") as f:
            f.writelines(json.dumps(line) + "\n" for line in lines)
    for line in lines:
        top = " (leaderboard's top)" if line["leaderboard_top"] else ""
        ladder = " ".join(f"{rung}={score:.3f}" for rung, score in line["ladder"].items())
        pairs = (
            ""
            if line["tournament_score"] is None
            else f" tournament={line['tournament_score']:.3f}"
        )
        print(f"{line['run']} {line['policy']}{top}: {ladder}{pairs}")
    if args.pair_games:
        for rung in lines[0]["ladder"]:
            t_ranks, l_ranks = [], []
            for run_dir in args.runs:
                rows = [line for line in lines if line["run"] == str(run_dir)]
                t_ranks.extend(within_run_ranks([row["tournament_score"] for row in rows]))
                l_ranks.extend(within_run_ranks([row["ladder"][rung] for row in rows]))
            if np.ptp(l_ranks) == 0 or np.ptp(t_ranks) == 0:
                print(f"Spearman, tournament against {rung}: none (every learner ranks alike)")
            else:
                rho = np.corrcoef(t_ranks, l_ranks)[0, 1]
                print(f"Spearman, tournament against {rung}: {rho:+.2f}")


if __name__ == "__main__":
    main()
