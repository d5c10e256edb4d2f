"""Tic-tac-toe: two learners, PFSP matchmaking, then the best one against random."""

import league
from league.evaluate import play_games

run = league.train(
    "classic/tictactoe-v3",
    num_policies=2,
    num_envs=8,
    rollout=32,
    batch_size=256,
    total_steps=60_000,
    league={"strategy": "pfsp", "pfsp_weighting": "variance"},
)
best = run.best()


print(run.leaderboard()[["rank", "policy", "rating", "err_lo", "err_hi", "games", "score"]])
print(
    play_games(
        "classic/tictactoe-v3",
        run.policy(best),
        run.policy("random"),
        games=400,
        policy_name=best,
        opponent_name="random",
    )
)
