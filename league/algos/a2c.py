"""Advantage Actor-Critic (Mnih et al., 2016), synchronous.

One learn() call is one gradient step on the whole batch: n-step advantages
(GAE with lambda = 1 by default, i.e. bootstrapped returns up to each segment's
end), policy-gradient loss, value loss and entropy bonus, RMSprop or Adam.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from league.algos.base import (
    Algorithm,
    Batch,
    Interrupt,
    check_config,
    compute_gae,
    explained_variance,
    minibatch_grads,
    require_keys,
    set_grads,
    to_tensor,
)
from league.models import ENCODERS, IMAGE_PIXELS, ActorCritic
from league.symmetry import Symmetries, freeze_symmetries


@dataclass
class A2CConfig:
    learning_rate: float = 7e-4  # optimizer step size
    optimizer: str = "rmsprop"  # "rmsprop" (the paper's) or "adam"
    rmsprop_alpha: float = 0.99  # RMSprop smoothing constant
    optimizer_eps: float = 1e-5  # epsilon of RMSprop/Adam
    gamma: float = 0.99  # discount factor
    gae_lambda: float = 1.0  # 1.0 = plain n-step returns; < 1 = GAE
    norm_adv: bool = False  # normalise advantages over the batch to mean 0, std 1
    ent_coef: float = 0.01  # weight of the entropy bonus
    vf_coef: float = 0.5  # weight of the value loss
    max_grad_norm: float = 0.5  # global gradient-norm clipping threshold
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
        check_config(self.encoder in ENCODERS, "A2C", f"encoder must be one of {ENCODERS}")
        check_config(
            self.optimizer in ("rmsprop", "adam"),
            "A2C",
            f"optimizer must be 'rmsprop' or 'adam', got {self.optimizer!r}",
        )
        check_config(0 <= self.gamma <= 1, "A2C", f"gamma must be in [0, 1], got {self.gamma}")
        check_config(0 <= self.gae_lambda <= 1, "A2C", "gae_lambda must be in [0, 1]")


class A2C(Algorithm):
    name = "a2c"
    on_policy = True
    config_class = A2CConfig
    config: A2CConfig

    def build_model(self, where: str | None) -> nn.Module:
        return ActorCritic(
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
        cfg = self.config
        if cfg.optimizer == "adam":
            return torch.optim.Adam(
                self.model.parameters(), lr=cfg.learning_rate, eps=cfg.optimizer_eps
            )
        return torch.optim.RMSprop(
            self.model.parameters(),
            lr=cfg.learning_rate,
            alpha=cfg.rmsprop_alpha,
            eps=cfg.optimizer_eps,
        )

    def learn(
        self, batch: Batch, interrupt: Interrupt | None = None, pool: Executor | None = None
    ) -> dict[str, float]:
        # One optimizer step per update: nothing to interrupt.
        cfg = self.config
        batch_size = require_keys(
            batch,
            ("obs", "actions", "values", "rewards", "terminated", "next_values", "segment_end"),
            "A2C",
        )
        checkpoint = self.checkpoint()

        advantages, returns = compute_gae(
            batch["rewards"],
            batch["values"],
            batch["next_values"],
            batch["terminated"],
            batch["segment_end"],
            cfg.gamma,
            cfg.gae_lambda,
        )
        device = self.device
        b_obs = to_tensor(batch["obs"], device)
        b_masks = (
            to_tensor(batch["action_mask"], device, torch.bool) if "action_mask" in batch else None
        )
        b_actions = to_tensor(batch["actions"], device)
        b_advantages = to_tensor(advantages, device)
        b_returns = to_tensor(returns, device)
        if cfg.norm_adv:
            b_advantages = (b_advantages - b_advantages.mean()) / (
                b_advantages.std(correction=0) + 1e-8
            )
        params = list(self.model.parameters())
        scale = 1.0 / batch_size

        def part(lo: int, hi: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
            _, newlogprob, entropy, newvalue = self.model.get_action_and_value(
                b_obs[lo:hi], None if b_masks is None else b_masks[lo:hi], b_actions[lo:hi]
            )
            pg_loss = -(b_advantages[lo:hi] * newlogprob).sum() * scale
            v_loss = 0.5 * ((newvalue - b_returns[lo:hi]) ** 2).sum() * scale
            entropy_loss = entropy.sum() * scale
            loss = pg_loss - cfg.ent_coef * entropy_loss + v_loss * cfg.vf_coef
            return {"policy_loss": pg_loss, "value_loss": v_loss, "entropy": entropy_loss}, loss

        terms, grads = minibatch_grads(part, batch_size, params, device, pool)
        self.check_finite(checkpoint, **terms)
        set_grads(params, grads)
        grad_norm = nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        self.check_finite(checkpoint, grad_norm=grad_norm)
        self.optimizer.step()

        self.version += 1
        return {
            **{key: value.item() for key, value in terms.items()},
            "grad_norm": grad_norm.item(),
            "explained_variance": explained_variance(np.asarray(batch["values"]), returns),
        }
