"""`PolicyHandle`: one policy of a run, ready to act for one observation or a batch."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from league.collect import batch_act


class PolicyHandle:
    """One trained (or fixed) policy: `act` for one observation, `act_batch` for many."""

    def __init__(self, policy_id: str, policy: Any, role: str, deterministic: bool = False) -> None:
        self.id = policy_id
        self.role = role
        self.deterministic = deterministic
        self._policy = policy
        self._takes_deterministic = "deterministic" in inspect.signature(policy.act).parameters

    @property
    def policy(self) -> Any:
        """The object that acts: a learner (an `Algorithm`), a frozen snapshot, or a fixed
        policy; its own methods (``state_dict``, ``device``, ...) are there."""
        return self._policy

    def act(
        self, obs: Any, action_mask: Any | None = None, deterministic: bool | None = None
    ) -> Any:
        """The action for one observation (as the wrapped env returns it).

        `deterministic` takes the most likely action instead of sampling (default:
        the handle's `deterministic`); fixed policies ignore it.
        """
        mask = None if action_mask is None else np.asarray(action_mask, dtype=bool)[None]
        action = self.act_batch(np.asarray(obs)[None], mask, deterministic)[0]
        return action.item() if action.ndim == 0 else action

    def act_batch(
        self,
        obs: np.ndarray,
        action_mask: np.ndarray | None = None,
        deterministic: bool | None = None,
    ) -> np.ndarray:
        """Actions for a batch of observations (B, *obs_shape) and masks (B, n)."""
        if deterministic is None:
            deterministic = self.deterministic
        if self._takes_deterministic:
            return self._policy.act(obs, action_mask, deterministic=deterministic)[0]
        return batch_act(self._policy)(obs, action_mask)[0]

    def __repr__(self) -> str:
        return f"<PolicyHandle {self.id!r} role={self.role!r}>"
