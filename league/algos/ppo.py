"""Proximal Policy Optimization with the clipped objective (Schulman et al., 2017).

One learn() call is one PPO update on whatever batch arrives: GAE advantages,
then `update_epochs` passes over shuffled minibatches of the clipped surrogate
loss, a (optionally clipped) value loss and an entropy bonus, with Adam and
global gradient-norm clipping.
"""

from __future__ import annotations

import functools
import math
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

BATCH_KEYS = (
    "obs",
    "actions",
    "logprobs",
    "values",
    "rewards",
    "terminated",
    "next_values",
    "segment_end",
)


@dataclass
class PPOConfig:
    learning_rate: float = 1e-3  # Adam step size (1e-3 learns board games ~2x faster than 2.5e-4)
    adam_eps: float = 1e-5  # Adam epsilon (larger than torch's 1e-8, as PPO is usually tuned)
    gamma: float = 0.99  # discount factor
    gae_lambda: float = 0.95  # GAE lambda: 0 = one-step TD, 1 = Monte Carlo returns
    update_epochs: int = 4  # passes over the batch per learn() call
    num_minibatches: int = 4  # minibatches per epoch (ignored when minibatch_size is set)
    minibatch_size: int | None = None  # rows per minibatch; None = batch size / num_minibatches
    norm_adv: bool = True  # normalise advantages per minibatch to mean 0, std 1
    clip_coef: float = 0.2  # epsilon of the clipped surrogate: ratio kept in [1-eps, 1+eps]
    clip_vloss: bool = True  # clip value updates to clip_coef around the acting values too
    ent_coef: float = 0.01  # weight of the entropy bonus
    vf_coef: float = 0.5  # weight of the value loss
    max_grad_norm: float = 0.5  # global gradient-norm clipping threshold
    target_kl: float | None = None  # stop the epochs once an epoch's mean approx_kl exceeds it
    hidden_sizes: tuple[int, ...] = (64, 64)  # MLP layer sizes (vector observations)
    encoder: str = "auto"  # auto | mlp | board | cnn: the observation encoder (docs/algorithms.md)
    # Image frames of more pixels are downsampled in the encoder (area, aspect kept); None: never
    image_pixels: int | None = IMAGE_PIXELS
    # Board symmetries as [[obs indices, action indices], ...]: the model is made invariant to
    # these views (league.symmetry); the trainer fills them in with symmetries=True or None
    symmetries: Symmetries | None = None
    symmetry_mode: str = "average"  # average | canonical: how (docs/algorithms.md)
    # Board CNN, moves that name a column: also score each column from every window over
    # it, one set of weights for the whole board (docs/algorithms.md)
    column_head: bool = False
    # Board CNN: each window also reads the row under it, so it knows which empty cells a
    # piece can drop into next in a gravity game (docs/algorithms.md)
    board_support: bool = False
    # The critic's head reads the actor's body (encoder and hidden layers) instead of its
    # own: one network with two heads, half the cost (docs/algorithms.md)
    shared_body: bool = False

    def __post_init__(self) -> None:
        self.hidden_sizes = tuple(self.hidden_sizes)
        self.symmetries = freeze_symmetries(self.symmetries)
        check_config(self.encoder in ENCODERS, "PPO", f"encoder must be one of {ENCODERS}")
        check_config(0 <= self.gamma <= 1, "PPO", f"gamma must be in [0, 1], got {self.gamma}")
        check_config(0 <= self.gae_lambda <= 1, "PPO", "gae_lambda must be in [0, 1]")
        check_config(self.update_epochs >= 1, "PPO", "update_epochs must be >= 1")
        check_config(self.num_minibatches >= 1, "PPO", "num_minibatches must be >= 1")
        check_config(
            self.minibatch_size is None or self.minibatch_size >= 1,
            "PPO",
            "minibatch_size must be >= 1 or None",
        )


