"""The interface every algorithm implements, and what PPO, A2C and DQN share.

An algorithm owns one model (shared by every seat its policy plays), acts on
numpy batches and learns from the batch format described in
docs/algorithms.md. It knows nothing about leagues, seats or envs.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from league.errors import ConfigError

Batch = Mapping[str, np.ndarray]
Interrupt = Callable[[], bool]
# Values a run may change while a learner trains (PBT): learning rate, loss weights,
# clip range, discounting.
HYPERPARAMETERS = (
    "learning_rate",
    "ent_coef",
    "vf_coef",
    "clip_coef",
    "max_grad_norm",
    "gamma",
    "gae_lambda",
)
ConfigT = TypeVar("ConfigT")


class NonFiniteLossError(RuntimeError):
    """learn() met a NaN/inf loss; the model and optimizer were restored to their
    state at the start of that learn() call before this was raised."""


def parse_config(config_class: type[ConfigT], config: Any, algorithm: str) -> ConfigT:
    """Accept None (defaults), an instance of `config_class`, or a dict of its fields."""
    if config is None:
        return config_class()
    if isinstance(config, config_class):
        return dataclasses.replace(config)
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        raise TypeError(
            f"{algorithm} takes a {config_class.__name__} (or a dict of its fields), "
            f"got a {type(config).__name__}"
        )
    if not isinstance(config, Mapping):
        raise TypeError(
            f"{algorithm} config must be None, a dict or a {config_class.__name__}, "
            f"got {type(config).__name__}"
        )
    fields = [f.name for f in dataclasses.fields(config_class)]
    for key in config:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"unknown {algorithm} config key {key!r}.{hint} "
                f"Valid keys of {config_class.__name__}: {', '.join(fields)}"
            )
    return config_class(**config)


def check_config(condition: bool, algorithm: str, message: str) -> None:
    """Config validation helper used by each config's __post_init__."""
    if not condition:
        raise ConfigError(f"{algorithm} config: {message}")


