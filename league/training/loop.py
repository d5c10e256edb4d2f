"""The training loop: collect, train, record, until the budget is spent or a stop is asked.

`Loop` holds what both modes share (the budget, annealing, what follows an
update, the end of an iteration); `SyncLoop` and `AsyncLoop` differ only in
how samples reach the learners. Everything else a run does is the trainer's
(building, the run directory) or an observer's (metrics, add-ons).
"""

from __future__ import annotations

import contextlib
import functools
import queue
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from league.algos.base import NonFiniteLossError
from league.algos.stacked import PolicyBank
from league.collect import Actor, Collector, SampleBuffer, SingleActing
from league.training.learner_threads import LagStats, LearnerThread, SharedPolicy
from league.training.modes import BatchedMapping, OnePolicyPerRole
from league.training.plan import available_cores
from league.training.population import BankSnapshot, LearnerUnit, StackUnit

if TYPE_CHECKING:
    from league.training.trainer import Trainer


@dataclass
class TrainingState:
    """The counters a checkpoint commits to trainer.json (besides the file list)."""

    env_steps: int = 0
    iteration: int = 0
    elapsed: float = 0.0  # seconds of training, summed over every process of the run
    learner_steps: dict[str, int] = field(default_factory=dict)  # samples trained per learner
    stopped: dict[str, str] = field(default_factory=dict)  # learner -> why it stopped training
    dropped_episodes: int = 0  # abandoned when a backend restarted their envs (no result)


@dataclass
class IterationInfo:
    """What the last iteration measured, for observers."""

    env_steps_per_s: float = 0.0
    returns: dict[str, list[float]] = field(default_factory=dict)  # finished seat-episodes


class Budget:
    """The share of the run's budget spent: env steps of `total_steps` or seconds of
    `max_seconds` (counted in this process), whichever is further along."""

    def __init__(self, total_steps: int, max_seconds: float) -> None:
        self.total_steps = total_steps
        self.max_seconds = max_seconds
        self.started = time.monotonic()

    def used(self, env_steps: int) -> float:
        used = env_steps / self.total_steps if self.total_steps else 0.0
        return max(used, self.time_used())

    def time_used(self) -> float:
        if not self.max_seconds:
            return 0.0
        return (time.monotonic() - self.started) / self.max_seconds

    def wall_deadline(self) -> float | None:
        """When the time budget ends, on the wall clock (for remote learners)."""
        if not self.max_seconds:
            return None
        return time.time() + self.max_seconds * (1.0 - self.time_used())


