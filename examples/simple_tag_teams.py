"""simple_tag (mpe2): three adversaries against one prey, rated as two teams.

Each role gets its own learners; the adversary seats of one team share one policy.
"""

from mpe2 import simple_tag_v3

import league

teams = {
    "adversary_0": "predators",
    "adversary_1": "predators",
    "adversary_2": "predators",
    "agent_0": "prey",
}
run = league.train(
    simple_tag_v3.parallel_env,
    num_policies=2,
    teams=teams,
    num_envs=4,
    rollout=64,
    batch_size=1024,
    total_steps=40_000,
    env_kwargs={"max_cycles": 50},
)
print(run.leaderboard().to_string(index=False))
