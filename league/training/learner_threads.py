"""Async learning: each unit of learners trains in a background thread while collection goes on.

The acting side keeps its own copy of each learner (`SharedPolicy`, or for a
stack its `PolicyBank`); after each update the learner thread publishes the
weights and versions into that copy under a short lock, so acting never waits
for an update. Batches wait in a bounded queue (`num_batches_to_accumulate`
per learner); when it is full, collection waits for the learner, as Sample
Factory's collectors wait for a free trajectory buffer, rather than gather
samples too stale to train on. Right before an update, samples acted by a
version older than `max_policy_lag` behind the learner are dropped.

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
    """Trains one unit of the population (one learner, or one stack of learners) on the
    `(policy_id, batch)` items put in its queue.

    A stack trains several members in one update: the thread takes one item,
    then further queued items up to the first that belongs to a member already
    taken (one batch per learner per update; that item opens the next update).
    `publish(policy_ids)` hands the new weights to the
    acting side; `version(policy_id)` is a learner's current version.
    """

    def __init__(
        self,
        unit: Any,
        learn: Callable[[dict, Any], dict],
        publish: Callable[[list[str]], None],
        version: Callable[[str], int],
        max_queued: int,
        max_policy_lag: int,
        updates: queue.Queue,
        steps: dict[str, int],
        interrupt: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(name=f"learner-{'+'.join(unit.ids)}", daemon=True)
        self.unit = unit
        self.learn = learn
        self.publish = publish
        self.version = version
        self.batches: queue.Queue = queue.Queue(maxsize=max_queued * len(unit.ids))
        self.max_policy_lag = max_policy_lag
        self.updates = updates
        self.lag = {pid: LagStats() for pid in unit.ids}
        # Samples trained so far per learner; read with the unit's lock held, they
        # match the weights.
        self.steps = {pid: steps[pid] for pid in unit.ids}
        self.interrupt = interrupt
        self._carried: list[tuple[str, dict[str, np.ndarray]]] = []
        self._stopping = False

    def run(self) -> None:
        torch.set_num_threads(1)
        while True:
            if self._stopping:
                self._carried = []
            items = self._carried or [self.batches.get()]
            self._carried = []
            # One batch per learner per update. A second batch of a learner already
            # taken waits for the next update outside the queue: at most one such,
            # so the queue's bound still holds collection back.
            while not self._stopping and None not in items and len(items) < len(self.unit.ids):
                try:
                    item = self.batches.get_nowait()
                except queue.Empty:
                    break
                if item is not None and any(item[0] == pid for pid, _ in items):
                    self._carried = [item]
                    break
                items.append(item)
            if None in items:
                return
            batches = dict(items)
            with self.unit.lock:
                for update in self._update(batches):
                    self.updates.put(update)

    def _update(self, batches: dict[str, dict[str, np.ndarray]]) -> list[Update]:
        fresh_batches, dropped = {}, {}
        for pid, batch in batches.items():
            lags = self.version(pid) - batch["versions"]
            fresh = lags <= self.max_policy_lag
            dropped[pid] = int((~fresh).sum())
            if dropped[pid]:
                batch = {k: v[fresh] for k, v in batch.items()}
                # A dropped row may have been the predecessor of a kept one: the kept
                # segment then simply starts later, which GAE handles as is.
            self.lag[pid].add(lags[fresh], dropped[pid])
            if len(batch["rewards"]):
                fresh_batches[pid] = batch
        updates = [
            Update(pid, 0, self.steps[pid], {"dropped_stale": float(dropped[pid])})
            for pid in batches
            if pid not in fresh_batches
        ]
        if not fresh_batches:
            return updates
        try:
            results = self.learn(fresh_batches, self.interrupt)
        except Exception as err:  # surfaced in the main thread, which stops the run
            return updates + [Update(pid, 0, self.steps[pid], error=err) for pid in fresh_batches]
        self.publish([pid for pid, r in results.items() if isinstance(r, dict)])
        for pid, result in results.items():
            if isinstance(result, NonFiniteLossError):
                updates.append(Update(pid, 0, self.steps[pid], stopped=str(result)))
                continue
            samples = len(fresh_batches[pid]["rewards"])
            self.steps[pid] += samples
            result["dropped_stale"] = float(dropped[pid])
            updates.append(Update(pid, samples, self.steps[pid], result))
        return updates

    def stop(self) -> None:
        """Finish the update in progress (it stops early if `interrupt` says so), drop the
        batches still queued, and end the thread."""
        self._stopping = True
        while True:
            try:
                self.batches.get_nowait()
            except queue.Empty:
                break
        self.batches.put(None)
