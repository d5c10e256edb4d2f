"""Connect-four tactics of trained runs: does the top learner take a win, block a loss?

The lookahead bot of the reference ladder wins by two rules: take an immediate
win, block the opponent's immediate win. This plays neither side of a game: it
collects fixed positions from seeded random-play games, `--positions` where
the side to move can win at once and as many where it cannot but the opponent
could (a block is needed), and reports how often each run's top-rated learner,
greedy, plays a winning (or blocking) column. Every run sees the same
positions. Chance is about 0.2 (one or two good columns of five to seven). Of the win
positions, those where the opponent also threatens an immediate win are
reported apart: how often the learner takes the win there, and how often it
blocks instead.

    .venv/bin/python tests/benchmarks/bench_tactics.py runs/a runs/b --positions 1000
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from pettingzoo.classic import connect_four_v3

import league
from league.bots import immediate_wins


def positions(count: int, seed: int) -> tuple[list, list]:
    """(board, mask, good columns) where the mover can win, and where it must block."""
    rng = np.random.default_rng(seed)
    wins: list = []
    blocks: list = []
    game = 0
    while len(wins) < count or len(blocks) < count:
        env = connect_four_v3.env()
        env.reset(seed=seed + game)
        game += 1
        for _agent in env.agent_iter():
            obs, _, terminated, truncated, _ = env.last()
            if terminated or truncated:
                env.step(None)
                continue
            board, mask = obs["observation"], obs["action_mask"]
            legal = np.flatnonzero(mask)
            win, block = immediate_wins(board, legal)
            if win and len(wins) < count:
                wins.append((board.copy(), mask.copy(), win))
            elif block and not win and len(blocks) < count:
                blocks.append((board.copy(), mask.copy(), block))
            env.step(int(rng.choice(legal)))
    return wins, blocks


def hit_rate(policy, cases: list) -> float:
    """How often `policy` plays one of each case's good columns."""
    obs = np.stack([board for board, _, _ in cases])
    masks = np.stack([mask for _, mask, _ in cases])
    actions = policy.act_batch(obs, masks)
    return float(np.mean([a in good for a, (_, _, good) in zip(actions, cases, strict=True)]))


def under_threat(wins: list) -> tuple[list, list]:
    """Of the win positions, those where the opponent threatens too, in a column that
    does not win: the same cases, and the same boards with those blocks as the good
    columns (a learner that plays one has blocked instead of winning)."""
    threatened, blocks = [], []
    for board, mask, win in wins:
        _, block = immediate_wins(board, np.flatnonzero(mask))
        instead = [col for col in block if col not in win]
        if instead:
            threatened.append((board, mask, win))
            blocks.append((board, mask, instead))
    return threatened, blocks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories of connect-four runs")
    parser.add_argument("--positions", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    wins, blocks = positions(args.positions, args.seed)
    threatened, blocks_instead = under_threat(wins)
    rows = []
    for path in args.runs:
        run = league.load(path)
        top = run.best()
        policy = run.policy(top, deterministic=True)
        row = {"run": path, "top": top, "env_steps": run.env_steps}
        row.update(win=hit_rate(policy, wins), block=hit_rate(policy, blocks))
        row.update(
            win_under_threat=hit_rate(policy, threatened),
            block_instead=hit_rate(policy, blocks_instead),
        )
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(f"\n{len(threatened)} of the {len(wins)} win positions have the opponent threatening too")
    print(
        "| run | env steps | top learner | takes a win | blocks a loss "
        "| takes a win under threat | blocks instead |"
    )
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        rates = [r[k] for k in ("win", "block", "win_under_threat", "block_instead")]
        cells = [r["run"], f"{r['env_steps']:,}", r["top"], *(f"{x:.3f}" for x in rates)]
        print(f"| {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
