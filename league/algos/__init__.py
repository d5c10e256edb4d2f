"""Learning algorithms (PPO, A2C, DQN) behind one interface, and their registry.

`make_algorithm(name, observation_space, action_space, config)` is the only
entry point the rest of the library needs; see docs/algorithms.md.
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces

from league.algos.a2c import A2C, A2CConfig
from league.algos.base import Algorithm, Batch, FrozenPolicy, NonFiniteLossError, compute_gae
from league.algos.dqn import DQN, DQNConfig
from league.algos.ppo import PPO, PPOConfig
from league.errors import ConfigError

ALGORITHMS: dict[str, type[Algorithm]] = {"ppo": PPO, "a2c": A2C, "dqn": DQN}


def make_algorithm(
    name: str,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    config: Any = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    where: str | None = None,
) -> Algorithm:
    """Create a fresh algorithm.

    name: "ppo", "a2c" or "dqn". config: None (defaults), the algorithm's config
    dataclass, or a dict of its fields. seed fixes weight initialisation and all
    sampling. where: who the model is for (e.g. "seat 'player_0'"), put into the
    UnsupportedSpaceError raised when a space has no model.
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in ALGORITHMS:
        raise ConfigError(f"unknown algorithm {name!r}; valid names: {', '.join(ALGORITHMS)}")
    return ALGORITHMS[key](observation_space, action_space, config, device, seed, where)


__all__ = [
    "A2C",
    "ALGORITHMS",
    "DQN",
    "PPO",
    "A2CConfig",
    "Algorithm",
    "Batch",
    "DQNConfig",
    "FrozenPolicy",
    "NonFiniteLossError",
    "PPOConfig",
    "compute_gae",
    "make_algorithm",
]
