"""Stacked PPO: a population of same-shaped PPO learners as one tensor program.

M learners that share spaces and architecture keep each parameter as one
tensor with a leading member axis (initialised by `torch.func.stack_module_state`
from M ordinary `ActorCritic` models, each built with its member's seed, so a
member starts exactly where a separate PPO learner would). A forward pass is
the member model's own layers evaluated with batched matrix products
(`torch.baddbmm`) over the member axis; one PPO update trains every member
that has a batch, with per-member advantages normalisation, losses,
gradient-norm clipping, Adam state, step counts, RNG streams and
hyperparameters (learning rate, entropy and value coefficients, clip range,
discount, GAE lambda, gradient-norm limit are tensors with one entry per
member). `tests/test_stacked.py` checks that one stacked update gives the
parameters of M separate `PPO.learn` calls.

Why not `torch.func.vmap(functional_call(...))`: measured on the 2-core
machine these docs come from (docs/algorithms.md), vmap over the same model
cost 2.2x the batched products for acting batches of 4-16 rows per member and
1.35x for 256-row update minibatches; acting latency is what a league pays
every env step.

`PolicyBank` holds the acting side: the learners' published weights and the
frozen snapshots of the group, stacked the same way, so one forward pass acts
for every seat played by any of them (rows gathered by bank row).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn
from torch.func import stack_module_state

from league.algos.base import (
    HYPERPARAMETERS,
    Batch,
    Interrupt,
    NonFiniteLossError,
    compute_gae,
    explained_variance,
    minibatch_grads,
    parse_config,
    require_keys,
    to_tensor,
)
from league.algos.ppo import BATCH_KEYS, PPO, PPOConfig, ppo_loss_terms
from league.models import (
    ActorCritic,
    BoardCNN,
    CategoricalHead,
    ColumnHead,
    DiagGaussian,
    FactorisedCategorical,
    FactorisedHead,
    GaussianHead,
    MaskedCategorical,
    Symmetries,
    VectorObservation,
    pick_encoder,
)

# What every member of one stack must share: they fix shapes and the update's schedule.
SHARED = (
    "hidden_sizes",
    "encoder",
    "update_epochs",
    "num_minibatches",
    "minibatch_size",
    "norm_adv",
    "clip_vloss",
    "adam_eps",
    "target_kl",
    "symmetries",
    "symmetry_mode",
    "column_head",
    "board_support",
    "shared_body",
)
ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, which PPO uses
# What a shared trunk shares: the actor's and critic's encoders and hidden layers. The
# output layers (actor_head, critic_head) stay each member's own.
TRUNK = ("actor_body.", "critic_body.")
# How an optimizer step moves a shared trunk (docs/training.md): by the mean or the sum
# of the stepping members' own Adam updates, or by one Adam update on the sum of their
# gradients ("joint").
TRUNK_UPDATES = ("mean", "sum", "joint")


def stack_key(config: Any) -> tuple:
    """Learners whose configs give the same key can share one stack."""
    config = parse_config(PPOConfig, config, "PPO")
    return tuple(getattr(config, name) for name in SHARED)


def stackable(observation_space: spaces.Space, config: Any) -> bool:
    """Whether a PPO learner can be a stack member: its encoder must be the MLP or the
    board CNN (image CNNs, whose cost is their convolutions, keep the per-learner path)."""
    encoder = parse_config(PPOConfig, config, "PPO").encoder
    return pick_encoder(observation_space, encoder) != "cnn"


# ---------------------------------------------------------------------------
# Evaluating a member model with stacked parameters


def _run(
    module: nn.Module,
    params: Mapping[str, torch.Tensor],
    prefix: str,
    x: torch.Tensor,
    cells: dict[str, torch.Tensor] | None = None,
):
    """`module`'s forward on (M, B, ...) inputs with parameters stacked on axis 0.

    `cells`, given, keeps a board CNN's gathered windows for the next board CNN that
    reads the same `x` (the actor's and the critic's read the same board the same way).
    """
    if isinstance(module, nn.Linear):
        weight, bias = params[prefix + "weight"], params[prefix + "bias"]
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
    if isinstance(module, nn.Sequential):
        for name, child in module.named_children():
            x = _run(child, params, f"{prefix}{name}.", x)
        return x
    if isinstance(module, (nn.Tanh, nn.ReLU)):
        return module(x)
    if isinstance(module, VectorObservation):
        return module(x.flatten(0, 1)).unflatten(0, x.shape[:2])
    if isinstance(module, BoardCNN):
        members, rows = x.shape[:2]
        cells = {} if cells is None else cells
        if "board" not in cells:
            gathered = module.gather(x.reshape(members, rows, -1))
            cells["board"] = gathered.flatten(1, 2)  # (M, rows * windows, cells per window)
        conv = _run(module.conv, params, prefix + "conv.", cells["board"])
        windows = torch.relu(conv)  # (M, rows * windows, BOARD_CHANNELS)
        cells[prefix] = windows  # for a column head over this board CNN
        return _run(module.body, params, prefix + "body.", windows.reshape(members, rows, -1))
    raise TypeError(f"{type(module).__name__} has no stacked form")


def _dist(
    head: nn.Module,
    params: Mapping[str, torch.Tensor],
    prefix: str,
    features,
    mask,
    sym: Symmetries | None = None,
    weights: torch.Tensor | None = None,
    windows: torch.Tensor | None = None,
):
    """The action distribution over all M x B rows (flattened member-major); with
    symmetries (Discrete only, so a CategoricalHead or ColumnHead) the logits are mapped
    back first. A ColumnHead also reads the actor's board-CNN `windows`."""
    flat_mask = None if mask is None else mask.flatten(0, 1)
    if isinstance(head, (CategoricalHead, ColumnHead)):
        logits = _run(head.logits, params, prefix + "logits.", features)
        if isinstance(head, ColumnHead):
            # (M, rows * windows, k) window scores, added into the columns they cover.
            scores = _run(head.window, params, prefix + "window.", windows)
            logits = logits + scores.reshape(*logits.shape[:2], -1) @ head.scatter
        if sym is not None:
            logits = sym.logits(logits, weights)
        return MaskedCategorical(logits.flatten(0, 1), flat_mask, head.start)
    if isinstance(head, GaussianHead):
        mean = _run(head.mean, params, prefix + "mean.", features)
        log_std = params[prefix + "log_std"].unsqueeze(1).expand_as(mean)
        return DiagGaussian(mean.flatten(0, 1), log_std.flatten(0, 1), head.low, head.high)
    if isinstance(head, FactorisedHead):
        logits = _run(head.logits, params, prefix + "logits.", features)
        return FactorisedCategorical(logits.flatten(0, 1), head.nvec, head.start, flat_mask)
    raise TypeError(f"{type(head).__name__} has no stacked form")


