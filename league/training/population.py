"""The learners of a run, addressed by policy id.

`Population` builds every learner of a `Plan` and is what the loop, the
checkpoints and the add-ons (PBT, league roles) talk to: acting objects,
updates, frozen copies, resets, weight copies and the files that let a policy
be rebuilt without its env (`policy_file` / `policy_from_file`).
"""

from __future__ import annotations

from typing import Any

from league.algos import make_algorithm
from league.algos.base import Algorithm, Batch, Interrupt
from league.training.plan import EnvInfo, LearnerSpec


def build_learner(spec: LearnerSpec, env: EnvInfo) -> Algorithm:
    obs_space, action_space = env.spaces[spec.role]
    return make_algorithm(
        spec.algo,
        obs_space,
        action_space,
        config=spec.config,
        device=spec.device,
        seed=spec.seed,
        where=f"policy {spec.id!r}, seat {env.first_seat(spec.role)!r} of env {env.name!r}",
    )


class Population:
    """Every learner of a run, built from its specs."""

    def __init__(self, specs: list[LearnerSpec], env: EnvInfo) -> None:
        self.env = env
        self.specs = {spec.id: spec for spec in specs}
        self.learners: dict[str, Algorithm] = {s.id: build_learner(s, env) for s in specs}

    @property
    def ids(self) -> list[str]:
        return list(self.learners)

    def __getitem__(self, policy_id: str) -> Algorithm:
        return self.learners[policy_id]

    def __contains__(self, policy_id: str) -> bool:
        return policy_id in self.learners

    def learn(self, policy_id: str, batch: Batch, interrupt: Interrupt | None = None) -> dict:
        return self.learners[policy_id].learn(batch, interrupt=interrupt)

    def set_lr_scale(self, scale: float) -> None:
        for algo in self.learners.values():
            algo.set_lr_scale(scale)

    def reset(self, policy_id: str) -> None:
        """Back to the initial weights and a fresh optimizer (the learner's own seed)."""
        spec = self.specs[policy_id]
        fresh = build_learner(spec, self.env)
        fresh.version = self.learners[policy_id].version
        self.learners[policy_id].load_state_dict(fresh.state_dict())

    # -- files ---------------------------------------------------------------

    def policy_file(self, policy_id: str, step: int, policy: Any = None) -> dict[str, Any]:
        """What a checkpoint file holds for a learner (or, with `policy`, for a frozen
        copy of it): its state and everything needed to rebuild it without the env."""
        spec = self.specs[policy_id]
        policy = self.learners[policy_id] if policy is None else policy
        return {
            "policy": policy_id,
            "step": step,
            "version": getattr(policy, "version", 0),
            "algo": spec.algo,
            "config": spec.config,
            "spaces": self.env.spaces[spec.role],
            "state": policy.state_dict(),
        }


def policy_from_file(data: dict[str, Any], frozen: bool) -> Any:
    """Rebuild a learner (or, `frozen=True`, an acting-only copy) from `policy_file` data."""
    obs_space, action_space = data["spaces"]
    algo = make_algorithm(data["algo"], obs_space, action_space, config=data["config"])
    policy = algo.frozen() if frozen else algo
    policy.load_state_dict(data["state"])
    return policy
