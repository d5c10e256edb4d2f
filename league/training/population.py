"""The learners of a run, addressed by policy id, grouped into units that train together.

`Population` builds every learner of a `Plan`. PPO learners that share a role,
an architecture and a device form one stack (`league.algos.stacked`): a
`StackedPPO` that updates them all in one tensor program and a `PolicyBank`
that acts for them and for their snapshots in one forward pass. Every other
learner (DQN, A2C, image CNNs, or PPO with stacking turned off) is a unit of
its own on the per-learner path. The loop, checkpoints and add-ons (PBT,
league roles) talk to the population by policy id and never need to know
which path a learner is on.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import Executor
from typing import Any

import numpy as np
import torch

from league.algos import make_algorithm
from league.algos.base import Algorithm, Batch, FrozenPolicy, Interrupt, NonFiniteLossError
from league.algos.stacked import PolicyBank, StackedPPO
from league.training.plan import EnvInfo, LearnerSpec, stack_group


def build_learner(spec: LearnerSpec, env: EnvInfo) -> Algorithm:
    obs_space, action_space = env.spaces[spec.role]
    return make_algorithm(
        spec.algo,
        obs_space,
        action_space,
        config=spec.config,
        device=spec.device,
        seed=spec.seed,
        where=_where(spec, env),
    )


def _where(spec: LearnerSpec, env: EnvInfo) -> str:
    return f"policy {spec.id!r}, seat {env.first_seat(spec.role)!r} of env {env.name!r}"


class StackMember:
    """One learner of a stack, used like an `Algorithm` (acting, checkpoints)."""

    name = "ppo"
    on_policy = True

    def __init__(self, unit: StackUnit, index: int) -> None:
        self.unit = unit
        self.index = index
        self.device = unit.stack.device
        self.observation_space = unit.stack.observation_space
        self.action_space = unit.stack.action_space

    @property
    def version(self) -> int:
        return self.unit.stack.versions[self.index]

    @property
    def config(self) -> Any:
        return self.unit.stack.configs[self.index]

    def act(
        self, obs: np.ndarray, action_mask: np.ndarray | None = None, deterministic: bool = False
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        rows = np.full(len(obs), self.index)
        return self.unit.bank.act(obs, action_mask, rows, deterministic)

    def value(self, obs: np.ndarray, action_mask: np.ndarray | None = None) -> np.ndarray:
        return self.unit.bank.value(obs, np.full(len(obs), self.index))

    def state_dict(self) -> dict[str, Any]:
        return self.unit.stack.member_state_dict(self.index)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.unit.stack.load_member_state_dict(self.index, state)
        self.unit.bank.publish(self.index)

    def hyperparameters(self) -> dict[str, float]:
        return self.unit.stack.hyperparameters(self.index)

    def set_hyperparameters(self, **values: float) -> None:
        self.unit.stack.set_hyperparameters(self.index, **values)

    @property
    def learning_rate(self) -> float:
        """The step size in use now (the configured rate, annealed if asked)."""
        return float(self.unit.stack.hparams["learning_rate"][self.index])


class BankSnapshot:
    """A frozen snapshot that lives in a row of its stack's bank."""

    def __init__(self, bank: PolicyBank, row: int) -> None:
        self.bank = bank
        self.row = row

    @property
    def version(self) -> int:
        return int(self.bank.versions[self.row])

    def act(
        self, obs: np.ndarray, action_mask: np.ndarray | None = None, deterministic: bool = False
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return self.bank.act(obs, action_mask, np.full(len(obs), self.row), deterministic)

    def state_dict(self) -> dict[str, Any]:
        return self.bank.snapshot_state_dict(self.row)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.bank.load_snapshot(self.row, state)


class LearnerUnit:
    """One learner on the per-learner path: an `Algorithm` and its acting object."""

    def __init__(self, policy_id: str, algo: Algorithm) -> None:
        self.ids = [policy_id]
        self.algo = algo
        self.lock = threading.Lock()  # held during an update (async checkpoints take it)

    def learn(
        self,
        batches: Mapping[str, Batch],
        interrupt: Interrupt | None = None,
        pool: Executor | None = None,
    ) -> dict[str, dict[str, float] | NonFiniteLossError]:
        """The learner's update; given a `pool` (a second thread is worth it), half of
        each minibatch's gradient is computed there, to the same numbers."""
        (pid,) = batches
        try:
            return {pid: self.algo.learn(batches[pid], interrupt=interrupt, pool=pool)}
        except NonFiniteLossError as err:
            return {pid: err}


class StackUnit:
    """Learners trained as one stack, acting through one bank."""

    def __init__(
        self, ids: list[str], stack: StackedPPO, snapshot_capacity: int, greedy_snapshots: bool
    ) -> None:
        self.ids = ids
        self.stack = stack
        self.bank = PolicyBank(stack, snapshot_capacity, greedy_snapshots)
        self.index = {pid: i for i, pid in enumerate(ids)}
        self.lock = threading.Lock()

    def learn(
        self,
        batches: Mapping[str, Batch],
        interrupt: Interrupt | None = None,
        pool: Executor | None = None,
    ) -> dict[str, dict[str, float] | NonFiniteLossError]:
        results: dict[str, Any] = {}
        by_size: dict[int, dict[int, Batch]] = {}
        for pid, batch in batches.items():  # async may drop stale rows: one call per size
            by_size.setdefault(len(batch["rewards"]), {})[self.index[pid]] = batch
        for group in by_size.values():
            for member, result in self.stack.learn(group, interrupt, pool).items():
                results[self.ids[member]] = result
            # A shared trunk moved for the members without a batch too.
            moved = range(self.stack.num_members) if self.stack.share_trunk else group
            for member in moved:
                self.bank.publish(member)
        return results


class Population:
    """Every learner of a run, built from its specs and grouped into units."""

    def __init__(
        self,
        specs: list[LearnerSpec],
        env: EnvInfo,
        stack: bool = True,
        snapshot_capacity: int = 0,
        share_trunk: bool = False,
        trunk_update: str = "mean",
        greedy_snapshots: bool = False,
    ) -> None:
        self.env = env
        self.specs = {spec.id: spec for spec in specs}
        self.greedy_snapshots = greedy_snapshots
        # Wall-clock time when the run's time budget ends (set by the loop): learners
        # that cannot ask the loop between minibatches (a remote one) stop there.
        self.deadline: float | None = None
        self.units: list[LearnerUnit | StackUnit] = []
        self.learners: dict[str, Algorithm | StackMember] = {}
        self.unit_of: dict[str, LearnerUnit | StackUnit] = {}
        groups: dict[tuple, list[LearnerSpec]] = {}
        for spec in specs:
            key = stack_group(spec, env) if stack else None
            groups.setdefault(key or ("single", spec.id), []).append(spec)
        for key, members in groups.items():
            if key[0] == "single":
                (spec,) = members
                unit: LearnerUnit | StackUnit = LearnerUnit(spec.id, build_learner(spec, env))
                self.learners[spec.id] = unit.algo
            else:
                obs_space, action_space = env.spaces[members[0].role]
                stacked = StackedPPO(
                    obs_space,
                    action_space,
                    [s.config for s in members],
                    device=members[0].device,
                    seeds=[s.seed for s in members],
                    where=_where(members[0], env),
                    share_trunk=share_trunk,
                    trunk_update=trunk_update,
                )
                unit = StackUnit(
                    [s.id for s in members], stacked, snapshot_capacity, greedy_snapshots
                )
                for i, s in enumerate(members):
                    self.learners[s.id] = StackMember(unit, i)
            self.units.append(unit)
            for pid in unit.ids:
                self.unit_of[pid] = unit
        # Learners in the order of the plan, whatever their unit.
        self.learners = {spec.id: self.learners[spec.id] for spec in specs}

    @property
    def ids(self) -> list[str]:
        return list(self.learners)

    def __getitem__(self, policy_id: str) -> Algorithm | StackMember:
        return self.learners[policy_id]

    def __contains__(self, policy_id: str) -> bool:
        return policy_id in self.learners

    def get(self, policy_id: str, default: Any = None) -> Any:
        return self.learners.get(policy_id, default)

    def describe(self) -> str:
        """One line on how the learners are grouped, for the start of a run."""
        parts = []
        for unit in self.units:
            if isinstance(unit, StackUnit):
                trunk = f", one trunk ({unit.stack.trunk_update})" if unit.stack.share_trunk else ""
                parts.append(f"{len(unit.ids)} stacked{trunk} ({', '.join(unit.ids)})")
            else:
                parts.append(f"{unit.ids[0]} on its own ({unit.algo.name})")
        return "learners: " + "; ".join(parts)

    # -- learning ----------------------------------------------------------------

    def learn(
        self,
        batches: Mapping[str, Batch],
        interrupt: Interrupt | None = None,
        pool: Executor | None = None,
    ) -> dict[str, dict[str, float] | NonFiniteLossError]:
        """One update for every learner with a batch; each unit trains its learners
        together (a stack with a second thread from `pool`, if given)."""
        results: dict[str, Any] = {}
        for unit in self.units:
            mine = {pid: batches[pid] for pid in unit.ids if pid in batches}
            if mine:
                with unit.lock:
                    results.update(self.learn_unit(unit, mine, interrupt, pool))
        return results

    def learn_unit(
        self,
        unit: LearnerUnit | StackUnit,
        batches: Mapping[str, Batch],
        interrupt: Any = None,
        pool: Executor | None = None,
    ) -> dict[str, dict[str, float] | NonFiniteLossError]:
        """One update of one unit's learners (the caller holds `unit.lock`)."""
        return unit.learn(batches, interrupt, pool)

    def hyperparameters(self, policy_id: str) -> dict[str, float]:
        return self.learners[policy_id].hyperparameters()

    def set_hyperparameters(self, policy_id: str, **values: float) -> None:
        self.learners[policy_id].set_hyperparameters(**values)

    def state_dict(self, policy_id: str) -> dict[str, Any]:
        """Everything that resumes the learner exactly (its algorithm's format)."""
        return self.learners[policy_id].state_dict()

    def load_state_dict(self, policy_id: str, state: Mapping[str, Any]) -> None:
        self.learners[policy_id].load_state_dict(state)
        unit = self.unit_of[policy_id]
        for pid in self.moved([policy_id]):  # a shared trunk: the loaded one is everyone's
            if pid != policy_id:
                unit.bank.publish(unit.index[pid])

    def moved(self, ids: list[str]) -> list[str]:
        """The learners whose weights changed when those of `ids` did: with a shared
        trunk, every member of their stacks."""
        moved = dict.fromkeys(ids)
        for pid in ids:
            unit = self.unit_of[pid]
            if isinstance(unit, StackUnit) and unit.stack.share_trunk:
                moved.update(dict.fromkeys(unit.ids))
        return list(moved)

    def acting_weights(self, policy_id: str) -> dict[str, Any]:
        """What acting needs of a learner (weights, version), on the CPU: what the Ray
        learner host sends the driver after each update."""
        unit = self.unit_of[policy_id]
        if isinstance(unit, StackUnit):
            i = unit.index[policy_id]
            weights = {k: v[i].detach().cpu() for k, v in unit.stack.params.items()}
            return {"params": weights, "version": unit.stack.versions[i]}
        model = {k: v.cpu() for k, v in unit.algo.model.state_dict().items()}
        return {"model": model, "version": unit.algo.version}

    def apply_acting_weights(self, policy_id: str, acting: Mapping[str, Any]) -> None:
        unit = self.unit_of[policy_id]
        if isinstance(unit, StackUnit):
            i = unit.index[policy_id]
            with torch.no_grad():
                for name, value in acting["params"].items():
                    unit.stack.params[name][i] = value
            unit.stack.versions[i] = acting["version"]
            unit.bank.publish(i)
            return
        unit.algo.model.load_state_dict(acting["model"])
        unit.algo.version = acting["version"]

    def set_lr_scale(self, scale: float) -> None:
        for unit in self.units:
            target = unit.stack if isinstance(unit, StackUnit) else unit.algo
            target.set_lr_scale(scale)

    def reset(self, policy_id: str) -> None:
        """Back to the initial weights and a fresh optimizer (the learner's own seed)."""
        unit = self.unit_of[policy_id]
        if isinstance(unit, StackUnit):
            unit.stack.reset_member(unit.index[policy_id])
            unit.bank.publish(unit.index[policy_id])
            return
        fresh = build_learner(self.specs[policy_id], self.env)
        fresh.version = unit.algo.version
        unit.algo.load_state_dict(fresh.state_dict())

    def compatible(self, a: str, b: str) -> bool:
        """Whether learner `a` can take over learner `b`'s weights and optimizer state."""
        unit_a, unit_b = self.unit_of[a], self.unit_of[b]
        if isinstance(unit_a, StackUnit) or isinstance(unit_b, StackUnit):
            return unit_a is unit_b
        spec_a, spec_b = self.specs[a], self.specs[b]
        shape = ("hidden_sizes", "encoder", "image_pixels")
        return (spec_a.role, spec_a.algo, spec_a.device) == (
            spec_b.role,
            spec_b.algo,
            spec_b.device,
        ) and all(spec_a.config.get(k) == spec_b.config.get(k) for k in shape)

    def copy(self, source: str, target: str) -> None:
        """Target takes source's weights, optimizer state and hyperparameters (PBT's
        exploit); it keeps its own version counter and RNG streams."""
        if not self.compatible(source, target):
            raise ValueError(f"learner {target!r} cannot take over {source!r}: other shapes")
        unit = self.unit_of[target]
        if isinstance(unit, StackUnit):
            unit.stack.copy_member(unit.index[source], unit.index[target])
            self.learners[target].set_hyperparameters(**self.learners[source].hyperparameters())
            unit.bank.publish(unit.index[target])
            return
        mine = unit.algo.state_dict()
        theirs = self.state_dict(source)
        keep = ("version", "generator", "learn_generator")
        unit.algo.load_state_dict({**theirs, **{k: mine[k] for k in keep}})

    # -- snapshots -------------------------------------------------------------------

    def freeze(self, policy_id: str, acting: Any = None) -> FrozenPolicy | BankSnapshot:
        """A frozen copy of the learner as it acts now (from `acting`, its published
        copy in async mode, on the per-learner path)."""
        unit = self.unit_of[policy_id]
        if isinstance(unit, StackUnit):
            return BankSnapshot(unit.bank, unit.bank.add_snapshot(unit.index[policy_id]))
        snapshot = (acting or unit.algo).frozen()
        snapshot.greedy = self.greedy_snapshots
        return snapshot

    def frozen_from_file(self, policy_id: str, state: Mapping[str, Any]) -> Any:
        """A snapshot of learner `policy_id` restored from its saved state."""
        unit = self.unit_of[policy_id]
        if isinstance(unit, StackUnit):
            snapshot = BankSnapshot(unit.bank, unit.bank.claim_row())
        else:
            snapshot = unit.algo.frozen()
            snapshot.greedy = self.greedy_snapshots
        snapshot.load_state_dict(state)
        return snapshot

    def release(self, payload: Any) -> None:
        """A snapshot left the league: its bank row may hold another."""
        if isinstance(payload, BankSnapshot):
            payload.bank.release(payload.row)

    def snapshot_bytes(self) -> dict[str, int]:
        """Bytes one snapshot of each stack's learners takes in its bank."""
        return {
            ", ".join(u.ids): u.bank.snapshot_bytes()
            for u in self.units
            if isinstance(u, StackUnit)
        }

    # -- files ---------------------------------------------------------------------

    def policy_file(self, policy_id: str, step: int, policy: Any = None) -> dict[str, Any]:
        """What a checkpoint file holds for a learner (or, with `policy`, for a frozen
        copy of it): its state and everything needed to rebuild it without the env."""
        spec = self.specs[policy_id]
        state = self.state_dict(policy_id) if policy is None else policy.state_dict()
        return {
            "policy": policy_id,
            "step": step,
            "version": state["version"],
            "algo": spec.algo,
            "config": spec.config,
            "spaces": self.env.spaces[spec.role],
            "state": state,
        }


def policy_from_file(data: dict[str, Any], frozen: bool) -> Any:
    """Rebuild a learner (or, `frozen=True`, an acting-only copy) from `policy_file` data."""
    obs_space, action_space = data["spaces"]
    algo = make_algorithm(data["algo"], obs_space, action_space, config=data["config"])
    policy = algo.frozen() if frozen else algo
    policy.load_state_dict(data["state"])
    return policy
