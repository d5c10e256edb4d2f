"""The training loop: collect, train, record, until the budget is spent or a stop is asked.

`Loop` holds what both modes share (the budget, annealing, what follows an
update, the end of an iteration); `SyncLoop` and `AsyncLoop` differ only in
how samples reach the learners. Everything else a run does is the trainer's
(building, the run directory) or an observer's (metrics, add-ons).
"""

from __future__ import annotations

import contextlib
import queue
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from league.algos.base import NonFiniteLossError
from league.collect import Actor, Collector, SampleBuffer, batch_act
from league.training.learner_threads import LagStats, LearnerThread, SharedPolicy
from league.training.modes import BatchedMapping, OnePolicyPerRole

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


class Loop:
    """Iterations until the budget is spent, every learner stopped, or a signal came."""

    def __init__(self, trainer: Trainer, vec: Any) -> None:
        self.trainer = trainer
        self.config = trainer.config
        self.population = trainer.population
        self.state = trainer.state
        self.budget = Budget(self.config.total_steps, self.config.max_seconds)
        self._clock = (self.budget.started, self.state.elapsed, self.state.env_steps)
        self.collector = Collector(
            vec, self._mapping(), self._actors(), env_batches=trainer.plan.batches
        )
        self.collector.env_steps = self.state.env_steps

    def _acting(self, policy_id: str) -> Any:
        """The object that acts for a learner: the learner itself, unless a mode says not."""
        return self.population[policy_id]

    def _actors(self) -> dict[str, Actor]:
        actors = {}
        for pid, record in self.trainer.league.policies.items():
            if pid in self.population:
                acting = self._acting(pid)
                on_policy = self.population[pid].on_policy
                actors[pid] = Actor(
                    pid, acting.act, learner=acting, buffer=SampleBuffer(not on_policy)
                )
            else:
                actors[pid] = Actor(pid, batch_act(record.payload))
        return actors

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
        return contextlib.nullcontext()

    def trained_steps(self, policy_id: str) -> int:
        return self.state.learner_steps[policy_id]

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

    def after_update(self, policy_id: str, steps: int, stats: dict[str, float]) -> None:
        """A learner finished an update and has now trained `steps` samples."""
        trainer = self.trainer
        samples = steps - self.state.learner_steps[policy_id]
        self.state.learner_steps[policy_id] = steps
        trainer.observers.emit("on_update", trainer, policy_id, samples, stats)
        advance = trainer.league.advance(policy_id, steps, lambda: self._frozen(policy_id))
        if advance.snapshot is not None:
            record = trainer.league.policies[advance.snapshot]
            self.collector.add_actor(Actor(advance.snapshot, batch_act(record.payload)))
            trainer.save_snapshot(advance.snapshot)
            trainer.observers.emit("on_snapshot", trainer, advance.snapshot, policy_id)

    def _frozen(self, policy_id: str) -> Any:
        return self._acting(policy_id).frozen()

    def stop_learner(self, policy_id: str, reason: str) -> None:
        # The failed update was rolled back: this learner keeps the weights of
        # its last good update (and checkpoint) and trains no more.
        self.state.stopped[policy_id] = reason
        self.trainer.scalar(f"{policy_id}/stopped", 1.0)
        print(f"league: learner {policy_id!r} stopped training: {reason}")

    def end_iteration(self) -> None:
        trainer, state = self.trainer, self.state
        state.iteration += 1
        started, elapsed_before, steps_before = self._clock
        now = time.monotonic()
        state.elapsed = elapsed_before + now - started
        trainer.last_iteration = IterationInfo(
            env_steps_per_s=(state.env_steps - steps_before) / max(now - started, 1e-9),
            returns=self.collector.drain_returns(),
        )
        trainer.observers.emit("on_iteration", trainer)
        trainer.maybe_checkpoint()


class SyncLoop(Loop):
    """Collect `rollout` steps of every env, train each learner that has a batch, repeat."""

    def iterate(self) -> None:
        for _ in range(self.config.rollout):
            if not self.step_envs():
                return
        size = self.config.batch_size
        for pid in self.population.ids:
            buffer = self.collector.actors[pid].buffer
            if pid in self.state.stopped or buffer.count < size:
                continue
            if self.interrupted():
                return
            batch = buffer.take(size)
            try:
                stats = self.population.learn(pid, batch, interrupt=self.interrupted)
            except NonFiniteLossError as err:
                self.stop_learner(pid, str(err))
                continue
            self.after_update(pid, self.state.learner_steps[pid] + len(batch["rewards"]), stats)


class AsyncLoop(Loop):
    """Step envs without pause; full batches go to learner threads, which train meanwhile.

    The collector acts with each learner's published copy (`SharedPolicy`),
    never the model in training.
    """

    def __init__(self, trainer: Trainer, vec: Any) -> None:
        self.updates: queue.Queue = queue.Queue()
        self.shared = {pid: SharedPolicy(trainer.population[pid]) for pid in trainer.population.ids}
        super().__init__(trainer, vec)
        config = self.config
        self.threads = {
            pid: LearnerThread(
                pid,
                self.population[pid],
                self.shared[pid],
                config.num_batches_to_accumulate,
                config.max_policy_lag,
                self.updates,
                steps=self.state.learner_steps[pid],
                interrupt=self.interrupted,
            )
            for pid in self.population.ids
        }
        for thread in self.threads.values():
            thread.start()

    def _acting(self, policy_id: str) -> Any:
        return self.shared[policy_id]

    def lags(self) -> dict[str, LagStats]:
        return {pid: thread.lag for pid, thread in self.threads.items()}

    def iterate(self) -> None:
        size = self.config.batch_size
        backlog = size * (self.config.num_batches_to_accumulate + 1)
        for _ in range(self.config.rollout):
            if not self.step_envs():
                return
            for pid, thread in self.threads.items():
                buffer = self.collector.actors[pid].buffer
                while pid not in self.state.stopped and buffer.count >= size:
                    if thread.batches.full() and buffer.count < backlog:
                        break  # keep collecting; the learner is busy
                    # Blocks only when a whole extra backlog has piled up.
                    thread.batches.put(buffer.take(size))
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
        for thread in self.threads.values():
            thread.stop()
        for thread in self.threads.values():
            thread.join()
        self.drain_updates()

    def consistent(self, policy_id: str) -> Any:
        return self.threads[policy_id].train_lock

    def trained_steps(self, policy_id: str) -> int:
        return self.threads[policy_id].steps


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
