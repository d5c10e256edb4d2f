"""The Ray backend: env workers and learners as Ray actors; the league stays in the driver.

With `backend="ray"` a run's env workers are Ray actors spread over the
cluster (`wrappers.ray_vector`), and its learners live in one Ray actor, the
learner host, that asks for the cluster's GPUs (fractional ones too) and
places learner i on its GPU `i % num_gpus`. The driver keeps everything else:
the league (ratings, payoff, matchmaking: one authority), the collector, a
CPU mirror of the learners that acts for them, and the run directory, which
holds the same files as with the local backends (a run resumes on either).

What crosses the network: per env step, each worker's actions out and its
envs' arrays back; per update, the batches to the learner host and, once per
new version, the updated learners' acting weights back (the object store
carries both). Workers hold no policies, so their memory does not grow with
the league.
"""

from __future__ import annotations

import itertools
import math
import socket
import sys
from collections.abc import Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

import torch

from league.algos.base import Batch, NonFiniteLossError
from league.errors import ConfigError, LeagueError
from league.training.devices import policy_device
from league.training.plan import EnvInfo, LearnerSpec, check_shared_trunk, learner_actors
from league.training.population import Population

PIP_HINT = "pip install 'league[ray]'  (Ray core: pip install 'ray>=2.9')"


class LearnerLost(LeagueError, RuntimeError):
    """The learner actor died: the run stops at its last checkpoint."""

    save = False  # its learners are gone: the last checkpoint stays the run's state


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(f"backend='ray' needs Ray, which is not installed: {PIP_HINT}") from None
    return ray


def start_ray(address: str | None, cpus: int | None = None) -> bool:
    """Connect to the cluster at `address` (checked first: a wrong address fails in
    seconds), or start a local Ray when None. Returns whether this call started Ray."""
    ray = require_ray()
    if address and address != "auto":
        _check_reachable(address)
    if ray.is_initialized():
        return False
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    except Exception as err:  # Ray raises ConnectionError, RuntimeError, ValueError, ...
        where = f"the Ray cluster at {address!r}" if address else "a local Ray"
        raise ConfigError(f"cannot start {where}: {type(err).__name__}: {err}") from None
    return True


