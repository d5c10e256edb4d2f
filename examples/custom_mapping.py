"""Your own seat -> policy mapping: here, p0 always moves first against p1.

Any object with `assign(env_id) -> policy ids` and `report(env_id, result)`
works, and so does a plain function `(env_id, seat_names) -> policy ids`.
"""

import league


class FirstMoverMapping:
    def __init__(self):
        self.results = []

    def assign(self, env_id):
        return ["p0", "p1"]

    def report(self, env_id, result):
        self.results.append(result)


mapping = FirstMoverMapping()
run = league.train(
    "classic/connect_four-v3",
    num_policies=2,
    mapping=mapping,
    num_envs=8,
    rollout=32,
    batch_size=256,
    total_steps=20_000,
)
print(f"{len(mapping.results)} matches, all p0 (first) vs p1 (second)")
print(run.leaderboard()[["policy", "games", "wins", "losses", "draws"]])
