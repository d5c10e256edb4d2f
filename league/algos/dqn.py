"""Deep Q-Network (Mnih et al., 2015), optionally Double DQN (van Hasselt et al., 2016).

learn(batch) appends the batch's transitions to a replay buffer, then takes
`gradient_steps` Huber-loss steps on uniformly sampled minibatches against a
target network. Acting is epsilon-greedy over the legal actions with epsilon
decaying linearly over the samples acted on; the bootstrap max (or argmax, for
Double DQN) also ranges over the legal actions of the next observation only.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from league.algos.base import (
    Algorithm,
    Batch,
    Interrupt,
    check_config,
    minibatch_grads,
    require_keys,
    set_grads,
    to_tensor,
)
from league.models import ENCODERS, IMAGE_PIXELS, QNetwork
from league.symmetry import Symmetries, freeze_symmetries


@dataclass
class DQNConfig:
    learning_rate: float = 2.5e-4  # Adam step size
    buffer_size: int = 10_000  # replay capacity in transitions (oldest overwritten first)
    batch_size: int = 128  # transitions per gradient step
    gamma: float = 0.99  # discount factor
    learning_starts: int = 1_000  # no gradient steps until the buffer holds this many transitions
    gradient_steps: int | None = None  # per learn() call; None = one per train_frequency new rows
    train_frequency: int = 4  # with gradient_steps=None: new transitions per gradient step
    target_update_interval: int = 100  # gradient steps between target-network updates
    tau: float = 1.0  # target update: target <- tau * online + (1 - tau) * target; 1 = copy
    start_epsilon: float = 1.0  # exploration rate before any sample is acted on
    end_epsilon: float = 0.05  # exploration rate after exploration_steps (and of frozen copies)
    exploration_steps: int = 10_000  # acted samples over which epsilon decays linearly
    double_dqn: bool = False  # pick the next action with the online net, value it with the target
    max_grad_norm: float = 10.0  # global gradient-norm clipping threshold
    hidden_sizes: tuple[int, ...] = (64, 64)  # MLP layer sizes (vector observations)
    encoder: str = "auto"  # auto | mlp | board | cnn: the observation encoder (docs/algorithms.md)
    # Image frames of more pixels are downsampled in the encoder (area, aspect kept); None: never
    image_pixels: int | None = IMAGE_PIXELS
    # Board symmetries as [[obs indices, action indices], ...]: the model is made invariant to
    # these views (league.symmetry); the trainer fills them in with symmetries=True or None
    symmetries: Symmetries | None = None
    symmetry_mode: str = "average"  # average | canonical: how (docs/algorithms.md)

    def __post_init__(self) -> None:
        self.hidden_sizes = tuple(self.hidden_sizes)
        self.symmetries = freeze_symmetries(self.symmetries)
        check_config(self.encoder in ENCODERS, "DQN", f"encoder must be one of {ENCODERS}")
        check_config(self.buffer_size >= 1, "DQN", "buffer_size must be >= 1")
        check_config(self.batch_size >= 1, "DQN", "batch_size must be >= 1")
        check_config(0 <= self.gamma <= 1, "DQN", f"gamma must be in [0, 1], got {self.gamma}")
        check_config(0 < self.tau <= 1, "DQN", f"tau must be in (0, 1], got {self.tau}")
        check_config(self.train_frequency >= 1, "DQN", "train_frequency must be >= 1")
        check_config(self.target_update_interval >= 1, "DQN", "target_update_interval must be >= 1")
        check_config(
            self.gradient_steps is None or self.gradient_steps >= 1,
            "DQN",
            "gradient_steps must be >= 1 or None",
        )


class ReplayBuffer:
    """Numpy ring buffer of transitions (obs, action index, reward, next_obs,
    next legal-action mask, terminated)."""

    def __init__(self, capacity: int, observation_space: spaces.Space, num_actions: int) -> None:
        self.capacity = capacity
        obs_shape, obs_dtype = observation_space.shape, observation_space.dtype
        self.data = {
            "obs": np.zeros((capacity, *obs_shape), obs_dtype),
            "actions": np.zeros(capacity, np.int64),
            "rewards": np.zeros(capacity, np.float32),
            "next_obs": np.zeros((capacity, *obs_shape), obs_dtype),
            "next_action_mask": np.ones((capacity, num_actions), bool),
            "terminated": np.zeros(capacity, bool),
        }
        self.pos = 0
        self.size = 0

    def add(self, rows: Mapping[str, np.ndarray]) -> tuple[int, int, np.ndarray, dict]:
        """Write rows (keys as in `self.data`); returns a token for `undo`."""
        count = min(len(rows["obs"]), self.capacity)
        index = (self.pos + np.arange(count)) % self.capacity
        overwritten = {key: array[index].copy() for key, array in self.data.items()}
        token = (self.pos, self.size, index, overwritten)
        for key, array in self.data.items():
            array[index] = rows[key][-count:]
        self.pos = (self.pos + count) % self.capacity
        self.size = min(self.size + count, self.capacity)
        return token

    def undo(self, token: tuple[int, int, np.ndarray, dict]) -> None:
        """Put back what `add` overwrote, as if it had never been called."""
        self.pos, self.size, index, overwritten = token
        for key, array in self.data.items():
            array[index] = overwritten[key]

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, np.ndarray]:
        index = torch.randint(self.size, (batch_size,), generator=generator).numpy()
        return {key: array[index] for key, array in self.data.items()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "pos": self.pos,
            "size": self.size,
            "data": {k: torch.from_numpy(v[: self.size].copy()) for k, v in self.data.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.pos, self.size = int(state["pos"]), int(state["size"])
        for key, array in self.data.items():
            array[: self.size] = state["data"][key].numpy()


class DQN(Algorithm):
    name = "dqn"
    on_policy = False
    config_class = DQNConfig
    config: DQNConfig
    model: QNetwork

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.target_model = copy.deepcopy(self.model).requires_grad_(False)
        self.replay = ReplayBuffer(self.config.buffer_size, self.observation_space, self.model.n)
        self.acted_samples = 0  # drives the epsilon schedule
        self.num_updates = 0  # gradient steps so far; drives target-network updates

    def build_model(self, where: str | None) -> nn.Module:
        return QNetwork(
            self.observation_space,
            self.action_space,
            self.config.hidden_sizes,
            where,
            self.config.encoder,
            self.config.image_pixels,
            self.config.symmetries,
            self.config.symmetry_mode,
        )

    def build_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=self.config.learning_rate)

    @property
    def epsilon(self) -> float:
        cfg = self.config
        progress = min(1.0, self.acted_samples / max(1, cfg.exploration_steps))
        return cfg.start_epsilon + progress * (cfg.end_epsilon - cfg.start_epsilon)

    def _act_kwargs(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon}

    def frozen_act_kwargs(self) -> dict[str, Any]:
        return {"epsilon": self.config.end_epsilon}

    def act(
        self,
        obs: np.ndarray,
        action_mask: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        result = super().act(obs, action_mask, deterministic)
        if not deterministic:
            self.acted_samples += len(obs)
        return result

    def learn(
        self, batch: Batch, interrupt: Interrupt | None = None, pool: Executor | None = None
    ) -> dict[str, float]:
        cfg = self.config
        params = list(self.model.parameters())
        batch_size = require_keys(
            batch, ("obs", "actions", "rewards", "next_obs", "terminated"), "DQN"
        )
        checkpoint = self.checkpoint()
        rows = {
            "obs": batch["obs"],
            "actions": np.asarray(batch["actions"]).reshape(batch_size) - self.model.start,
            "rewards": batch["rewards"],
            "next_obs": batch["next_obs"],
            "next_action_mask": batch.get(
                "next_action_mask", np.ones((batch_size, self.model.n), bool)
            ),
            "terminated": batch["terminated"],
        }
        checkpoint["replay"] = self.replay.add(rows)

        stats = {"epsilon": self.epsilon, "buffer_size": float(self.replay.size)}
        if self.replay.size < cfg.learning_starts:
            self.version += 1
            return stats | {"gradient_steps": 0.0}

        steps = cfg.gradient_steps
        if steps is None:
            steps = max(1, batch_size // cfg.train_frequency)
        td_losses, q_means = [], []
        for step in range(steps):
            if step and interrupt is not None and interrupt():
                steps = step
                break
            data = {
                k: to_tensor(v, self.device)
                for k, v in self.replay.sample(cfg.batch_size, self.learn_generator).items()
            }
            with torch.no_grad():
                if cfg.double_dqn:
                    next_actions = self.model.masked_q(
                        data["next_obs"], data["next_action_mask"]
                    ).argmax(dim=-1, keepdim=True)
                    next_q = self.target_model(data["next_obs"]).gather(1, next_actions).squeeze(1)
                else:
                    next_q = self.target_model.get_value(data["next_obs"], data["next_action_mask"])
                td_target = data["rewards"] + cfg.gamma * next_q * (~data["terminated"]).float()
            terms, grads = minibatch_grads(
                functools.partial(self._td_loss, data, td_target),
                len(td_target),
                params,
                self.device,
                pool,
            )
            self.check_finite(checkpoint, td_loss=terms["td_loss"])
            set_grads(params, grads)
            grad_norm = nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            self.check_finite(checkpoint, grad_norm=grad_norm)
            self.optimizer.step()

            self.num_updates += 1
            if self.num_updates % cfg.target_update_interval == 0:
                with torch.no_grad():
                    for target, online in zip(
                        self.target_model.parameters(), self.model.parameters(), strict=True
                    ):
                        target.lerp_(online, cfg.tau)
            td_losses.append(terms["td_loss"].detach())
            q_means.append(terms["q_values"])

        self.version += 1
        return stats | {
            "td_loss": torch.stack(td_losses).mean().item(),
            "q_values": torch.stack(q_means).mean().item(),
            "gradient_steps": float(steps),
        }

    def _td_loss(
        self, data: dict[str, torch.Tensor], td_target: torch.Tensor, lo: int, hi: int
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The Huber TD loss on rows lo:hi of a sampled minibatch, as their share of its mean."""
        scale = 1.0 / len(td_target)
        q = self.model(data["obs"][lo:hi]).gather(1, data["actions"][lo:hi].unsqueeze(1))
        q = q.squeeze(1)
        loss = nn.functional.smooth_l1_loss(q, td_target[lo:hi], reduction="sum") * scale
        return {"td_loss": loss, "q_values": q.detach().sum() * scale}, loss

    # The replay buffer, target network and counters are part of "resume exactly".

    def checkpoint(self) -> dict[str, Any]:
        return super().checkpoint() | {
            "target_model": {k: v.clone() for k, v in self.target_model.state_dict().items()},
            "num_updates": self.num_updates,
        }

    def restore(self, checkpoint: dict[str, Any]) -> None:
        super().restore(checkpoint)
        self.target_model.load_state_dict(checkpoint["target_model"])
        self.num_updates = checkpoint["num_updates"]
        if "replay" in checkpoint:
            self.replay.undo(checkpoint["replay"])

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {
            "target_model": self.target_model.state_dict(),
            "acted_samples": self.acted_samples,
            "num_updates": self.num_updates,
            "replay": self.replay.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.target_model.load_state_dict(state["target_model"])
        self.acted_samples = int(state["acted_samples"])
        self.num_updates = int(state["num_updates"])
        self.replay.load_state_dict(state["replay"])
