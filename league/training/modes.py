"""Collection modes: which mode/batching/mixing combinations work, and their mappings.

| mode | batched | who picks each seat's policy |
| --- | --- | --- |
| sync | False | the league's matchmaking (AlphaStar's main-agent mix by default) |
| async | False | the league; with ``mix_policies_in_one_env=False`` one policy per role per env |
| sync/async | True | fixed per env batch: one learner per role per contiguous block of envs |

Every combination that cannot work is refused before anything is built, with
the reason and what to change: by `TrainConfig.validate` where the config alone
says so, by `league.training.plan.make_plan` where the env's seats matter.
"""

from __future__ import annotations

from typing import Any


def env_batches(num_envs: int, num_batches: int) -> list[tuple[int, int]]:
    size = num_envs // num_batches
    return [(b * size, (b + 1) * size) for b in range(num_batches)]


class BatchedMapping:
    """Batched mode: env batch b plays learner b of each role, in every seat of that role.

    Matches are still reported to the league, so records and payoff stay
    complete; games of a policy against itself do not move ratings.
    """

    def __init__(self, league: Any, roles: list[str], batches: list[tuple[int, int]]) -> None:
        self.league = league
        self.roles = roles
        self.batch_of = {}
        for b, (lo, hi) in enumerate(batches):
            for e in range(lo, hi):
                self.batch_of[e] = b
        self.learners = {role: league.learners(role) for role in dict.fromkeys(roles)}

    def assign(self, env_id: int) -> list[str]:
        b = self.batch_of[env_id]
        return [self.learners[role][b % len(self.learners[role])] for role in self.roles]

    def report(self, env_id: int, result: Any) -> None:
        self.league.report(env_id, result)


class OnePolicyPerRole:
    """``mix_policies_in_one_env=False``: the league picks the env's policy for each role
    (the one it put in that role's first seat) and it plays every seat of the role."""

    def __init__(self, league: Any, roles: list[str]) -> None:
        self.league = league
        self.roles = roles

    def assign(self, env_id: int) -> list[str]:
        chosen = self.league.assign(env_id)
        first = {}
        for role, pid in zip(self.roles, chosen, strict=True):
            first.setdefault(role, pid)
        return [first[role] for role in self.roles]

    def report(self, env_id: int, result: Any) -> None:
        self.league.report(env_id, result)
