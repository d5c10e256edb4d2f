"""Tic-tac-toe against every line perfect play can choose: the exact loss rate and the holes.

The ladder's perfect player breaks ties at random, so 400 games sample its
lines. This walks all of them instead: from each seat, the perfect player
takes each of its best moves in turn, a learner its greedy move. It gives,
for every learner of each run (or the policies named with --policies):

- the exact probability of losing to the ladder's perfect player, averaged
  over the two seats, as the ladder plays them (half the games in each seat,
  ties broken uniformly at random): the number 400 ladder games estimate;
- the holes: the positions where the learner's move turns a draw into a
  loss (a symmetric policy's holes come in symmetric sets).

    .venv/bin/python tests/benchmarks/bench_holes.py runs/a runs/b [--policies p0,p3]
"""

from __future__ import annotations

import argparse
import json
from functools import cache

import numpy as np

import league
from league.bots import TICTACTOE_LINES, TicTacToePerfect


def board_obs(mine: int, theirs: int) -> tuple[np.ndarray, np.ndarray]:
    """The env's observation (3, 3, 2) and action mask of a position given as bitboards."""
    cells = np.arange(9)
    obs = np.stack([mine >> cells & 1, theirs >> cells & 1], axis=-1).reshape(3, 3, 2)
    return obs.astype(np.int8), (mine | theirs) >> cells & 1 == 0


def show(first: int, second: int) -> str:
    """A position as rows of X (the first player), O and '.'."""
    marks = ["X" if first >> c & 1 else "O" if second >> c & 1 else "." for c in range(9)]
    return "/".join("".join(marks[r * 3 : r * 3 + 3]) for r in range(3))


def check(policy) -> tuple[float, list[tuple[str, int]]]:
    """(loss probability averaged over both seats, holes as (position, move played))."""
    holes: set[tuple[str, int]] = set()
    perfect = TicTacToePerfect()

    @cache
    def move(mine: int, theirs: int) -> int:
        obs, mask = board_obs(mine, theirs)
        return int(policy.act_batch(obs[None], mask[None])[0])

    def lose(mine: int, theirs: int, learner: bool, learner_first: bool) -> float:
        """P(the learner loses) from here, the player to move holding `mine`."""
        if any(theirs & line == line for line in TICTACTOE_LINES):
            return 1.0 if learner else 0.0  # the player who just moved has won
        if (mine | theirs) == 0x1FF:
            return 0.0
        scores = perfect.move_scores(*board_obs(mine, theirs))
        if learner:
            cell = move(mine, theirs)
            if max(scores.values()) >= 0 > scores[cell]:
                x, o = (mine, theirs) if learner_first else (theirs, mine)
                holes.add((show(x, o), cell))
            return lose(theirs, mine | 1 << cell, False, learner_first)
        best = [c for c, score in scores.items() if score == max(scores.values())]
        return float(np.mean([lose(theirs, mine | 1 << c, True, learner_first) for c in best]))

    rate = (lose(0, 0, True, True) + lose(0, 0, False, False)) / 2
    return rate, sorted(holes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="tic-tac-toe run directories")
    parser.add_argument("--policies", help="comma-separated ids (default: every learner)")
    parser.add_argument("--out", help="append one JSON line per run to this file")
    args = parser.parse_args()
    for path in args.runs:
        run = league.load(path)
        board = run.leaderboard()
        ids = (
            args.policies.split(",")
            if args.policies
            else list(board[board["kind"] == "learner"]["policy"])
        )
        top = run.best()
        rows = {}
        print(f"\n{path} (top-rated learner: {top})\n")
        print("| policy | loss rate against perfect play | holes | first hole |")
        print("| --- | ---: | ---: | --- |")
        for pid in ids:
            rate, holes = check(run.policy(pid, deterministic=True))
            first = f"{holes[0][0]}, plays {holes[0][1]}" if holes else ""
            name = f"{pid} (top)" if pid == top else pid
            print(f"| {name} | {rate:.4f} | {len(holes)} | {first} |")
            rows[pid] = {"loss_rate": rate, "holes": len(holes)}
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps({"run": path, "top": top, "policies": rows}) + "\n")


if __name__ == "__main__":
    main()