def compute_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    terminated: np.ndarray,
    segment_end: np.ndarray,
    gamma: float | np.ndarray,
    gae_lambda: float | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalized Advantage Estimation (Schulman et al., 2016) over flat arrays of
    concatenated trajectory segments. Returns (advantages, returns), float32.

        delta_t = r_t + gamma * next_value_t * (1 - terminated_t) - value_t
        A_t     = delta_t + gamma * lambda * (1 - segment_end_t) * (1 - terminated_t) * A_{t+1}
        R_t     = A_t + value_t

    The last row always ends its segment: nothing after it belongs to it. Arrays
    may have one leading axis of learners (time on the last axis), with `gamma`
    and `gae_lambda` then given per learner; each learner's result is exactly
    the one its own call would give.
    """
    gamma = np.asarray(gamma, dtype=np.float64)
    gae_lambda = np.asarray(gae_lambda, dtype=np.float64)
    if np.ndim(rewards) > 1:
        gamma, gae_lambda = gamma.reshape(-1, 1), gae_lambda.reshape(-1)
    # float32 arithmetic throughout, as a Python float meets a float32 array.
    discount = (gamma.reshape(gae_lambda.shape) * gae_lambda).astype(np.float32)
    not_terminated = 1.0 - np.asarray(terminated, dtype=np.float32)
    continues = not_terminated * (1.0 - np.asarray(segment_end, dtype=np.float32))
    continues[..., -1:] = 0.0
    values = np.asarray(values, dtype=np.float32)
    deltas = (
        np.asarray(rewards, dtype=np.float32)
        + gamma.astype(np.float32) * np.asarray(next_values, dtype=np.float32) * not_terminated
        - values
    )
    advantages = np.zeros_like(deltas)
    next_advantage = np.zeros(deltas.shape[:-1], dtype=np.float32)
    for t in reversed(range(deltas.shape[-1])):
        next_advantage = deltas[..., t] + discount * continues[..., t] * next_advantage
        advantages[..., t] = next_advantage
    return advantages, advantages + values


def explained_variance(predicted: np.ndarray, target: np.ndarray) -> float:
    """1 - Var(target - predicted) / Var(target): 1 is perfect, <= 0 is no better
    than predicting the mean; NaN when the target is constant."""
    variance = np.var(target)
    return float("nan") if variance == 0 else float(1 - np.var(target - predicted) / variance)


def require_keys(batch: Batch, keys: tuple[str, ...], algorithm: str) -> int:
    """Check the batch has `keys` and at least one row; returns the row count."""
    missing = [k for k in keys if k not in batch]
    if missing:
        raise KeyError(
            f"{algorithm}.learn(batch) is missing {missing}; it needs {list(keys)} "
            "(see docs/algorithms.md, 'Batch format')"
        )
    size = len(batch[keys[0]])
    if size == 0:
        raise ValueError(f"{algorithm}.learn(batch) got an empty batch")
    return size


def to_tensor(
    array: np.ndarray, device: torch.device, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """numpy -> torch on `device` in one transfer."""
    array = np.asarray(array)
    if not array.flags.writeable:
        # torch warns on every read-only array (e.g. shared-memory views).
        array = array.copy()
    return torch.as_tensor(array, dtype=dtype, device=device)


def minibatch_grads(
    part: Callable[[int, int], tuple[dict[str, torch.Tensor], torch.Tensor]],
    rows: int,
    params: Sequence[torch.Tensor],
    device: torch.device,
    pool: Executor | None = None,
) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
    """A minibatch's loss terms and the gradient of its loss, one tensor per parameter.

    `part(lo, hi)` gives the terms and the loss of rows lo:hi as sums over them times
    1 / `rows` (their share of the minibatch's means). On the CPU the minibatch is
    computed in two fixed halves of its rows, added in a fixed order; given a `pool`,
    one half runs there while this thread computes the other. With each half on one
    torch thread (sync mode's pool thread and a `torch_threads=1` run's own) the result
    is bitwise the same with or without the pool, so a seed repeats its run whatever
    the update's timing picks (docs/algorithms.md). On a GPU the minibatch stays whole.
    """
    halves = 2 if device.type == "cpu" and rows > 1 else 1
    cuts = [rows * i // halves for i in range(halves + 1)]

    def grads(lo: int, hi: int) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, ...]]:
        terms, loss = part(lo, hi)
        return terms, torch.autograd.grad(loss, params, materialize_grads=True)

    first, *rest = itertools.pairwise(cuts)
    away = pool.submit(grads, *first) if pool is not None and rest else None
    later = [grads(*span) for span in rest]  # this thread's, while the pool has the first
    parts = [away.result() if away is not None else grads(*first), *later]
    terms = {key: sum(t[key] for t, _ in parts) for key in parts[0][0]}
    return terms, [sum(g) for g in zip(*(g for _, g in parts), strict=True)]


def set_grads(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]) -> None:
    """Give each parameter its gradient (what `loss.backward()` would have left)."""
    for p, grad in zip(params, grads, strict=True):
        p.grad = grad


class Policy:
    """The acting half, shared by learners (`Algorithm`) and their frozen copies.

    Subclasses set `name`, `version`, `device`, `action_space`, `model` (an
    `ActorCritic` or `QNetwork`) and `generator` (sampling randomness, so that
    acting is reproducible from a seed and from a state_dict).
    """

    name: str
    version: int
    device: torch.device
    action_space: spaces.Space
    model: nn.Module
    generator: torch.Generator
    # Always take the most likely action. The trainer marks snapshots so when
    # TrainConfig.greedy_snapshots is set; not saved: the run's config says.
    greedy: bool = False

    def _act_kwargs(self) -> dict[str, Any]:
        return {}

    @torch.inference_mode()
    def act(
        self,
        obs: np.ndarray,
        action_mask: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Actions for a batch of observations (B, *obs_shape), and per-row extras
        (PPO/A2C: "logprob", "value"; DQN: "value" = max legal Q).

        action_mask: (B, n) bool, True = legal (MultiDiscrete: the per-dimension
        masks concatenated). `deterministic` (or `greedy`) takes the most likely /
        greedy action.
        """
        obs_t = to_tensor(obs, self.device)
        mask_t = None if action_mask is None else to_tensor(action_mask, self.device, torch.bool)
        actions, extras = self.model.act(
            obs_t, mask_t, deterministic or self.greedy, self.generator, **self._act_kwargs()
        )
        actions = actions.cpu().numpy().reshape(len(actions), *self.action_space.shape)
        return actions.astype(self.action_space.dtype, copy=False), {
            key: value.cpu().numpy() for key, value in extras.items()
        }

    @torch.inference_mode()
    def value(self, obs: np.ndarray, action_mask: np.ndarray | None = None) -> np.ndarray:
        """(B,) float32 state values, used to bootstrap truncated episodes. DQN gives
        max Q over the legal actions (all actions when no mask is passed)."""
        obs_t = to_tensor(obs, self.device)
        mask_t = None if action_mask is None else to_tensor(action_mask, self.device, torch.bool)
        return self.model.get_value(obs_t, mask_t).cpu().numpy()


class FrozenPolicy(Policy):
    """Acting-only deep copy of a learner's model at one version: no optimizer,
    eval mode, and untouched by the learner's later updates."""

    def __init__(
        self,
        name: str,
        version: int,
        model: nn.Module,
        action_space: spaces.Space,
        device: torch.device,
        seed: int,
        act_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.action_space = action_space
        self.device = device
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.act_kwargs = dict(act_kwargs or {})

    def _act_kwargs(self) -> dict[str, Any]:
        return self.act_kwargs

    def state_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "model": self.model.state_dict(),
            "generator": self.generator.get_state(),
            "act_kwargs": dict(self.act_kwargs),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state["name"] != self.name:
            raise ValueError(f"state is from a {state['name']} policy, this is a {self.name} one")
        self.version = int(state["version"])
        self.model.load_state_dict(state["model"])
        _set_generator_state(self.generator, state["generator"])
        self.act_kwargs = dict(state["act_kwargs"])


def _set_generator_state(generator: torch.Generator, state: torch.Tensor) -> None:
    # A CPU generator's state does not fit a CUDA one (and vice versa); after a
    # move between devices sampling restarts from the generator's seed instead.
    if state.numel() == generator.get_state().numel():
        generator.set_state(state.cpu())


class Algorithm(Policy, ABC):
    """A trainable policy: `act`/`value` from `Policy`, plus `learn`, checkpoints
    and frozen copies. Subclasses build `self.model` and `self.optimizer`."""

    name: ClassVar[str]
    on_policy: ClassVar[bool]
    config_class: ClassVar[type]

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        config: Any = None,
        device: str | torch.device = "cpu",
        seed: int = 0,
        where: str | None = None,
    ) -> None:
        self.config = parse_config(self.config_class, config, self.name.upper())
        self.observation_space = observation_space
        self.action_space = action_space
        self.device = torch.device(device)
        self.seed = seed
        self.version = 0
        # Seed weight initialisation without touching the caller's global RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = self.build_model(where).to(self.device)
        self.optimizer = self.build_optimizer()
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        # Minibatch shuffling and replay sampling draw here, on the CPU.
        self.learn_generator = torch.Generator().manual_seed(seed + 1)

    @abstractmethod
    def build_model(self, where: str | None) -> nn.Module: ...

    @abstractmethod
    def build_optimizer(self) -> torch.optim.Optimizer: ...

    @abstractmethod
    def learn(
        self, batch: Batch, interrupt: Interrupt | None = None, pool: Executor | None = None
    ) -> dict[str, float]:
        """One update from a batch (see docs/algorithms.md); returns scalar stats.

        `interrupt` is asked between optimizer steps; once it returns True the
        update ends there (it still counts as an update): a run's time budget and
        Ctrl-C are honoured within one minibatch. Given a `pool`, half of each
        minibatch's gradient is computed there (`minibatch_grads`): the same numbers,
        sooner on an idle second core.
        """

    def frozen_act_kwargs(self) -> dict[str, Any]:
        return {}

    @property
    def learning_rate(self) -> float:
        """The step size in use now (the configured rate, annealed if asked)."""
        return float(self.optimizer.param_groups[0]["lr"])

    def set_lr_scale(self, scale: float) -> None:
        """Set the optimizer's step size to `scale` x the configured learning rate
        (the trainer's linear annealing; docs/training.md)."""
        self.lr_scale = scale
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.learning_rate * scale

    def hyperparameters(self) -> dict[str, float]:
        """The config values PBT may change (those of HYPERPARAMETERS this algorithm has)."""
        return {
            name: float(getattr(self.config, name))
            for name in HYPERPARAMETERS
            if hasattr(self.config, name)
        }

    def set_hyperparameters(self, **values: float) -> None:
        """Change config values in place; the optimizer takes a new learning rate at once."""
        for name, value in values.items():
            if name not in self.hyperparameters():
                raise ValueError(
                    f"{self.name.upper()} has no hyperparameter {name!r}; it has "
                    f"{list(self.hyperparameters())}"
                )
            setattr(self.config, name, type(getattr(self.config, name))(value))
        self.set_lr_scale(getattr(self, "lr_scale", 1.0))

    def frozen(self) -> FrozenPolicy:
        """A deep copy of the acting model as it is now, for snapshots and opponents."""
        return FrozenPolicy(
            self.name,
            self.version,
            self.model,
            self.action_space,
            self.device,
            # A stream of its own per version; drawing a seed from the parent's
            # generator instead would change the parent's later actions.
            seed=self.seed + 7919 * (self.version + 1),
            act_kwargs=self.frozen_act_kwargs(),
        )

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly: model, optimizer, version, RNGs."""
        return {
            "name": self.name,
            "config": dataclasses.asdict(self.config),
            "version": self.version,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "learn_generator": self.learn_generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state["name"] != self.name:
            raise ValueError(
                f"cannot load a {state['name']} state into a {self.name} algorithm; "
                f"create it with make_algorithm({state['name']!r}, ...)"
            )
        self.version = int(state["version"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        _set_generator_state(self.generator, state["generator"])
        self.learn_generator.set_state(state["learn_generator"].cpu())
        # Hyperparameters PBT changed are part of the learner's state.
        saved = state.get("config", {})
        self.set_hyperparameters(**{k: saved[k] for k in self.hyperparameters() if k in saved})

    # Non-finite guard: learn() takes a checkpoint first, and check_finite()
    # rolls back to it before raising.

    def checkpoint(self) -> dict[str, Any]:
        return {
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
        }

    def restore(self, checkpoint: dict[str, Any]) -> None:
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])

    def check_finite(self, checkpoint: dict[str, Any], **terms: torch.Tensor) -> None:
        """Before an optimizer step: if any loss term is NaN/inf, restore the
        checkpoint and raise NonFiniteLossError naming the term."""
        if torch.isfinite(torch.stack([t.detach().float() for t in terms.values()])).all():
            return
        bad = next(name for name, t in terms.items() if not torch.isfinite(t).all())
        self.restore(checkpoint)
        raise NonFiniteLossError(
            f"{self.name.upper()}: non-finite {bad} ({terms[bad].item()}) at update "
            f"{self.version}; model and optimizer restored to their state before this "
            "learn() call. Look for NaN/inf in the batch (rewards, observations) or lower "
            "the learning rate."
        )