def dist_and_value(
    template: ActorCritic,
    params: Mapping[str, torch.Tensor],
    obs: torch.Tensor,
    mask: torch.Tensor | None,
) -> tuple[Any, torch.Tensor]:
    """(distribution over the M x B rows, values (M, B)) of the stacked members."""
    sym = template.symmetries
    x, weights = (obs, None) if sym is None else sym.inputs(obs, lead=2)
    cells: dict[str, torch.Tensor] = {}
    actor = _run(template.actor_body, params, "actor_body.", x, cells)
    windows = cells.get("actor_body.")
    dist = _dist(template.actor_head, params, "actor_head.", actor, mask, sym, weights, windows)
    return dist, _values(template, params, x, weights, cells, actor)


def values(template: ActorCritic, params: Mapping[str, torch.Tensor], obs: torch.Tensor):
    sym = template.symmetries
    x, weights = (obs, None) if sym is None else sym.inputs(obs, lead=2)
    return _values(template, params, x, weights)


def _values(
    template: ActorCritic,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    weights: torch.Tensor | None,
    cells: dict[str, torch.Tensor] | None = None,
    actor: torch.Tensor | None = None,
):
    """Values (M, B) from what the network sees (`x`, every view under "average"); with
    a shared body the critic reads the actor's features (`actor`, if already run)."""
    if template.shared_body:
        critic = _run(template.actor_body, params, "actor_body.", x) if actor is None else actor
    else:
        critic = _run(template.critic_body, params, "critic_body.", x, cells)
    value = _run(template.critic_head, params, "critic_head.", critic).squeeze(-1)
    sym = template.symmetries
    return value if sym is None else sym.values(value, weights)


# ---------------------------------------------------------------------------
# The learners


