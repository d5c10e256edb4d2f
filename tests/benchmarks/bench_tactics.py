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

With `--losses GAMES` it also plays the top learner, greedy, against random play
for GAMES games in each seat, from the ladder's random openings (`--opening-plies 0`:
from the empty board), and sorts each
lost game by the learner's last move: it missed its own immediate win, missed
the one block, faced two threats (no block saves it), or moved where it let the
opponent win (gave the square).

    .venv/bin/python tests/benchmarks/bench_tactics.py runs/a runs/b --positions 1000
    .venv/bin/python tests/benchmarks/bench_tactics.py runs/a --losses 2000
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

import numpy as np
from pettingzoo.classic import connect_four_v3

import league
from league.bots import immediate_wins
from league.ladder import OPENING_PLIES

LOSS_KINDS = ("missed win", "missed block", "two threats", "gave square")


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


def last_move_kind(board: np.ndarray, legal: np.ndarray, action: int) -> str:
    """Which of LOSS_KINDS a move is, were it the mover's last before losing."""
    win, block = immediate_wins(board, legal)
    if win and action not in win:
        return "missed win"
    if len(block) >= 2:
        return "two threats"
    if block and action not in block:
        return "missed block"
    return "gave square"


def losses_to_random(
    policy, games: int, seat: int, seed: int, opening: int | None = None
) -> tuple[Counter, Counter]:
    """`policy` in `seat` against uniform random play from `opening` random plies (default
    the ladder's): results (+1 win, 0 draw, -1 loss) and each loss sorted by the
    policy's last move."""
    rng = np.random.default_rng(seed)
    opening = OPENING_PLIES["connect_four_v3"] if opening is None else opening
    results: Counter = Counter()
    kinds: Counter = Counter()
    for game in range(games):
        env = connect_four_v3.env()
        env.reset(seed=seed + game)
        me = env.possible_agents[seat]
        ply, last = 0, None
        for agent in env.agent_iter():
            obs, reward, terminated, truncated, _ = env.last()
            if terminated or truncated:
                if agent == me:
                    results[int(np.sign(reward))] += 1
                    if reward < 0:
                        kinds[last] += 1
                env.step(None)
                continue
            board, mask = obs["observation"], obs["action_mask"]
            legal = np.flatnonzero(mask)
            if ply >= opening and agent == me:
                action = int(policy.act_batch(board[None], mask[None])[0])
                last = last_move_kind(board, legal, action)
            else:
                action = int(rng.choice(legal))
            env.step(action)
            ply += 1
    return results, kinds


def report_losses(runs: list[str], games: int, seed: int, opening: int | None) -> None:
    """Print each run's losses to random play by seat and by LOSS_KINDS."""
    rows = []
    for path in runs:
        run = league.load(path)
        top = run.best()
        policy = run.policy(top, deterministic=True)
        for seat in (0, 1):
            results, kinds = losses_to_random(policy, games, seat, seed, opening)
            row = {"run": path, "top": top, "seat": seat, "games": games}
            if opening is not None:
                row["opening_plies"] = opening
            row.update(results={str(k): v for k, v in sorted(results.items())})
            row.update(kinds={k: kinds[k] for k in LOSS_KINDS})
            print(json.dumps(row), flush=True)
            rows.append(row)
    print(f"\n| run | top learner | seat | losses of {games:,} | " + " | ".join(LOSS_KINDS) + " |")
    print("| --- | --- | ---: | ---: |" + " ---: |" * len(LOSS_KINDS))
    for r in rows:
        cells = [r["run"], r["top"], str(r["seat"]), str(r["results"].get("-1", 0))]
        print(f"| {' | '.join(cells + [str(r['kinds'][k]) for k in LOSS_KINDS])} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories of connect-four runs")
    parser.add_argument("--positions", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--losses",
        type=int,
        default=0,
        metavar="GAMES",
        help="also play GAMES games a seat against random play and sort the losses",
    )
    parser.add_argument(
        "--opening-plies",
        type=int,
        default=None,
        help="--losses: random plies that open each game (default: the ladder's, 4; "
        "0 plays from the empty board)",
    )
    args = parser.parse_args()
    if args.losses:
        report_losses(args.runs, args.losses, args.seed, args.opening_plies)
        return
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
