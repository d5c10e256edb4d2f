"""Shared test pieces: the `slow` marker, tic-tac-toe on the library-wide defaults,
random tic-tac-toe batches, random legal actions, and a tiny real ParallelEnv whose
spaces a test chooses (for layouts no installed env has)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from gymnasium import spaces
from pettingzoo import ParallelEnv


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: image envs and long episodes; deselect with -m 'not slow'"
    )


@pytest.fixture(autouse=True)
def tictactoe_on_library_defaults():
    """Tests train tic-tac-toe on the library-wide defaults: they test the machinery, and
    its preset's eight views per forward pass would slow their training (0.42x the env
    steps/s). An empty registered preset turns the built-in one off; test_presets.py
    tests the preset. (A `run_cli` process is not touched: it trains as a user's would.)"""
    from league.presets import register_preset, unregister_preset

    register_preset("tictactoe_v3", {})
    yield
    unregister_preset("tictactoe_v3")


class CountingPool(ThreadPoolExecutor):
    """The second thread of sync mode's updates (one torch thread), counting the work
    it was given."""

    def __init__(self) -> None:
        super().__init__(1, initializer=torch.set_num_threads, initargs=(1,))
        self.submitted = 0

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        self.submitted += 1
        return super().submit(*args, **kwargs)


def load_bench(name: str) -> Any:
    """The benchmark script tests/benchmarks/NAME.py, imported as a module."""
    path = Path(__file__).parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """`python -m league ARGS` in a real process, as a shell runs it."""
    return subprocess.run(
        [sys.executable, "-m", "league", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def tictactoe_batch(rng: np.random.Generator, n: int = 256) -> dict[str, np.ndarray]:
    """A PPO batch of `n` random tic-tac-toe samples (a learner's update input)."""
    done = rng.random(n) < 0.2
    done[-1] = True
    return {
        "obs": rng.integers(0, 2, (n, 3, 3, 2)).astype(np.int8),
        "action_mask": np.ones((n, 9), bool),
        "actions": rng.integers(0, 9, n),
        "logprobs": np.full(n, np.log(1 / 9), np.float32),
        "values": np.zeros(n, np.float32),
        "rewards": rng.choice([-1.0, 0.0, 1.0], n).astype(np.float32),
        "terminated": done,
        "next_values": np.zeros(n, np.float32),
        "segment_end": done,
    }


def random_action(space: spaces.Space, mask: np.ndarray | None, rng: np.random.Generator) -> Any:
    """A random action of `space` that `mask` allows."""
    if isinstance(space, spaces.Discrete):
        legal = np.flatnonzero(mask) if mask is not None else np.arange(space.n)
        return int(rng.choice(legal)) + int(space.start)
    if isinstance(space, spaces.MultiDiscrete):
        return (space.start + rng.integers(0, space.nvec)).astype(space.dtype)
    low = np.clip(space.low, -1.0, 1.0)
    high = np.clip(space.high, -1.0, 1.0)
    return rng.uniform(low, high).astype(space.dtype)


@pytest.fixture
def random_legal() -> Callable[[Any, list[dict], np.random.Generator], list[Any]]:
    """`random_legal(env, infos, rng)`: one random legal action per seat of a wrapped env."""

    def actions(env: Any, infos: list[dict], rng: np.random.Generator) -> list[Any]:
        return [
            random_action(space, info.get("action_mask"), rng)
            for space, info in zip(env.action_spaces, infos, strict=True)
        ]

    return actions


class TinyParallelEnv(ParallelEnv):
    """A real ParallelEnv with chosen spaces: every seat sees `observation` and,
    when given, its `action_masks` entry in its info each step, gets `reward`,
    and the episode ends (terminated) after `length` steps. `received` holds the
    joint actions the env was given."""

    metadata: ClassVar[dict] = {"name": "tiny_v0"}

    def __init__(
        self,
        observation_space: spaces.Space,
        action_spaces: dict[str, spaces.Space],
        observation: Any = None,
        reward: float = 0.0,
        length: int = 2,
        action_masks: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.possible_agents = list(action_spaces)
        self._observation_space = observation_space
        self._action_spaces = action_spaces
        self._observation = observation
        self._reward = reward
        self._length = length
        self._action_masks = action_masks or {}
        self.received: list[dict] = []

    def observation_space(self, agent: str) -> spaces.Space:
        return self._observation_space

    def action_space(self, agent: str) -> spaces.Space:
        return self._action_spaces[agent]

    def _observations(self) -> dict[str, Any]:
        return {a: self._observation for a in self.agents}

    def _infos(self) -> dict[str, dict]:
        return {
            a: {"action_mask": self._action_masks[a]} if a in self._action_masks else {}
            for a in self.agents
        }

    def reset(self, seed: int | None = None, options: dict | None = None):
        self.agents = list(self.possible_agents)
        self._t = 0
        return self._observations(), self._infos()

    def step(self, actions: dict[str, Any]):
        self.received.append(actions)
        self._t += 1
        done = self._t >= self._length
        obs = self._observations()
        rewards = dict.fromkeys(self.agents, self._reward)
        terminations = dict.fromkeys(self.agents, done)
        truncations = dict.fromkeys(self.agents, False)
        infos = self._infos()
        if done:
            self.agents = []
        return obs, rewards, terminations, truncations, infos


@pytest.fixture
def tiny_env() -> type[TinyParallelEnv]:
    return TinyParallelEnv
