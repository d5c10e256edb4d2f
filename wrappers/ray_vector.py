"""The Ray backend of `wrappers.vector`: env workers are Ray actors, on any node of a cluster.

Each actor builds a contiguous slice of the envs and steps them on request into
arrays of its own; one buffer per step comes back through Ray and is copied
into the caller's arrays, which read exactly like those of the serial and
process backends. Actions go out per worker slice, packed into one bytes
object with the step flags. Both directions are plain bytes where they are
small: Ray spends far more per call on numpy arrays (or dicts and tuples of
them) than on bytes, and connect four makes about 240 calls a second
(tests/benchmarks/bench_ray.py --calls, 2 cores: a round trip to two actors
4.5-5.1 ms with arrays, 2.6-2.9 ms with bytes). A large buffer (image
observations) goes as an array, which Ray's object store passes without a
copy. Actors are spread over the cluster's nodes (Ray's SPREAD strategy)
and hold envs only, never policies, so their memory does not depend on the
league.

A worker actor that dies (its node lost, the process killed) is restarted by
Ray (`max_restarts`): its envs are rebuilt and reset, and their unfinished
episodes are abandoned: `episode_dropped[e]` is set for each of its envs, and
the caller drops those episodes (no result, no rating update).
`restarts` counts such restarts.
"""

from __future__ import annotations

import contextlib
import sys
import time
import traceback
from typing import Any

import cloudpickle
import numpy as np

from wrappers.errors import EnvError, WorkerError
from wrappers.multiagent import multiagent
from wrappers.vector import (
    VectorEnv,
    _Arrays,
    _env_error,
    _EnvSlot,
    _nbytes,
    _Spec,
    _spec_of,
    _steppable,
)

# Worker actors Ray brings back before the vector env gives up, and how long one may take.
MAX_RESTARTS = 3
RESTART_SECONDS = 120.0
# Ray sends results up to this size inside its reply (max_direct_call_object_size);
# larger ones go through the object store, where an array travels without a copy.
INLINE_BYTES = 100 * 1024