class StackedPPO:
    """M PPO learners trained as one; member m behaves as `PPO(..., seed=seeds[m])`.

    `learn({member: batch})` updates the members that have a batch (all batches of
    one size). Members are addressed by index; `member_state_dict(m)` and
    `load_member_state_dict(m, state)` use a separate `PPO`'s format, so a member's
    checkpoint loads into a `PPO` and the other way round.
    """

    name = "ppo"
    on_policy = True

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        configs: Sequence[Any],
        device: str | torch.device = "cpu",
        seeds: Sequence[int] = (),
        where: str | None = None,
        share_trunk: bool = False,
        trunk_update: str = "mean",
    ) -> None:
        if trunk_update not in TRUNK_UPDATES:
            raise ValueError(f"trunk_update must be one of {TRUNK_UPDATES}, got {trunk_update!r}")
        if len(configs) != len(seeds) or not configs:
            raise ValueError("StackedPPO needs one config and one seed per member")
        self.configs = [parse_config(PPOConfig, c, "PPO") for c in configs]
        keys = {stack_key(c) for c in self.configs}
        if len(keys) != 1:
            raise ValueError(
                f"members of one stack must share {SHARED}; got {len(keys)} different sets"
            )
        self.observation_space = observation_space
        self.action_space = action_space
        self.device = torch.device(device)
        self.seeds = list(seeds)
        members = [
            PPO(observation_space, action_space, c, device, s, where)
            for c, s in zip(self.configs, self.seeds, strict=True)
        ]
        self.template = members[0].model
        if self.template.shared:
            raise ValueError("image (CNN) learners keep the per-learner path; they do not stack")
        params, _ = stack_module_state([m.model for m in members])
        self.params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        self.exp_avg = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.exp_avg_sq = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.steps = torch.zeros(len(members), dtype=torch.float64)  # Adam steps per member
        self.versions = [0] * len(members)
        self.generators = [m.generator for m in members]
        self.learn_generators = [m.learn_generator for m in members]
        # torch.optim.Adam's state_dict layout, for members' checkpoints.
        self._param_names = [name for name, _ in self.template.named_parameters()]
        self._param_groups = members[0].optimizer.state_dict()["param_groups"]
        self.base = {
            name: torch.tensor(
                [float(getattr(c, name)) for c in self.configs],
                dtype=torch.float32,
                device=self.device,
            )
            for name in HYPERPARAMETERS
        }
        self.hparams = {k: v.clone() for k, v in self.base.items()}
        self.lr_scale = 1.0
        self.shared_config = self.configs[0]
        # With a shared trunk every member's rows of these parameters stay equal: they
        # start as member 0's and each optimizer step moves them all by the mean (or the
        # sum) of the stepping members' updates (`_sync_trunk`).
        self.trunk = [k for k in self.params if k.startswith(TRUNK)] if share_trunk else []
        self.trunk_update = trunk_update
        if self.trunk:
            self._sync_trunk(torch.zeros(1, dtype=torch.long, device=self.device))

    @property
    def num_members(self) -> int:
        return len(self.versions)

    @property
    def share_trunk(self) -> bool:
        return bool(self.trunk)

    @torch.no_grad()
    def _sync_trunk(self, rows: torch.Tensor, before: dict[str, torch.Tensor] | None = None):
        """Every member's trunk becomes the mean of the trunks of `rows` (members that
        stepped from one shared trunk: the mean of their updates, applied to all). Given
        the trunk `before` the step (trunk_update="sum"), it moves by the sum of their
        updates instead: len(rows) times the mean's move."""
        for name in self.trunk:
            p = self.params[name]
            mean = p.index_select(0, rows).mean(0, keepdim=True)
            if before:
                mean = torch.lerp(before[name], mean, float(len(rows)))
            p.copy_(mean.expand_as(p))

    @torch.no_grad()
    def _pool_trunk_grads(self, rows: torch.Tensor) -> None:
        """trunk_update="joint": the trunk gradient of each member in `rows` becomes
        their sum (the gradient of the sum of their losses), so each takes the same
        Adam update from the same moments: one optimizer on everyone's samples."""
        for name in self.trunk:
            grad = self.params[name].grad
            pooled = grad.index_select(0, rows).sum(0, keepdim=True)
            grad.index_copy_(0, rows, pooled.expand(len(rows), *grad.shape[1:]))

    # -- hyperparameters -------------------------------------------------------

    def hyperparameters(self, member: int) -> dict[str, float]:
        return {name: float(getattr(self.configs[member], name)) for name in HYPERPARAMETERS}

    def set_hyperparameters(self, member: int, **values: float) -> None:
        for name, value in values.items():
            if name not in HYPERPARAMETERS:
                raise ValueError(f"{name!r} is not a per-member hyperparameter: {HYPERPARAMETERS}")
            self.base[name][member] = float(value)
            setattr(self.configs[member], name, type(getattr(self.configs[member], name))(value))
        self._apply_lr_scale()

    def set_lr_scale(self, scale: float) -> None:
        self.lr_scale = scale
        self._apply_lr_scale()

    def _apply_lr_scale(self) -> None:
        self.hparams = {k: v.clone() for k, v in self.base.items()}
        self.hparams["learning_rate"] = self.base["learning_rate"] * self.lr_scale

    # -- the update --------------------------------------------------------------

    def learn(
        self,
        batches: Mapping[int, Batch],
        interrupt: Interrupt | None = None,
        pool: Executor | None = None,
    ) -> dict[int, dict[str, float] | NonFiniteLossError]:
        """One PPO update of each member in `batches`; per member, its stats or the
        NonFiniteLossError that rolled it back (the others keep their update).

        On the CPU each minibatch's losses and gradients are computed in two halves
        of its rows, summed in a fixed order; given a `pool`, one half runs in it while
        this thread computes the other. Each half runs on one torch thread either way,
        so the update is bitwise the same with or without the pool."""
        members = sorted(batches)
        sizes = {require_keys(batches[m], BATCH_KEYS, "PPO") for m in members}
        if len(sizes) != 1:
            raise ValueError(f"stacked members learn from batches of one size, got {sizes}")
        (batch_size,) = sizes
        cfg = self.shared_config
        device = self.device
        k = len(members)
        index = torch.tensor(members, device=device)
        h = {name: value[index] for name, value in self.hparams.items()}
        saved = self._save_rows(index)

        def stacked(key: str, dtype: torch.dtype | None = None) -> torch.Tensor:
            return to_tensor(np.stack([batches[m][key] for m in members]), device, dtype)

        def column(key: str) -> np.ndarray:
            return np.stack([batches[m][key] for m in members])

        advantages, returns = compute_gae(
            column("rewards"),
            column("values"),
            column("next_values"),
            column("terminated"),
            column("segment_end"),
            np.array([self.configs[m].gamma for m in members]),
            np.array([self.configs[m].gae_lambda for m in members]),
        )
        b_obs = stacked("obs")
        b_masks = (
            stacked("action_mask", torch.bool) if "action_mask" in batches[members[0]] else None
        )
        b_actions = stacked("actions")
        b_logprobs = stacked("logprobs", torch.float32)
        b_values = stacked("values", torch.float32)
        b_advantages = to_tensor(advantages, device)
        b_returns = to_tensor(returns, device)

        minibatch_size = cfg.minibatch_size or math.ceil(batch_size / cfg.num_minibatches)
        rows = torch.arange(k, device=device).unsqueeze(1)
        active = torch.ones(k, dtype=torch.bool, device=device)  # target_kl stops a member
        alive = torch.ones(k, dtype=torch.bool, device=device)  # a non-finite loss ends one
        failures: dict[int, str] = {}
        sums: dict[str, torch.Tensor] = {}
        counts = torch.zeros(k, device=device)
        interrupted = False
        for _epoch in range(cfg.update_epochs):
            epoch_kl = torch.zeros(k, device=device)
            epoch_steps = 0
            orders = torch.stack(
                [torch.randperm(batch_size, generator=self.learn_generators[m]) for m in members]
            ).to(device)
            for start in range(0, batch_size, minibatch_size):
                mb = orders[:, start : start + minibatch_size]
                stepping = active & alive
                advantages = b_advantages[rows, mb]
                if cfg.norm_adv:  # over the whole minibatch, before it is split
                    mean = advantages.mean(dim=1, keepdim=True)
                    std = advantages.std(dim=1, correction=0, keepdim=True)
                    advantages = (advantages - mean) / (std + 1e-8)
                data = (
                    b_obs[rows, mb],
                    None if b_masks is None else b_masks[rows, mb],
                    b_actions[rows, mb],
                    b_logprobs[rows, mb],
                    b_values[rows, mb],
                    advantages,
                    b_returns[rows, mb],
                )
                terms, grads = self._terms_and_grads(index, h, data, stepping, pool)
                # A member whose loss is not finite stops here; its gradient rows
                # (its own alone: members share no computation) are never applied.
                finite = torch.stack([torch.isfinite(t) for t in terms.values()]).all(dim=0)
                self._fail(members, stepping & ~finite, terms, failures)
                alive &= finite | ~stepping
                stepping = stepping & alive
                for p, grad in zip(self.params.values(), grads, strict=True):
                    p.grad = grad
                grad_norm = self._clip_grads(index, h["max_grad_norm"], stepping)
                bad_norm = stepping & ~torch.isfinite(grad_norm)
                self._fail(members, bad_norm, {"grad_norm": grad_norm}, failures)
                alive &= ~bad_norm
                stepping = stepping & alive
                if self.trunk and self.trunk_update == "joint" and stepping.any():
                    self._pool_trunk_grads(index[stepping])
                # The trunk before the step, which the sum of the updates starts from.
                sums_from = self.trunk if self.trunk_update == "sum" else []
                before = {name: self.params[name][:1].detach().clone() for name in sums_from}
                self._adam_step(index, h["learning_rate"], stepping)
                if self.trunk and stepping.any():
                    self._sync_trunk(index[stepping], before)
                terms["grad_norm"] = grad_norm
                weight = stepping.float()
                for key, value in terms.items():
                    sums[key] = sums.get(key, 0.0) + torch.where(stepping, value.detach(), 0.0)
                counts += weight
                epoch_kl += torch.where(stepping, terms["approx_kl"].detach(), 0.0)
                epoch_steps += 1
                interrupted = interrupt is not None and interrupt()
                if interrupted:
                    break
            if interrupted:
                break
            if cfg.target_kl is not None:
                active &= ~(epoch_kl / max(epoch_steps, 1) > cfg.target_kl)
            if not (active & alive).any():
                break

        self._restore_rows(index, saved, ~alive)
        results: dict[int, dict[str, float] | NonFiniteLossError] = {}
        for i, m in enumerate(members):
            if m in failures:
                results[m] = NonFiniteLossError(failures[m])
                continue
            self.versions[m] += 1
            stats = {key: float(value[i] / counts[i]) for key, value in sums.items()}
            stats["explained_variance"] = explained_variance(
                np.asarray(batches[m]["values"]), returns[i]
            )
            results[m] = stats
        return results

    def _terms_and_grads(
        self,
        index: torch.Tensor,
        h: dict[str, torch.Tensor],
        data: tuple[torch.Tensor | None, ...],
        stepping: torch.Tensor,
        pool: Executor | None,
    ) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
        """A minibatch's loss terms per member (each (K,)) and the gradient of the
        stepping members' losses, one tensor per parameter: on the CPU from two halves
        of the minibatch's rows (one in `pool` if given), added in a fixed order."""
        rows = data[0].shape[1]

        def part(lo: int, hi: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
            piece = [None if x is None else x[:, lo:hi] for x in data]
            terms = self._losses(index, h, *piece, scale=1.0 / rows)
            loss = terms["policy_loss"] - h["ent_coef"] * terms["entropy"]
            loss = loss + h["vf_coef"] * terms["value_loss"]
            return terms, torch.where(stepping, loss, torch.zeros_like(loss)).sum()

        return minibatch_grads(part, rows, list(self.params.values()), self.device, pool)

    def _losses(
        self,
        index: torch.Tensor,
        h: dict[str, torch.Tensor],
        obs: torch.Tensor,
        masks: torch.Tensor | None,
        actions: torch.Tensor,
        logprobs: torch.Tensor,
        old_values: torch.Tensor,
        advantages: torch.Tensor,
        returns: torch.Tensor,
        scale: float,
    ) -> dict[str, torch.Tensor]:
        """PPO's loss terms per member (each (K,)), for the members in `index`: sums
        over these rows times `scale` (1 / the minibatch's rows: their share of its
        means). Advantages come normalised over the minibatch, if they are."""
        k, mb = obs.shape[:2]
        params = self._rows(index)
        dist, newvalue = dist_and_value(self.template, params, obs, masks)
        newlogprob = dist.log_prob(actions.flatten(0, 1)).view(k, mb)
        entropy = dist.entropy().view(k, mb)
        clip = h["clip_coef"].unsqueeze(1)
        return ppo_loss_terms(
            newlogprob,
            entropy,
            newvalue,
            logprobs,
            old_values,
            advantages,
            returns,
            clip,
            self.shared_config.clip_vloss,
            scale,
        )

    def _rows(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        if len(index) == self.num_members:
            return self.params
        return {name: p.index_select(0, index) for name, p in self.params.items()}

    def _clip_grads(
        self, index: torch.Tensor, max_norm: torch.Tensor, stepping: torch.Tensor
    ) -> torch.Tensor:
        """Per member: scale its gradients so their global norm is at most its
        max_grad_norm (`nn.utils.clip_grad_norm_`'s rule); returns the norms."""
        everyone = len(index) == self.num_members
        grads = [p.grad if everyone else p.grad[index] for p in self.params.values()]
        norms = torch.stack([g.flatten(1).pow(2).sum(dim=1) for g in grads]).sum(dim=0).sqrt()
        coef = torch.clamp(max_norm / (norms + 1e-6), max=1.0)
        coef = torch.where(stepping, coef, torch.zeros_like(coef))
        for p, g in zip(self.params.values(), grads, strict=True):
            scale = coef.view(-1, *[1] * (g.dim() - 1))
            if everyone:
                g.mul_(scale)
            else:
                p.grad.index_copy_(0, index, g * scale)
        return norms

    @torch.no_grad()
    def _adam_step(self, index: torch.Tensor, lr: torch.Tensor, stepping: torch.Tensor) -> None:
        """torch.optim.Adam's update, for the members stepping (each with its own
        step count and learning rate); the other rows are left as they are."""
        if not stepping.any():
            return
        rows = index[stepping]
        lr = lr[stepping].double()
        self.steps[rows.cpu()] += 1
        step = self.steps[rows.cpu()].to(self.device)
        beta1, beta2 = ADAM_BETAS
        eps = self.shared_config.adam_eps
        step_size = (lr / (1 - beta1**step)).float()
        bias_correction2_sqrt = ((1 - beta2**step) ** 0.5).float()
        everyone = len(rows) == self.num_members  # rows are sorted: then they are 0..M-1
        for name, p in self.params.items():
            shape = (-1,) + (1,) * (p.dim() - 1)
            if everyone:  # in place, no gathers
                grad, exp_avg, exp_avg_sq = p.grad, self.exp_avg[name], self.exp_avg_sq[name]
            else:
                grad = p.grad[rows]
                exp_avg, exp_avg_sq = self.exp_avg[name][rows], self.exp_avg_sq[name][rows]
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt.view(shape)).add_(eps)
            # p + (-step_size) * (exp_avg / denom): Adam's addcdiv_, in its order.
            update = (exp_avg / denom).mul_(step_size.view(shape))
            if everyone:
                p.sub_(update)
            else:
                p.index_copy_(0, rows, p[rows] - update)
                self.exp_avg[name].index_copy_(0, rows, exp_avg)
                self.exp_avg_sq[name].index_copy_(0, rows, exp_avg_sq)

    def _fail(self, members: list[int], failed: torch.Tensor, terms: dict, failures: dict) -> None:
        for i in torch.nonzero(failed).flatten().tolist():
            bad = next(name for name, t in terms.items() if not torch.isfinite(t[i]))
            failures.setdefault(
                members[i],
                f"PPO: non-finite {bad} ({terms[bad][i].item()}) at update "
                f"{self.versions[members[i]]}; model and optimizer restored to their state "
                "before this learn() call. Look for NaN/inf in the batch (rewards, "
                "observations) or lower the learning rate.",
            )

    def _save_rows(self, index: torch.Tensor) -> dict[str, Any]:
        with torch.no_grad():
            return {
                "params": {k: v[index].clone() for k, v in self.params.items()},
                "exp_avg": {k: v[index].clone() for k, v in self.exp_avg.items()},
                "exp_avg_sq": {k: v[index].clone() for k, v in self.exp_avg_sq.items()},
                "steps": self.steps[index.cpu()].clone(),
                "trunk": {k: self.params[k][:1].clone() for k in self.trunk},
            }

    @torch.no_grad()
    def _restore_rows(self, index: torch.Tensor, saved: dict[str, Any], which: torch.Tensor):
        if not which.any():
            return
        rows, pick = index[which], torch.nonzero(which).flatten()
        for part in ("params", "exp_avg", "exp_avg_sq"):
            store = getattr(self, part)
            for name, tensor in store.items():
                tensor.index_copy_(0, rows, saved[part][name][pick])
        self.steps[rows.cpu()] = saved["steps"][pick.cpu()]
        if not self.trunk:
            return
        if not which.all():  # the failed members take the trunk the others trained
            self._sync_trunk(index[~which][:1])
            return
        for name in self.trunk:  # nobody's update stands: the trunk goes back too
            self.params[name].copy_(saved["trunk"][name].expand_as(self.params[name]))

    # -- members as separate learners ------------------------------------------

    def member_model_state(self, member: int) -> dict[str, torch.Tensor]:
        """Member `member`'s weights as an `ActorCritic` state_dict."""
        state = {k: v.detach()[member].clone() for k, v in self.params.items()}
        for name, buffer in self.template.named_buffers():
            if name in self.template.state_dict():
                state[name] = buffer.clone()
        return state

    def member_state_dict(self, member: int) -> dict[str, Any]:
        """Exactly what `PPO.state_dict()` of this member alone would hold."""
        step = torch.tensor(float(self.steps[member]))
        optimizer_state = {}
        if self.steps[member] > 0:
            optimizer_state = {
                i: {
                    "step": step.clone(),
                    "exp_avg": self.exp_avg[name][member].clone(),
                    "exp_avg_sq": self.exp_avg_sq[name][member].clone(),
                }
                for i, name in enumerate(self._param_names)
            }
        groups = copy.deepcopy(self._param_groups)
        groups[0]["lr"] = float(self.hparams["learning_rate"][member])
        return {
            "name": self.name,
            "config": dataclasses.asdict(self.configs[member]),
            "version": self.versions[member],
            "model": self.member_model_state(member),
            "optimizer": {"state": optimizer_state, "param_groups": groups},
            "generator": self.generators[member].get_state(),
            "learn_generator": self.learn_generators[member].get_state(),
        }

    @torch.no_grad()
    def load_member_state_dict(self, member: int, state: Mapping[str, Any]) -> None:
        if state["name"] != self.name:
            raise ValueError(f"cannot load a {state['name']} state into a stacked PPO member")
        self.versions[member] = int(state["version"])
        for name, p in self.params.items():
            p[member] = state["model"][name].to(self.device)
        moments = state["optimizer"]["state"]
        for i, name in enumerate(self._param_names):
            entry = moments.get(i, moments.get(str(i)))
            self.exp_avg[name][member] = 0 if entry is None else entry["exp_avg"]
            self.exp_avg_sq[name][member] = 0 if entry is None else entry["exp_avg_sq"]
        first = moments.get(0, moments.get("0"))
        self.steps[member] = 0.0 if first is None else float(first["step"])
        config = state.get("config")
        if config is not None:
            self.set_hyperparameters(member, **{k: config[k] for k in HYPERPARAMETERS})
        self.generators[member].set_state(state["generator"].cpu())
        self.learn_generators[member].set_state(state["learn_generator"].cpu())
        if self.trunk:  # a shared trunk: the loaded one is everyone's
            self._sync_trunk(torch.tensor([member], device=self.device))

    @torch.no_grad()
    def copy_member(self, source: int, target: int) -> None:
        """Target takes source's weights and optimizer state (PBT's exploit)."""
        for store in (self.params, self.exp_avg, self.exp_avg_sq):
            for tensor in store.values():
                tensor[target] = tensor[source]
        self.steps[target] = self.steps[source]

    @torch.no_grad()
    def reset_member(self, member: int) -> None:
        """Back to the member's initial weights and a fresh optimizer (with a shared
        trunk: its own output layers; the trunk stays the one everyone trains)."""
        fresh = PPO(
            self.observation_space,
            self.action_space,
            self.configs[member],
            self.device,
            self.seeds[member],
        )
        for name, p in fresh.model.named_parameters():
            if name not in self.trunk:
                self.params[name][member] = p
        for store in (self.exp_avg, self.exp_avg_sq):
            for tensor in store.values():
                tensor[member] = 0
        self.steps[member] = 0.0

    def member_bytes(self) -> int:
        """Bytes of one member's weights (its Adam moments take twice that again)."""
        return sum(p[0].numel() * p.element_size() for p in self.params.values())


class PolicyBank:
    """The acting weights of one stack: learners' published copies in rows 0..M-1,
    frozen snapshots in the rows after them.

    `act(obs, mask, rows)` runs one forward pass for observations whose acting
    policy is bank row `rows[i]`: rows are grouped by bank row into a padded
    (policies used, most rows of one policy, ...) batch, each policy's sampling
    noise comes from that policy's own generator, and results return in input
    order. Snapshot rows are reused once the league evicts their snapshot, so
    memory is bounded by the number of snapshots kept.
    """

    def __init__(
        self, stack: StackedPPO, capacity: int = 0, greedy_snapshots: bool = False
    ) -> None:
        self.stack = stack
        self.template = stack.template
        self.device = stack.device
        self.num_learners = stack.num_members
        size = self.num_learners + max(capacity, 1)
        self.params = {
            k: torch.zeros((size, *v.shape[1:]), dtype=v.dtype, device=self.device)
            for k, v in stack.params.items()
        }
        self.generators: list[torch.Generator] = list(stack.generators)
        self.versions = np.zeros(size, dtype=np.int64)
        self.free = list(range(size - 1, self.num_learners - 1, -1))
        self.lock = threading.Lock()
        self.greedy_snapshots = greedy_snapshots  # snapshot rows take their most likely actions
        for member in range(self.num_learners):
            self.publish(member)

    def __len__(self) -> int:
        return len(self.versions)

    def snapshot_bytes(self) -> int:
        return sum(p[0].numel() * p.element_size() for p in self.params.values())

    @torch.no_grad()
    def publish(self, member: int) -> None:
        """Copy learner `member`'s current weights into its acting row."""
        with self.lock:
            for name, p in self.params.items():
                p[member] = self.stack.params[name][member]
            self.versions[member] = self.stack.versions[member]

    @torch.no_grad()
    def add_snapshot(self, member: int) -> int:
        """Freeze learner `member`'s acting row into a free row; returns that row."""
        with self.lock:
            if not self.free:
                self._grow()
            row = self.free.pop()
            for p in self.params.values():
                p[row] = p[member]
            version = int(self.versions[member])
            self.versions[row] = version
            # Seeded as a FrozenPolicy of this version would be.
            seed = self.stack.seeds[member] + 7919 * (version + 1)
            self._set_generator(row, torch.Generator(device=self.device).manual_seed(seed))
            return row

    def load_snapshot(self, row: int, state: Mapping[str, Any]) -> None:
        """Restore a snapshot row from a FrozenPolicy state_dict."""
        with self.lock, torch.no_grad():
            for name, p in self.params.items():
                p[row] = state["model"][name].to(self.device)
            self.versions[row] = int(state["version"])
            generator = torch.Generator(device=self.device)
            generator.set_state(state["generator"].cpu())
            self._set_generator(row, generator)

    def claim_row(self) -> int:
        with self.lock:
            if not self.free:
                self._grow()
            return self.free.pop()

    def release(self, row: int) -> None:
        with self.lock:
            if row >= self.num_learners and row not in self.free:
                self.free.append(row)

    def snapshot_state_dict(self, row: int) -> dict[str, Any]:
        """The FrozenPolicy state_dict of a snapshot row."""
        with self.lock:
            model = {k: v[row].clone() for k, v in self.params.items()}
            for name, buffer in self.template.named_buffers():
                if name in self.template.state_dict():
                    model[name] = buffer.clone()
            return {
                "name": "ppo",
                "version": int(self.versions[row]),
                "model": model,
                "generator": self.generators[row].get_state(),
                "act_kwargs": {},
            }

    def _set_generator(self, row: int, generator: torch.Generator) -> None:
        while len(self.generators) <= row:
            self.generators.append(torch.Generator(device=self.device))
        self.generators[row] = generator

    def _grow(self) -> None:
        size = len(self.versions)
        extra = max(size - self.num_learners, 1)
        self.params = {
            k: torch.cat([v, torch.zeros((extra, *v.shape[1:]), dtype=v.dtype, device=v.device)])
            for k, v in self.params.items()
        }
        self.versions = np.concatenate([self.versions, np.zeros(extra, dtype=np.int64)])
        self.free.extend(range(size + extra - 1, size - 1, -1))

    # -- acting ----------------------------------------------------------------

    @torch.inference_mode()
    def act(
        self,
        obs: np.ndarray,
        action_mask: np.ndarray | None,
        rows: np.ndarray,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Actions, log-probabilities, values and versions for observations acted by
        bank rows `rows`.

        Two forward passes at most: one over the learners' rows and one over the
        snapshots' (learners play many seats each, snapshots a few, so padding
        them together would waste most of a pass). Each pass reads its
        parameters as a view of the bank, never a copy. With `greedy_snapshots`
        the snapshots' pass takes each row's most likely action.
        """
        n = len(rows)
        obs_t = to_tensor(obs, self.device)
        mask_t = None if action_mask is None else to_tensor(action_mask, self.device, torch.bool)
        rows = np.asarray(rows, dtype=np.int64)
        is_learner = rows < self.num_learners
        greedy = (deterministic, deterministic or self.greedy_snapshots)
        with self.lock:
            versions = self.versions[rows].copy()
            parts = [
                self._act_range(obs_t, mask_t, rows, np.flatnonzero(sel), mode)
                for sel, mode in zip((is_learner, ~is_learner), greedy, strict=True)
                if sel.any()
            ]
        actions = torch.empty(
            (n, *parts[0][1].shape[1:]), dtype=parts[0][1].dtype, device=self.device
        )
        logprob = torch.empty(n, device=self.device)
        value = torch.empty(n, device=self.device)
        for taken, a, lp, v in parts:
            actions[taken], logprob[taken], value[taken] = a, lp, v
        action_space = self.stack.action_space
        out = actions.cpu().numpy().reshape(n, *action_space.shape)
        return out.astype(action_space.dtype, copy=False), {
            "logprob": logprob.cpu().numpy(),
            "value": value.cpu().numpy(),
            "version": versions,
        }

    def _act_range(
        self,
        obs: torch.Tensor,
        mask: torch.Tensor | None,
        rows: np.ndarray,
        taken: np.ndarray,
        deterministic: bool,
    ) -> tuple[torch.Tensor, ...]:
        """One forward pass for the inputs `taken`, over bank rows lo..hi (the ones
        they use and those between), each row's inputs padded to the most any row
        has. Returns (inputs taken, actions, logprobs, values)."""
        lo = int(rows[taken].min())
        slot = rows[taken] - lo
        counts = np.bincount(slot)
        members, width = len(counts), int(counts.max())
        order = np.argsort(slot, kind="stable")
        position = np.empty(len(taken), dtype=np.int64)
        position[order] = np.arange(len(taken)) - np.repeat(np.cumsum(counts) - counts, counts)
        slot_t = torch.as_tensor(slot, device=self.device)
        pos_t = torch.as_tensor(position, device=self.device)
        taken_t = torch.as_tensor(taken, device=self.device)
        padded = obs.new_zeros((members, width, *obs.shape[1:]))
        padded[slot_t, pos_t] = obs[taken_t]
        padded_mask = None
        if mask is not None:
            padded_mask = mask.new_ones((members, width, mask.shape[-1]))
            padded_mask[slot_t, pos_t] = mask[taken_t]
        params = {k: v[lo : lo + members] for k, v in self.params.items()}
        dist, value = dist_and_value(self.template, params, padded, padded_mask)
        if deterministic:
            actions = dist.mode()
        else:
            # Each policy's noise from its own generator, as it would draw acting alone,
            # placed where that policy's rows sit in the padded batch.
            draws = [
                dist.noise(int(counts[m]), self.generators[lo + m]) for m in np.flatnonzero(counts)
            ]
            sorted_flat = torch.as_tensor(slot[order] * width + position[order], device=self.device)
            noise = draws[0].new_zeros((members * width, *draws[0].shape[1:]))
            noise[sorted_flat] = torch.cat(draws)
            actions = dist.sample_from(noise)
        flat = slot_t * width + pos_t
        return taken_t, actions[flat], dist.log_prob(actions)[flat], value.flatten()[flat]

    @torch.inference_mode()
    def value(self, obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        values_out = np.zeros(len(rows), dtype=np.float32)
        for row in np.unique(rows):
            sel = rows == row
            with self.lock:
                params = {k: v[row : row + 1] for k, v in self.params.items()}
            obs_t = to_tensor(obs[sel], self.device).unsqueeze(0)
            values_out[sel] = values(self.template, params, obs_t)[0].cpu().numpy()
        return values_out
