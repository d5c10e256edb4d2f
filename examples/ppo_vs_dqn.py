"""A PPO learner and a DQN learner trained in the same env, against each other."""

import league

run = league.train(
    "classic/tictactoe-v3",
    policies=[
        {"id": "ppo", "algo": "ppo"},
        {"id": "dqn", "algo": "dqn", "learning_starts": 256},
    ],
    num_envs=8,
    rollout=32,
    batch_size=256,
    total_steps=60_000,
)
print(run.leaderboard()[["rank", "policy", "algo", "rating", "games", "score"]])