class Loop:
    """Iterations until the budget is spent, every learner stopped, or a signal came."""

    def __init__(self, trainer: Trainer, vec: Any) -> None:
        self.trainer = trainer
        self.config = trainer.config
        self.population = trainer.population
        self.state = trainer.state
        self.budget = Budget(self.config.total_steps, self.config.max_seconds)
        self._clock = (self.budget.started, self.state.elapsed, self.state.env_steps)
        self._single: dict[str, SingleActing] = {}
        self.collector = Collector(
            vec,
            self._mapping(),
            self._actors(),
            env_batches=trainer.plan.batches,
            check_masks=self.config.illegal_actions == "raise",
        )
        self.collector.env_steps = self.state.env_steps
        self.collector.dropped_episodes = self.state.dropped_episodes

    # -- who acts ------------------------------------------------------------

    def _acting_policy(self, policy_id: str) -> Any:
        """The object that acts for a learner on the per-learner path."""
        return self.population[policy_id]

    def _actor(self, policy_id: str, payload: Any = None) -> Actor:
        if policy_id in self.population:
            unit = self.population.unit_of[policy_id]
            buffer = SampleBuffer(keep_next_obs=not self.population[policy_id].on_policy)
            if isinstance(unit, StackUnit):
                return Actor(policy_id, unit.bank, unit.index[policy_id], buffer)
            acting = SingleActing(self._acting_policy(policy_id), learns=True, policy_id=policy_id)
            return Actor(policy_id, acting, 0, buffer)
        if isinstance(payload, BankSnapshot):
            return Actor(policy_id, payload.bank, payload.row)
        return Actor(policy_id, SingleActing(payload, policy_id=policy_id))

    def _actors(self) -> dict[str, Actor]:
        return {
            pid: self._actor(pid, record.payload)
            for pid, record in self.trainer.league.policies.items()
        }

    def _mapping(self) -> Any:
        trainer, plan = self.trainer, self.trainer.plan
        if plan.batches is not None:
            mapping: Any = BatchedMapping(trainer.league, plan.env.roles, plan.batches)
        elif not plan.mix:
            mapping = OnePolicyPerRole(trainer.league, plan.env.roles)
        else:
            mapping = trainer.league
        return _ObservedMapping(mapping, trainer)

    # -- the loop ------------------------------------------------------------

    def run(self) -> str:
        """Loop until done; returns why it stopped."""
        self.collector.start(seed=self.config.seed + self.state.iteration * 7919)
        while True:
            reason = self.stop_reason()
            if reason is not None:
                return reason
            self.anneal()
            self.population.deadline = self.budget.wall_deadline()
            self.iterate()
            self.end_iteration()

    def iterate(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop whatever the loop started; afterwards the state is final."""

    def lags(self) -> dict[str, LagStats]:
        return {}

    def consistent(self, policy_id: str) -> Any:
        """A lock under which the learner's weights and step count agree."""
        return self.population.unit_of[policy_id].lock

    def trained_steps(self, policy_id: str) -> int:
        return self.state.learner_steps[policy_id]

    @contextlib.contextmanager
    def off_the_clock(self) -> Any:
        """Work done inside (evaluations) does not count against `max_seconds` or the
        run's training time."""
        started = time.monotonic()
        try:
            yield
        finally:
            paused = time.monotonic() - started
            self.budget.started += paused
            clock_start, elapsed, steps = self._clock
            self._clock = (clock_start + paused, elapsed, steps)

    def stop_reason(self) -> str | None:
        if self.trainer.signals:
            return self.trainer.signals.received
        if self.budget.used(self.state.env_steps) >= 1.0:
            return "budget"
        if len(self.state.stopped) == len(self.population.ids):
            return "learners stopped"
        return None

    def interrupted(self) -> bool:
        """Whether to stop now, between env steps or optimizer steps."""
        return bool(self.trainer.signals) or self.budget.time_used() >= 1.0

    def anneal(self) -> None:
        """anneal_lr: learning rates fall linearly to 0 as the budget is spent. In
        async mode the learner threads read the new rate at their next step."""
        if not self.config.anneal_lr:
            return
        scale = max(0.0, 1.0 - self.budget.used(self.state.env_steps))
        self.population.set_lr_scale(scale)
        self.trainer.scalar("train/lr_scale", scale)

    def step_envs(self) -> bool:
        """One collector step, unless the run must stop; False when it must."""
        if self.interrupted():
            return False
        self.collector.step()
        self.state.env_steps = self.collector.env_steps
        return True

    def ready_batches(self) -> dict[str, dict[str, np.ndarray]]:
        """A batch for every learner that has collected one (and still trains)."""
        size = self.config.batch_size
        return {
            pid: self.collector.actors[pid].buffer.take(size)
            for pid in self.population.ids
            if pid not in self.state.stopped and self.collector.actors[pid].buffer.count >= size
        }

    def after_update(self, policy_id: str, steps: int, stats: dict[str, float]) -> None:
        """A learner finished an update and has now trained `steps` samples."""
        trainer = self.trainer
        samples = steps - self.state.learner_steps[policy_id]
        self.state.learner_steps[policy_id] = steps
        trainer.observers.emit("on_update", trainer, policy_id, samples, stats)
        advance = trainer.league.advance(policy_id, steps, lambda: self._freeze(policy_id))
        if advance.snapshot is not None:
            record = trainer.league.policies[advance.snapshot]
            self.collector.add_actor(self._actor(advance.snapshot, record.payload))
            trainer.save_snapshot(advance.snapshot)
            trainer.observers.emit("on_snapshot", trainer, advance.snapshot, policy_id)
        if advance.reset:
            self.reset_learner(policy_id)

    def copy_learner(self, source: str, target: str) -> None:
        """Target takes source's weights, optimizer state and hyperparameters (PBT)."""
        with self.consistent(source):
            if self.population.unit_of[source] is self.population.unit_of[target]:
                self.population.copy(source, target)
            else:
                with self.consistent(target):
                    self.population.copy(source, target)
            self._republish(target)

    def reset_learner(self, policy_id: str) -> None:
        """Back to the learner's initial weights (an exploiter after its snapshot)."""
        with self.consistent(policy_id):
            self.population.reset(policy_id)
            self._republish(policy_id)
        self.trainer.scalar(f"{policy_id}/reset", 1.0)

    def _republish(self, policy_id: str) -> None:
        """The acting side takes the learner's new weights (async: its shared copy)."""

    def _freeze(self, policy_id: str) -> Any:
        return self.population.freeze(policy_id, self._acting_policy(policy_id))

    def stop_learner(self, policy_id: str, reason: str) -> None:
        # The failed update was rolled back: this learner keeps the weights of
        # its last good update (and checkpoint) and trains no more.
        self.state.stopped[policy_id] = reason
        self.trainer.scalar(f"{policy_id}/stopped", 1.0)
        print(f"league: learner {policy_id!r} stopped training: {reason}")

    def retire_evicted(self) -> None:
        """Forget snapshots the league evicted, once no episode plays them any more."""
        league = self.trainer.league
        gone = [pid for pid in self.collector.actors if pid not in league.policies]
        if not gone:
            return
        playing = self.collector.in_use()
        for pid in gone:
            if pid not in playing:
                actor = self.collector.retire(pid)
                if isinstance(actor.acting, PolicyBank):
                    actor.acting.release(actor.row)

    def end_iteration(self) -> None:
        trainer, state = self.trainer, self.state
        state.iteration += 1
        if self.collector.dropped_episodes > state.dropped_episodes:
            print(
                f"league: {self.collector.dropped_episodes - state.dropped_episodes} unfinished "
                "episodes dropped (their env worker restarted); they count for no one"
            )
            state.dropped_episodes = self.collector.dropped_episodes
            trainer.scalar("train/dropped_episodes", state.dropped_episodes)
        self.retire_evicted()
        started, elapsed_before, steps_before = self._clock
        now = time.monotonic()
        state.elapsed = elapsed_before + now - started
        trainer.last_iteration = IterationInfo(
            env_steps_per_s=(state.env_steps - steps_before) / max(now - started, 1e-9),
            returns=self.collector.drain_returns(),
        )
        trainer.observers.emit("on_iteration", trainer)
        trainer.maybe_checkpoint()


class UpdateThreads:
    """Whether sync mode's updates use a second thread, chosen by timing them.

    The envs wait while the learners train, so a second thread on a second
    core speeds the update up on an otherwise idle machine; on a machine whose
    cores other processes hold, two threads wait for each other and an update
    can take several times as long (measured: 9x with a benchmark running next
    to the test suite, when the second thread was torch's own). The first
    updates alternate one and two threads; then the faster (median seconds per
    sample over the last few) is kept, and the other is tried again after
    `recheck` updates, twice as long after each time it loses (at most
    `max_recheck`). The choice changes no number: every learner computes each
    minibatch in the same two halves, each on one torch thread, whether they run
    one after the other or side by side (`minibatch_grads`), so a seed repeats
    its run whatever the timing picks.
    """

    def __init__(
        self, cores: int, recheck: int = 16, keep: int = 4, warmup: int = 4, max_recheck: int = 64
    ) -> None:
        self.options = (1, 2) if cores >= 2 else (1,)
        self.seconds: dict[int, list[float]] = {n: [] for n in self.options}
        self.recheck, self.keep, self.warmup = recheck, keep, warmup
        self.max_recheck = max_recheck
        self.count, self.next_check = 0, warmup + recheck

    def pick(self) -> int:
        if len(self.options) == 1:
            return 1
        if self.count < self.warmup:
            return self.options[self.count % 2]
        best = self.best()
        if self.count >= self.next_check:
            return next(n for n in self.options if n != best)
        return best

    def best(self) -> int:
        return min(self.options, key=lambda n: float(np.median(self.seconds[n])))

    def record(self, threads: int, seconds: float, samples: int) -> None:
        if len(self.options) == 1 or samples == 0:
            return
        rechecked = self.count >= self.warmup and threads != self.best()
        if rechecked:  # a fresh look at the other count: its old timings are stale
            self.seconds[threads] = []
        self.seconds[threads] = [*self.seconds[threads], seconds / samples][-self.keep :]
        self.count += 1
        if rechecked:
            if self.best() != threads:
                self.recheck = min(2 * self.recheck, self.max_recheck)
            self.next_check = self.count + self.recheck


class SyncLoop(Loop):
    """Collect `rollout` steps of every env, then one update of every learner that has a
    batch (each stack of learners in one tensor program), repeat.

    With worker processes the envs are stepped in two halves, always in the
    same order: the policies act on one half while the other half steps in its
    workers (an odd number of workers steps all envs at once). The schedule,
    and so every result, depends on the number of envs, of workers and the
    seeds only, not on which worker finishes first.
    """

    def __init__(self, trainer: Trainer, vec: Any) -> None:
        super().__init__(trainer, vec)
        self.update_threads = UpdateThreads(available_cores())
        # The second thread of an update: one torch thread, as this one has.
        self.update_pool = ThreadPoolExecutor(
            1, "league-update", initializer=torch.set_num_threads, initargs=(1,)
        )

    def iterate(self) -> None:
        for _ in range(self.config.rollout * self.collector.steps_per_round):
            if not self.step_envs():
                return
        # Matchmaking need not give every learner one batch per iteration (PFSP picks
        # the learners others lose to more often): a learner that collected two
        # trains twice, oldest samples first, so no buffer grows.
        while not self.interrupted():
            batches = self.ready_batches()
            if not batches:
                return
            self.train(batches)

    def close(self) -> None:
        self.update_pool.shutdown()

    def train(self, batches: dict[str, dict[str, np.ndarray]]) -> None:
        # With torch_threads other than 1 every update runs on that many torch threads.
        threads = self.update_threads.pick() if self.config.torch_threads == 1 else 0
        pool = self.update_pool if threads == 2 else None
        started = time.perf_counter()
        results = self.population.learn(batches, interrupt=self.interrupted, pool=pool)
        if threads:
            samples = sum(len(b["rewards"]) for b in batches.values())
            self.update_threads.record(threads, time.perf_counter() - started, samples)
        for pid in self.population.ids:
            result = results.get(pid)
            if isinstance(result, NonFiniteLossError):
                self.stop_learner(pid, str(result))
            elif result is not None:
                steps = self.state.learner_steps[pid] + len(batches[pid]["rewards"])
                self.after_update(pid, steps, result)


class AsyncLoop(Loop):
    """Step envs without pause; full batches go to learner threads (one per unit of the
    population), which train meanwhile.

    The collector acts with each learner's published copy (`SharedPolicy`, or
    the stack's bank), never the model in training.
    """

    def __init__(self, trainer: Trainer, vec: Any) -> None:
        self.updates: queue.Queue = queue.Queue()
        population = trainer.population
        self.shared = {
            unit.ids[0]: SharedPolicy(unit.algo)
            for unit in population.units
            if isinstance(unit, LearnerUnit)
        }
        super().__init__(trainer, vec)
        config = self.config
        self.threads: list[LearnerThread] = []
        self.thread_of: dict[str, LearnerThread] = {}
        for unit in population.units:
            thread = LearnerThread(
                unit,
                functools.partial(population.learn_unit, unit),
                self._publisher(unit),
                lambda pid: population[pid].version,
                config.num_batches_to_accumulate,
                config.max_policy_lag,
                self.updates,
                steps=self.state.learner_steps,
                interrupt=self.interrupted,
            )
            self.threads.append(thread)
            for pid in unit.ids:
                self.thread_of[pid] = thread
        for thread in self.threads:
            thread.start()

    def _republish(self, policy_id: str) -> None:
        if policy_id in self.shared:
            self.shared[policy_id].publish(self.population[policy_id])

    def _publisher(self, unit: Any) -> Any:
        if isinstance(unit, StackUnit):
            return lambda pids: None  # the stack publishes to its bank as it learns
        shared, algo = self.shared[unit.ids[0]], unit.algo
        return lambda pids: shared.publish(algo)

    def _acting_policy(self, policy_id: str) -> Any:
        return self.shared.get(policy_id) or self.population[policy_id]

    def lags(self) -> dict[str, LagStats]:
        return {pid: thread.lag[pid] for pid, thread in self.thread_of.items()}

    def iterate(self) -> None:
        size = self.config.batch_size
        for _ in range(self.config.rollout):
            if not self.step_envs():
                return
            for pid, thread in self.thread_of.items():
                buffer = self.collector.actors[pid].buffer
                while pid not in self.state.stopped and buffer.count >= size:
                    # Waits while `num_batches_to_accumulate` batches already wait for
                    # the learner (Sample Factory's collectors wait for a free trajectory
                    # buffer): samples collected on would be too stale to train on.
                    thread.batches.put((pid, buffer.take(size)))
            self.drain_updates()

    def drain_updates(self) -> None:
        while True:
            try:
                update = self.updates.get_nowait()
            except queue.Empty:
                return
            if update.error is not None:
                raise RuntimeError(
                    f"learner {update.policy_id!r} failed during an update"
                ) from update.error
            if update.stopped is not None:
                self.stop_learner(update.policy_id, update.stopped)
            elif update.samples:
                self.after_update(update.policy_id, update.steps, update.stats)

    def close(self) -> None:
        for thread in self.threads:
            thread.stop()
        for thread in self.threads:
            thread.join()
        self.drain_updates()

    def trained_steps(self, policy_id: str) -> int:
        return self.thread_of[policy_id].steps[policy_id]


class _ObservedMapping:
    """The run's mapping, with every match result also sent to the observers."""

    def __init__(self, mapping: Any, trainer: Trainer) -> None:
        self.mapping = mapping
        self.trainer = trainer

    def assign(self, env_id: int) -> list[str]:
        return self.mapping.assign(env_id)

    def report(self, env_id: int, result: Any) -> None:
        self.mapping.report(env_id, result)
        self.trainer.observers.emit("on_match", self.trainer, result)
