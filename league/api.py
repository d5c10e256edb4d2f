"""The three-line API: `league.train(env_fn, num_policies=6)` and `league.load(run_dir)`."""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from league.collect import batch_act
from league.config import TrainConfig


class PolicyHandle:
    """One trained (or fixed) policy: `act` for one observation, `act_batch` for many."""

    def __init__(self, policy_id: str, policy: Any, role: str, deterministic: bool = False) -> None:
        self.id = policy_id
        self.role = role
        self.deterministic = deterministic
        self._policy = policy
        self._takes_deterministic = "deterministic" in inspect.signature(policy.act).parameters

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


class LeagueRun:
    """A trained league: its manager, its policies and its run directory."""

    def __init__(self, trainer: Any) -> None:
        self._trainer = trainer
        self.league = trainer.league
        self.run_dir = trainer.run_dir
        self.config = trainer.config

    @property
    def env_steps(self) -> int:
        return self._trainer.env_steps

    @property
    def policies(self) -> list[str]:
        return list(self.league.policies)

    def policy(self, policy_id: str, deterministic: bool = False) -> PolicyHandle:
        """A policy by id; `deterministic=True` makes it take its most likely actions."""
        if policy_id not in self.league.policies:
            raise KeyError(f"no policy {policy_id!r} in this league; policies: {self.policies}")
        record = self.league.policies[policy_id]
        policy = self._trainer.learners.get(policy_id, record.payload)
        return PolicyHandle(policy_id, policy, record.role, deterministic)

    def leaderboard(self) -> pd.DataFrame:
        return self.league.leaderboard()

    def payoff_matrix(self) -> pd.DataFrame:
        return self.league.payoff_matrix()

    def best(self, kind: str = "learner") -> str:
        """The id of the top-rated policy of this kind."""
        board = self.leaderboard()
        return str(board[board["kind"] == kind].iloc[0]["policy"])

    def __repr__(self) -> str:
        return f"<LeagueRun {str(self.run_dir)!r} policies={len(self.policies)}>"


def train(
    env_fn: Any,
    num_policies: int = 6,
    *,
    resume: str | os.PathLike | None = None,
    mapping: Any = None,
    fixed_policies: dict[str, Any] | None = None,
    **config: Any,
) -> LeagueRun:
    """Train a population of policies on any PettingZoo env.

    Args:
        env_fn: a PettingZoo env function or module (``connect_four_v3.env``),
            a registry id (``"classic/connect_four-v3"``) or an import path.
        num_policies: PPO learners per role (ignored when ``policies=`` is given).
        resume: a run directory to continue from its last checkpoint.
        mapping: your own seat -> policy mapping (an object with ``assign(env_id)``
            and ``report(env_id, result)``, or a function ``(env_id, seat_names)
            -> policy ids``) used instead of the league's matchmaking.
        fixed_policies: extra fixed opponents, policy id -> ``fn(obs, action_mask)
            -> action`` (or an object with ``act``); they act but never learn.
        **config: any `TrainConfig` field (docs/training.md).
    """
    from league.trainer import Trainer

    if resume is not None:
        saved = json.loads((Path(resume) / "config.json").read_text())
        saved.update(config)
        saved["run_dir"] = str(resume)
        cfg = TrainConfig.from_dict(saved)
    else:
        cfg = TrainConfig.from_dict({"num_policies": num_policies, **config})
    trainer = Trainer(env_fn, cfg, resume=resume, mapping=mapping, fixed_policies=fixed_policies)
    trainer.run()
    return LeagueRun(trainer)


def load(
    run_dir: str | os.PathLike,
    env_fn: Any | None = None,
    fixed_policies: dict[str, Any] | None = None,
) -> LeagueRun:
    """Open a finished or interrupted run: its league, ratings and policies.

    Fixed policies that were user functions (``fixed_policies=`` of `train`) are
    not saved with the run: pass them again to act with them; without them the
    run loads and they raise a clear error only when asked to act.
    """
    from league.trainer import Trainer

    path = Path(run_dir)
    config_file = path / "config.json"
    if not config_file.exists():
        raise FileNotFoundError(f"{str(path)!r} is not a run directory (no config.json)")
    data = json.loads(config_file.read_text())
    cfg = TrainConfig.from_dict(data)
    cfg.run_dir = str(path)
    cfg.progress = False
    cfg.tensorboard = False
    if env_fn is None:
        env_fn = cfg.env
    if env_fn is None:
        raise ValueError(
            f"run {str(path)!r} was trained from an env function that cannot be imported "
            "by name; pass env_fn= to load it"
        )
    trainer = Trainer(env_fn, cfg, resume=path, fixed_policies=fixed_policies, read_only=True)
    return LeagueRun(trainer)
