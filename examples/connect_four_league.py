"""A league of six PPO learners on connect four, then the leaderboard.

.venv/bin/python examples/connect_four_league.py --seconds 600
"""

import argparse

from pettingzoo.classic import connect_four_v3

import league

parser = argparse.ArgumentParser()
parser.add_argument("--seconds", type=float, default=300)
args = parser.parse_args()

run = league.train(
    connect_four_v3.env,
    num_policies=6,
    max_seconds=args.seconds,
    total_steps=0,
)
print(run.leaderboard().to_string(index=False))
print(run.payoff_matrix().round(2))