def ppo_loss_terms(
    newlogprob: torch.Tensor,
    entropy: torch.Tensor,
    newvalue: torch.Tensor,
    logprobs: torch.Tensor,
    old_values: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    clip_coef: float | torch.Tensor,
    clip_vloss: bool,
    scale: float,
) -> dict[str, torch.Tensor]:
    """PPO's loss terms (CleanRL's), each a sum over the last dimension times `scale`
    (1 / a minibatch's rows: these rows' share of its means). One learner passes its
    rows; a stacked population passes (members, rows) and a (members, 1) `clip_coef`."""
    logratio = newlogprob - logprobs
    ratio = logratio.exp()
    with torch.no_grad():
        # The low-variance KL estimator (r - 1) - log r, always >= 0.
        approx_kl = ((ratio - 1) - logratio).sum(dim=-1) * scale
        clipfrac = ((ratio - 1.0).abs() > clip_coef).float().sum(dim=-1) * scale
    # Clipped surrogate objective, as a loss to minimise.
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)
    pg_loss = torch.max(pg_loss1, pg_loss2).sum(dim=-1) * scale
    if clip_vloss:
        v_loss_unclipped = (newvalue - returns) ** 2
        v_clipped = old_values + torch.clamp(newvalue - old_values, -clip_coef, clip_coef)
        v_loss_clipped = (v_clipped - returns) ** 2
        v_loss = 0.5 * torch.max(v_loss_unclipped, v_loss_clipped).sum(dim=-1) * scale
    else:
        v_loss = 0.5 * ((newvalue - returns) ** 2).sum(dim=-1) * scale
    return {
        "policy_loss": pg_loss,
        "value_loss": v_loss,
        "entropy": entropy.sum(dim=-1) * scale,
        "approx_kl": approx_kl,
        "clipfrac": clipfrac,
    }


class PPO(Algorithm):
    name = "ppo"
    on_policy = True
    config_class = PPOConfig
    config: PPOConfig

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
            self.config.column_head,
            self.config.board_support,
            self.config.shared_body,
        )

    def build_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            self.model.parameters(), lr=self.config.learning_rate, eps=self.config.adam_eps
        )

    def learn(
        self, batch: Batch, interrupt: Interrupt | None = None, pool: Executor | None = None
    ) -> dict[str, float]:
        cfg = self.config
        batch_size = require_keys(batch, BATCH_KEYS, "PPO")
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
        b_logprobs = to_tensor(batch["logprobs"], device, torch.float32)
        b_values = to_tensor(batch["values"], device, torch.float32)
        b_advantages = to_tensor(advantages, device)
        b_returns = to_tensor(returns, device)
        params = list(self.model.parameters())

        def part(
            mb: torch.Tensor, mb_advantages: torch.Tensor, lo: int, hi: int
        ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
            """PPO's loss terms on rows lo:hi of minibatch `mb`, as their share of its means."""
            scale = 1.0 / len(mb)
            rows, adv = mb[lo:hi], mb_advantages[lo:hi]
            _, newlogprob, entropy, newvalue = self.model.get_action_and_value(
                b_obs[rows], None if b_masks is None else b_masks[rows], b_actions[rows]
            )
            terms = ppo_loss_terms(
                newlogprob,
                entropy,
                newvalue,
                b_logprobs[rows],
                b_values[rows],
                adv,
                b_returns[rows],
                cfg.clip_coef,
                cfg.clip_vloss,
                scale,
            )
            loss = terms["policy_loss"] - cfg.ent_coef * terms["entropy"]
            loss = loss + terms["value_loss"] * cfg.vf_coef
            return terms, loss

        minibatch_size = cfg.minibatch_size or math.ceil(batch_size / cfg.num_minibatches)
        stats: dict[str, list[torch.Tensor]] = {
            k: [] for k in ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac")
        }
        grad_norms = []
        interrupted = False
        for _epoch in range(cfg.update_epochs):
            epoch_kl = []
            order = torch.randperm(batch_size, generator=self.learn_generator).to(self.device)
            for start in range(0, batch_size, minibatch_size):
                mb = order[start : start + minibatch_size]
                mb_advantages = b_advantages[mb]
                if cfg.norm_adv:  # over the whole minibatch, before it is split
                    mb_advantages = (mb_advantages - mb_advantages.mean()) / (
                        mb_advantages.std(correction=0) + 1e-8
                    )
                terms, grads = minibatch_grads(
                    functools.partial(part, mb, mb_advantages), len(mb), params, device, pool
                )
                self.check_finite(
                    checkpoint,
                    policy_loss=terms["policy_loss"],
                    value_loss=terms["value_loss"],
                    entropy=terms["entropy"],
                )
                set_grads(params, grads)
                grad_norm = nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                self.check_finite(checkpoint, grad_norm=grad_norm)
                self.optimizer.step()

                for key in stats:
                    stats[key].append(terms[key].detach())
                grad_norms.append(grad_norm)
                epoch_kl.append(terms["approx_kl"])
                interrupted = interrupt is not None and interrupt()
                if interrupted:
                    break

            if interrupted or (
                cfg.target_kl is not None and torch.stack(epoch_kl).mean() > cfg.target_kl
            ):
                break

        self.version += 1
        result = {key: torch.stack(values).mean().item() for key, values in stats.items()}
        result["grad_norm"] = torch.stack(grad_norms).mean().item()
        result["explained_variance"] = explained_variance(np.asarray(batch["values"]), returns)
        return result
