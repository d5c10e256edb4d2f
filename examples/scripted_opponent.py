"""A hand-written opponent in the league: it plays the lowest legal column.

A fixed policy is any `fn(obs, action_mask) -> action` for one observation;
it acts in matches and is rated, but never learns.
"""

import numpy as np

import league


def leftmost(obs, action_mask):
    return int(np.flatnonzero(action_mask)[0])


run = league.train(
    "classic/connect_four-v3",
    num_policies=2,
    fixed_policies={"leftmost": leftmost},
    num_envs=12,
    batch_size=768,
    total_steps=30_000,
)
print(run.leaderboard()[["rank", "policy", "kind", "rating", "games", "score"]])
