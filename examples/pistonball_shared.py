"""Pistonball: 20 cooperating pistons, one shared policy (parameter sharing).

All seats are one team, so the league has nothing to rate; one learner plays
every piston and learns from every seat's decisions.
"""

from pettingzoo.butterfly import pistonball_v6

import league

seats = [f"piston_{i}" for i in range(20)]
run = league.train(
    pistonball_v6.parallel_env,
    num_policies=1,
    opponents=[],
    teams=dict.fromkeys(seats, "pistons"),
    num_envs=2,
    num_workers=2,
    rollout=32,
    batch_size=1280,
    total_steps=20_000,
    env_kwargs={"max_cycles": 125},
)
print(run.leaderboard()[["policy", "games"]])
