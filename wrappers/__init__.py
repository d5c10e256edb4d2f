"""wrappers: any PettingZoo (AEC or parallel) or gymnasium env as a list-based,
auto-resetting multi-agent env, alone (`multiagent`) or vectorised (`vector`).

This package never imports `league`.
"""

from wrappers.errors import (
    ActionError,
    EnvError,
    RewardError,
    SpaceError,
    WorkerError,
    WrapperError,
)
from wrappers.multiagent import (
    AECMultiAgentEnv,
    GymMultiAgentEnv,
    MultiAgentEnv,
    ParallelMultiAgentEnv,
    make_env,
    multiagent,
)
from wrappers.vector import VectorEnv, vector

__all__ = [
    "AECMultiAgentEnv",
    "ActionError",
    "EnvError",
    "GymMultiAgentEnv",
    "MultiAgentEnv",
    "ParallelMultiAgentEnv",
    "RewardError",
    "SpaceError",
    "VectorEnv",
    "WorkerError",
    "WrapperError",
    "make_env",
    "multiagent",
    "vector",
]