def _check_reachable(address: str, timeout: float = 3.0) -> None:
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(
            f"ray_address={address!r} is not host:port (e.g. '10.0.0.2:6379' or "
            "'ray://10.0.0.2:10001'); 'auto' finds a cluster started on this machine"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise ConfigError(
            f"cannot reach the Ray cluster at {address!r}: {err.strerror or err} "
            f"(nothing answered within {timeout:.0f} s); check the address and that "
            "`ray start --head` runs there"
        ) from None


class LearnerHost:
    """A Ray actor that holds the learners (`Population`) and trains them.

    `stop` runs in its own concurrency group, beside a `learn` in progress: the
    driver calls it when the run must stop (Ctrl-C, a signal), and the update
    ends at its next optimizer step, as a local one does."""

    def __init__(
        self,
        specs: list[LearnerSpec],
        env: EnvInfo,
        stack: bool,
        share_trunk: bool = False,
        trunk_update: str = "mean",
    ) -> None:
        torch.set_num_threads(1)
        _keep_freed_memory()
        self.population = Population(
            specs, env, stack=stack, share_trunk=share_trunk, trunk_update=trunk_update
        )
        self.stopped = -1  # the number of the last update told to stop
        self.pool = ThreadPoolExecutor(1, initializer=torch.set_num_threads, initargs=(1,))

    def learn(
        self,
        batches: dict[str, Batch],
        deadline: float | None,
        threads: int,
        number: int,
        parallel: bool = False,
    ) -> tuple[dict, dict]:
        import time

        def interrupt() -> bool:
            return self.stopped == number or (deadline is not None and time.time() > deadline)

        # The driver's choices: its torch threads, and whether a stack's update uses a
        # second thread (sync mode times one and two while the envs wait).
        torch.set_num_threads(threads)
        pool = self.pool if parallel else None
        results = self.population.learn(batches, interrupt, pool)
        updated = [pid for pid, r in results.items() if not isinstance(r, NonFiniteLossError)]
        return results, self.acting_weights(self.population.moved(updated))

    def stop(self, number: int) -> None:
        self.stopped = number

    def acting_weights(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        return {pid: self.population.acting_weights(pid) for pid in ids}

    def node_id(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def state_dict(self, policy_id: str) -> dict[str, Any]:
        return _cpu(self.population.state_dict(policy_id))

    def load_state_dict(self, policy_id: str, state: Mapping[str, Any]) -> dict[str, Any]:
        self.population.load_state_dict(policy_id, state)
        return self.acting_weights(self.population.moved([policy_id]))

    def reset(self, policy_id: str) -> dict[str, Any]:
        self.population.reset(policy_id)
        return self.population.acting_weights(policy_id)

    def copy(self, source: str, target: str) -> dict[str, Any]:
        self.population.copy(source, target)
        return self.population.acting_weights(target)

    def take_over(self, target: str, state: Mapping[str, Any]) -> dict[str, Any]:
        """`copy` from a learner of another host: its state, keeping the target's
        version and RNG streams."""
        mine = self.population.state_dict(target)
        keep = {k: mine[k] for k in ("version", "generator", "learn_generator") if k in mine}
        self.population.load_state_dict(target, {**state, **keep})
        return self.acting_weights(self.population.moved([target]))

    def set_hyperparameters(self, policy_id: str, values: dict[str, float]) -> None:
        self.population.set_hyperparameters(policy_id, **values)

    def set_lr_scale(self, scale: float) -> None:
        self.population.set_lr_scale(scale)


def _keep_freed_memory() -> None:
    """Have glibc's malloc keep freed memory in this process for reuse (Linux only).

    Every update allocates and frees the same large tensors (minibatch gathers of
    image observations: 36 MB each on bench_ray's pistonball). By default glibc
    gives chunks that large back to the kernel on free, so the next minibatch
    page-faults its memory in again: on that config this actor took about 175k
    page faults per update (about 38k with these thresholds, most of them the
    new batch's own pages; counted with getrusage, not a benchmark). This
    process is the library's own, so it sets the thresholds (mmap and trim:
    1 GiB) at start."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if sys.platform != "linux" or name is None:
        return
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallopt"):  # not glibc
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, 1 << 30)


class RayPopulation(Population):
    """The learners of a Ray run: trained in learner host actors, acting here from a CPU
    mirror that takes each new version's weights once.

    `actors` learner hosts (default: one per whole GPU of `gpus`, one without GPUs);
    learner i trains in host i % actors, which asks for gpus / actors GPUs, and on
    its GPU (i // actors) % ceil(gpus / actors): learner i on GPU i % gpus of the
    cluster, the device rule of the local backends. An update sends each host its
    learners' batches at once, so hosts train side by side."""

    def __init__(
        self,
        specs: list[LearnerSpec],
        env: EnvInfo,
        gpus: float,
        explicit_device: str | None,
        stack: bool = True,
        snapshot_capacity: int = 0,
        actors: int | None = None,
        share_trunk: bool = False,
        trunk_update: str = "mean",
        greedy_snapshots: bool = False,
    ) -> None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        actors = learner_actors(actors, gpus, len(specs))
        if share_trunk:
            check_shared_trunk(specs, env, stack, actors)
        per_host = gpus / actors
        devices = math.ceil(per_host)
        remote_specs = [
            _with_device(s, policy_device(s.index // actors, devices, explicit_device))
            for s in specs
        ]
        mirror_specs = [_with_device(s, "cpu") for s in specs]
        super().__init__(
            mirror_specs,
            env,
            stack=stack,
            snapshot_capacity=snapshot_capacity,
            share_trunk=share_trunk,
            trunk_update=trunk_update,
            greedy_snapshots=greedy_snapshots,
        )
        self.remote_specs = {s.id: s for s in remote_specs}
        # A host reserves GPUs, not CPUs: a small cluster's CPUs go to env workers. Its
        # one partner is this driver (batches in, weights out; the env workers talk to
        # the driver, which acts), so it runs on the driver's node: always without GPUs
        # (it needs nothing there), and with GPUs when that node has them, elsewhere
        # when not (soft affinity; docs/distributed.md).
        driver_node = ray.get_runtime_context().get_node_id()
        near = NodeAffinitySchedulingStrategy(driver_node, soft=per_host > 0)
        host = ray.remote(concurrency_groups={"control": 1})(LearnerHost).options(
            num_cpus=0, num_gpus=per_host, max_restarts=0, scheduling_strategy=near
        )
        self.hosts = [
            host.remote(
                [s for s in remote_specs if s.index % actors == a],
                env,
                stack,
                share_trunk,
                trunk_update,
            )
            for a in range(actors)
        ]
        self.host_of = {s.id: self.hosts[s.index % actors] for s in specs}
        self._numbers = itertools.count(1)  # of updates; next() is atomic in CPython
        for h in self.hosts:
            self._get(h.set_lr_scale.remote(1.0))  # built, or the reason why not

    def describe(self) -> str:
        gpus = {s.device for s in self.remote_specs.values()}
        where = (
            f"{len(self.hosts)} Ray learner actors"
            if len(self.hosts) > 1
            else "a Ray learner actor"
        )
        return f"{super().describe()}; trained in {where} on {sorted(gpus)}"

    def _get(self, ref: Any) -> Any:
        import ray

        try:
            return ray.get(ref)
        except ray.exceptions.RayActorError as err:
            raise LearnerLost(
                f"a Ray actor that trains the learners died ({err}); the run stopped, its "
                "last checkpoint is its state: resume the run directory to continue"
            ) from None

    def learn_unit(
        self,
        unit: Any,
        batches: Mapping[str, Batch],
        interrupt: Any = None,
        pool: Executor | None = None,
    ) -> dict:
        import ray

        threads = torch.get_num_threads()
        pending: dict[Any, tuple[Any, int]] = {}  # ref -> (host, update number)
        for host in self.hosts:
            mine = {pid: b for pid, b in batches.items() if self.host_of[pid] is host}
            if not mine:
                continue
            number = next(self._numbers)  # async mode's learner threads call this at once
            ref = host.learn.remote(mine, self.deadline, threads, number, pool is not None)
            pending[ref] = (host, number)
        refs = list(pending)
        if interrupt is not None:
            while len(ray.wait(refs, num_returns=len(refs), timeout=0.05)[0]) < len(refs):
                if interrupt():
                    for host, number in pending.values():
                        host.stop.options(concurrency_group="control").remote(number)
                    break
        results: dict[str, Any] = {}
        for ref in refs:
            theirs, weights = self._get(ref)
            results.update(theirs)
            for pid, acting in weights.items():
                self.apply_acting_weights(pid, acting)
        return results

    def set_lr_scale(self, scale: float) -> None:
        super().set_lr_scale(scale)
        for host in self.hosts:
            self._get(host.set_lr_scale.remote(scale))

    def set_hyperparameters(self, policy_id: str, **values: float) -> None:
        super().set_hyperparameters(policy_id, **values)
        self._get(self.host_of[policy_id].set_hyperparameters.remote(policy_id, values))

    def state_dict(self, policy_id: str) -> dict[str, Any]:
        state = self._get(self.host_of[policy_id].state_dict.remote(policy_id))
        # Acting happens here: the acting RNG and DQN's count of acted samples (its
        # exploration schedule) are the mirror's.
        mine = super().state_dict(policy_id)
        for key in ("generator", "acted_samples"):
            if key in mine:
                state[key] = mine[key]
        return state

    def load_state_dict(self, policy_id: str, state: Mapping[str, Any]) -> None:
        super().load_state_dict(policy_id, state)
        host = self.host_of[policy_id]
        for pid, acting in self._get(host.load_state_dict.remote(policy_id, state)).items():
            self.apply_acting_weights(pid, acting)

    def reset(self, policy_id: str) -> None:
        super().reset(policy_id)
        self.apply_acting_weights(
            policy_id, self._get(self.host_of[policy_id].reset.remote(policy_id))
        )

    def copy(self, source: str, target: str) -> None:
        super().copy(source, target)
        host = self.host_of[target]
        if self.host_of[source] is host:
            self.apply_acting_weights(target, self._get(host.copy.remote(source, target)))
            return
        # The source's state travels: weights, optimizer state, hyperparameters.
        state = self._get(self.host_of[source].state_dict.remote(source))
        for pid, acting in self._get(host.take_over.remote(target, state)).items():
            self.apply_acting_weights(pid, acting)

    def close(self) -> None:
        import ray

        for host in self.hosts:
            ray.kill(host)


def _with_device(spec: LearnerSpec, device: str) -> LearnerSpec:
    import dataclasses

    return dataclasses.replace(spec, device=device)


def _cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {k: _cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cpu(v) for v in value]
    return value