class EnvWorker:
    """A Ray actor: envs lo..hi-1, stepped into its own arrays on request."""

    def __init__(self, payload: bytes, lo: int, hi: int) -> None:
        env_fn, opts = cloudpickle.loads(payload)
        self.lo = lo
        envs = [multiagent(env_fn, **opts) for _ in range(hi - lo)]
        spec = _spec_of(envs[0])
        self.fields = spec.layout(hi - lo)
        self.buffer = np.zeros(_nbytes(self.fields), dtype=np.uint8)
        self.arrays = _Arrays(self.fields, spec.role_names, self.buffer)
        self.slots = [
            _EnvSlot(_steppable(env, spec), k, self.arrays, spec.seat_slots)
            for k, env in enumerate(envs)
        ]

    def reset(self, seed: int | None) -> bytes | np.ndarray | tuple:
        return self._run(
            lambda slot: slot.reset(None if seed is None else seed + self.lo + slot.env_id)
        )

    def step(self, packed: bytes) -> bytes | np.ndarray | tuple:
        """Step the envs flagged in `packed` (`pack_actions`)."""
        flags = unpack_actions(packed, self.arrays.actions, len(self.slots))
        return self._run(lambda slot: slot.step() if flags[slot.env_id] else None)

    def _run(self, fn: Any) -> bytes | np.ndarray | tuple:
        """This worker's arrays (one buffer), or (env id, kind, traceback, error) of a failure."""
        for slot in self.slots:
            try:
                fn(slot)
            except Exception as err:
                try:
                    err_bytes = cloudpickle.dumps(err)
                except Exception:
                    err_bytes = None
                return (
                    self.lo + slot.env_id,
                    type(err).__name__,
                    traceback.format_exc(),
                    err_bytes,
                )
        return self.buffer.tobytes() if self.buffer.nbytes <= INLINE_BYTES else self.buffer

    def rss_bytes(self) -> int:
        """Resident memory of this worker process (Linux), for memory checks."""
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def pid(self) -> int:
        import os

        return os.getpid()

    def node_id(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()


def pack_actions(actions: dict[str, np.ndarray], flags: np.ndarray) -> bytes:
    """One worker's actions (role by role, in order) and step flags as one bytes object."""
    return b"".join([*(a.tobytes() for a in actions.values()), flags.tobytes()])


def unpack_actions(packed: bytes, into: dict[str, np.ndarray], num_envs: int) -> np.ndarray:
    """Write `pack_actions`' actions into `into` (same roles and shapes); the flags."""
    offset = 0
    for values in into.values():
        values[...] = np.frombuffer(packed, values.dtype, values.size, offset).reshape(values.shape)
        offset += values.nbytes
    return np.frombuffer(packed, np.bool_, num_envs, offset)


class RayVectorEnv(VectorEnv):
    """`num_workers` Ray actors, each stepping `num_envs / num_workers` envs."""

    def __init__(
        self,
        payload: bytes,
        spec: _Spec,
        num_envs: int,
        num_workers: int,
        batch_size: int,
        seed: int | None,
        ordered: bool,
        max_restarts: int = MAX_RESTARTS,
    ) -> None:
        import ray

        super().__init__(spec, num_envs, batch_size, seed, ordered)
        if not ray.is_initialized():
            ray.init(num_cpus=None, include_dashboard=False, log_to_driver=False)
        self.num_workers = num_workers
        self._payload = payload
        self._per_worker = num_envs // num_workers
        fields = spec.layout(num_envs)
        self._attach(_Arrays(fields, spec.role_names, bytearray(_nbytes(fields))))
        self._worker_fields = spec.layout(self._per_worker)
        self._role_names = spec.role_names
        self.restarts = 0
        remote = ray.remote(EnvWorker).options(
            num_cpus=1, max_restarts=max_restarts, scheduling_strategy="SPREAD"
        )
        self.workers = [
            remote.remote(payload, w * self._per_worker, (w + 1) * self._per_worker)
            for w in range(num_workers)
        ]
        self._pending: dict[int, Any] = {}  # worker -> ObjectRef of its step or reset
        self._sent_ids: dict[int, np.ndarray] = {}
        self._reset_seed: int | None = None
        try:
            ray.get([w.node_id.remote() for w in self.workers])  # built, or their error
        except ray.exceptions.RayActorError as err:
            self.close()
            raise EnvError(
                f"vector env {self.name!r}: a Ray env worker failed to start: {err}"
            ) from None

    def worker_nodes(self) -> list[str]:
        """The Ray node each worker runs on."""
        import ray

        return ray.get([w.node_id.remote() for w in self.workers])

    def worker_rss_bytes(self) -> list[int]:
        import ray

        return ray.get([w.rss_bytes.remote() for w in self.workers])

    def _reset(self, seed: int | None) -> None:
        import ray

        self._reset_seed = seed
        refs = [w.reset.remote(seed) for w in self.workers]
        for worker, ref in enumerate(refs):
            self._take(worker, ray.get(ref))

    def _dispatch(self, ids: np.ndarray) -> None:
        flags = np.zeros(self.num_envs, dtype=bool)
        flags[ids] = True
        for worker in np.unique(ids // self._per_worker).tolist():
            if worker in self._pending:
                raise RuntimeError(
                    f"vector env {self.name!r}: worker {worker} is still stepping; recv() "
                    "its envs before sending it more"
                )
            lo, hi = worker * self._per_worker, (worker + 1) * self._per_worker
            actions = {role: self.actions[role][lo:hi] for role in self._role_names}
            packed = pack_actions(actions, flags[lo:hi])
            self._pending[worker] = self.workers[worker].step.remote(packed)
            self._sent_ids[worker] = ids[(ids >= lo) & (ids < hi)]

    def _collect(self, need: int) -> np.ndarray:
        import ray

        done: list[np.ndarray] = []
        count = 0
        while count < need:
            refs = list(self._pending.values())
            ready, _ = ray.wait(refs, num_returns=1)
            worker = next(w for w, ref in self._pending.items() if ref == ready[0])
            done.append(self._finish(worker))
            count += len(done[-1])
        return done[0] if len(done) == 1 else np.concatenate(done)

    def _collect_ids(self, ids: np.ndarray) -> None:
        for worker in np.unique(ids // self._per_worker).tolist():
            self._finish(worker)

    def _finish(self, worker: int) -> np.ndarray:
        import ray

        ref = self._pending.pop(worker)
        ids = self._sent_ids.pop(worker)
        try:
            self._take(worker, ray.get(ref))
        except ray.exceptions.RayActorError:
            self._restart(worker)
        return ids

    def _restart(self, worker: int) -> None:
        """The worker died: Ray restarts it; reset its envs and mark their episodes dropped."""
        import ray

        self.restarts += 1
        lo, hi = worker * self._per_worker, (worker + 1) * self._per_worker
        print(
            f"wrappers: Ray env worker {worker} (envs {lo}..{hi - 1}) died and was restarted; "
            f"its {hi - lo} unfinished episodes are dropped",
            file=sys.stderr,
        )
        seed = None if self._reset_seed is None else self._reset_seed + 7919 * self.restarts
        deadline = time.monotonic() + RESTART_SECONDS
        while True:
            try:
                self._take(worker, ray.get(self.workers[worker].reset.remote(seed)))
                break
            except ray.exceptions.ActorUnavailableError:  # still restarting
                if time.monotonic() > deadline:
                    raise WorkerError(
                        f"vector env {self.name!r}: Ray env worker {worker} did not come back "
                        f"within {RESTART_SECONDS:.0f} s of its restart"
                    ) from None
                time.sleep(0.2)
            except ray.exceptions.RayActorError as err:
                raise WorkerError(
                    f"vector env {self.name!r}: Ray env worker {worker} died and could not be "
                    f"restarted ({err})"
                ) from err
        self.episode_dropped[lo:hi] = True

    def _take(self, worker: int, result: bytes | np.ndarray | tuple) -> None:
        if isinstance(result, tuple):
            env_id, kind, tb, err_bytes = result
            err = cloudpickle.loads(err_bytes) if err_bytes else None
            raise _env_error(env_id, worker, err, kind, tb) from err
        theirs = _Arrays(self._worker_fields, self._role_names, result)
        lo, hi = worker * self._per_worker, (worker + 1) * self._per_worker
        for name in ("rewards", "terminated", "truncated", "active", "episode_return"):
            getattr(self, name)[lo:hi] = getattr(theirs, name)
        self.episode_length[lo:hi] = theirs.episode_length
        self.episode_done[lo:hi] = theirs.episode_done
        for role in self._role_names:
            self.obs[role][lo:hi] = theirs.obs[role]
            self.final_obs[role][lo:hi] = theirs.final_obs[role]
            if self.action_masks[role] is not None:
                self.action_masks[role][lo:hi] = theirs.action_masks[role]

    def _shutdown(self) -> None:
        import ray

        for worker in getattr(self, "workers", []):
            with contextlib.suppress(Exception):  # already gone with its cluster
                ray.kill(worker)
