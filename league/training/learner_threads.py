"""Async learning: each learner trains in a background thread while collection goes on.

The acting side keeps its own copy of the learner (`SharedPolicy`); after each
update the learner thread publishes its weights and version into that copy
under a short lock, so collection never waits for training. Batches wait in a
bounded queue (`num_batches_to_accumulate`); right before an update, samples
acted by a version older than `max_policy_lag` behind the learner are dropped.

Threads rather than processes: on 2 cores and on one GPU the learner's torch
kernels release the GIL and run beside env stepping (which, with
``num_workers > 0``, happens in worker processes anyway), while batches and
weights move by reference instead of being pickled between processes.
"""

from __future__ import annotations

import copy
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from league.algos.base import NonFiniteLossError


class SharedPolicy:
    """The acting copy of a learner: acts for the collector, receives published weights."""

    def __init__(self, algo: Any) -> None:
        self._lock = threading.Lock()
        self._policy = copy.deepcopy(algo)

    @property
    def version(self) -> int:
        return self._policy.version

    def act(self, obs: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, dict]:
        with self._lock:
            return self._policy.act(obs, mask)

    def value(self, obs: np.ndarray) -> np.ndarray:
        with self._lock:
            return self._policy.value(obs)

    def publish(self, algo: Any) -> None:
        weights = {k: v.detach().clone() for k, v in algo.model.state_dict().items()}
        with self._lock:
            self._policy.model.load_state_dict(weights)
            self._policy.version = algo.version

    def frozen(self) -> Any:
        with self._lock:
            return self._policy.frozen()


@dataclass
class LagStats:
    """Policy lag of trained samples (learner version - acting version) and drops."""

    trained: int = 0
    dropped: int = 0
    lag_min: int = 0
    lag_max: int = 0
    lag_sum: float = 0.0

    def add(self, lags: np.ndarray, dropped: int) -> None:
        self.dropped += dropped
        if len(lags):
            lo, hi = int(lags.min()), int(lags.max())
            self.lag_min = lo if self.trained == 0 else min(self.lag_min, lo)
            self.lag_max = max(self.lag_max, hi)
            self.lag_sum += float(lags.sum())
            self.trained += len(lags)

    @property
    def lag_avg(self) -> float:
        return self.lag_sum / max(self.trained, 1)


@dataclass
class Update:
    """What the learner thread hands back after one batch."""

    policy_id: str
    samples: int
    steps: int  # the learner's samples trained so far, this update included
    stats: dict[str, float] = field(default_factory=dict)
    stopped: str | None = None
    error: BaseException | None = None


class LearnerThread(threading.Thread):
    """Trains one learner on the batches put in its queue."""

    def __init__(
        self,
        policy_id: str,
        algo: Any,
        shared: SharedPolicy,
        max_queued: int,
        max_policy_lag: int,
        updates: queue.Queue,
        steps: int = 0,
        interrupt: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(name=f"learner-{policy_id}", daemon=True)
        self.policy_id = policy_id
        self.algo = algo
        self.shared = shared
        self.batches: queue.Queue = queue.Queue(maxsize=max_queued)
        self.max_policy_lag = max_policy_lag
        self.updates = updates
        self.lag = LagStats()
        # Samples trained so far; read with `train_lock` held, it matches the weights.
        self.steps = steps
        self.interrupt = interrupt
        # Held during an update: checkpoints take it to read a consistent state.
        self.train_lock = threading.Lock()

    def run(self) -> None:
        torch.set_num_threads(1)
        while True:
            batch = self.batches.get()
            if batch is None:
                return
            with self.train_lock:
                self.updates.put(self._update(batch))

    def _update(self, batch: dict[str, np.ndarray]) -> Update:
        lags = self.algo.version - batch["versions"]
        fresh = lags <= self.max_policy_lag
        dropped = int((~fresh).sum())
        if dropped:
            batch = {k: v[fresh] for k, v in batch.items()}
            # A dropped row may have been the predecessor of a kept one: the kept
            # segment then simply starts later, which GAE handles as is.
        self.lag.add(lags[fresh], dropped)
        if not len(batch["rewards"]):
            return Update(self.policy_id, 0, self.steps, {"dropped_stale": float(dropped)})
        try:
            stats = self.algo.learn(batch, interrupt=self.interrupt)
        except NonFiniteLossError as err:
            return Update(self.policy_id, 0, self.steps, stopped=str(err))
        except Exception as err:  # surfaced in the main thread, which stops the run
            return Update(self.policy_id, 0, self.steps, error=err)
        self.shared.publish(self.algo)
        samples = len(batch["rewards"])
        self.steps += samples
        stats["dropped_stale"] = float(dropped)
        return Update(self.policy_id, samples, self.steps, stats)

    def stop(self) -> None:
        """Finish the update in progress (it stops early if `interrupt` says so), drop the
        batches still queued, and end the thread."""
        while True:
            try:
                self.batches.get_nowait()
            except queue.Empty:
                break
        self.batches.put(None)
