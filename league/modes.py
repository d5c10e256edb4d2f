"""Collection modes: which mode/batching/mixing combinations work, and their mappings.

| mode | batched | who picks each seat's policy |
| --- | --- | --- |
| sync | False | the league (round-robin by default: equal experience per learner) |
| async | False | the league; with ``mix_policies_in_one_env=False`` one policy per role per env |
| sync/async | True | fixed per env batch: one learner per role per contiguous block of envs |

Every combination that cannot work is refused by `check_modes` before anything
is built, with the reason and what to change.
"""

from __future__ import annotations

from typing import Any

MODES = ("sync", "async")


def check_modes(config: Any, num_learners_per_role: int, custom_mapping: bool) -> None:
    """Refuse impossible combinations of mode, batching, mixing and mapping."""
    if config.mode not in MODES:
        raise ValueError(f"mode={config.mode!r} is unknown; choose one of {MODES}")
    if config.batched:
        if config.mix_policies_in_one_env:
            raise ValueError(
                "batched=True runs one policy per role over a whole block of envs, so "
                "mix_policies_in_one_env=True cannot work; set mix_policies_in_one_env=False "
                "or batched=False"
            )
        if custom_mapping:
            raise ValueError(
                "batched=True assigns policies per env batch, not per env: a custom mapping "
                "cannot be used; pass batched=False to use it"
            )
        batches = num_learners_per_role
        if config.num_envs % batches:
            raise ValueError(
                f"batched=True splits num_envs={config.num_envs} into one block per learner "
                f"of each role ({batches}); make num_envs a multiple of {batches}"
            )
    if config.mode == "async":
        if config.num_batches_to_accumulate < 1:
            raise ValueError(
                f"num_batches_to_accumulate={config.num_batches_to_accumulate} must be at least 1"
            )
        if config.max_policy_lag < 0:
            raise ValueError(f"max_policy_lag={config.max_policy_lag} must be 0 or more")
    elif config.mix_policies_in_one_env is False and not config.batched:
        raise ValueError(
            "mode='sync' uses the league's fixed deterministic mapping; "
            "mix_policies_in_one_env=False applies to async (or batched) collection"
        )


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
