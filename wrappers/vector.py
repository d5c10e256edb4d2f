"""Vector envs: `num_envs` copies of one multi-agent env stepped as a batch.

`vector(env_fn, num_envs, num_workers)` owns the envs and a set of
preallocated numpy arrays, one row per env, that every step writes in place:
observations and action masks per role, rewards and flags per seat, and the
actions the caller writes before `send()`. `send()` starts envs stepping and
`recv()` returns the ids of the envs whose results are in the arrays, so a
caller can act on those while other envs still step. Two backends share the
interface: serial (in process) and multiprocessing (worker processes own
contiguous slices of envs and write straight into shared memory; pipes carry
only one-byte commands). docs/vector.md states the layout and the guarantees.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import multiprocessing as mp
import operator
import os
import pickle
import select
import signal
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import cloudpickle
import numpy as np
from gymnasium import spaces

from wrappers.errors import ActionError, EnvError, RewardError, SpaceError, WorkerError
from wrappers.multiagent import MultiAgentEnv, StepOutput, _is_env, multiagent

# Errors that mean the caller or the env's spaces are at fault rather than the
# env crashing: both backends raise them as their own class.
_WRAPPER_ERRORS = (ActionError, EnvError, RewardError, SpaceError)

# One-byte commands and replies on the worker pipes.
_STEP, _RESET, _CLOSE = b"s", b"r", b"c"
_READY, _DONE, _ERROR = b"k", b"d", b"e"
# The least time a new worker has to build its envs and say so, whatever `timeout` is.
_STARTUP_SECONDS = 60.0

# How often an idle worker checks that its parent is still alive.
_PARENT_CHECK_S = 1.0
# How long close() waits for a worker to exit before terminating it.
_JOIN_S = 1.0
# Every array starts on a cache line.
_ALIGN = 64


@dataclass(frozen=True)
class _Field:
    """One array of the layout: `name` is the attribute, `role` None for per-seat arrays."""

    name: str
    role: str | None
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class _Spec:
    """What the vector needs to know about the env, read from one instance."""

    name: str
    possible_agents: list[str]
    roles: list[str]
    observation_spaces: list[spaces.Box]
    action_spaces: list[spaces.Space]

    @property
    def role_names(self) -> list[str]:
        return list(dict.fromkeys(self.roles))

    @property
    def seat_slots(self) -> list[tuple[str, int]]:
        """Seat index -> (role, index of the seat among its role's seats)."""
        seen: dict[str, int] = {}
        slots = []
        for role in self.roles:
            slots.append((role, seen.get(role, 0)))
            seen[role] = slots[-1][1] + 1
        return slots

    def layout(self, num_envs: int) -> list[_Field]:
        fields = []
        for role in self.role_names:
            j = self.roles.index(role)
            n = self.roles.count(role)
            obs, act = self.observation_spaces[j], self.action_spaces[j]
            obs_dtype = np.dtype(obs.dtype).str
            fields.append(_Field("obs", role, (num_envs, n, *obs.shape), obs_dtype))
            fields.append(_Field("final_obs", role, (num_envs, n, *obs.shape), obs_dtype))
            act_dtype = np.dtype(act.dtype).str
            fields.append(_Field("actions", role, (num_envs, n, *act.shape), act_dtype))
            if isinstance(act, spaces.Discrete):
                fields.append(_Field("action_masks", role, (num_envs, n, int(act.n)), "|b1"))
        seats = (num_envs, len(self.roles))
        for name, dtype in (
            ("rewards", "f4"),
            ("terminated", "|b1"),
            ("truncated", "|b1"),
            ("active", "|b1"),
            ("episode_return", "f4"),
            ("episode_length", "i4"),
        ):
            fields.append(_Field(name, None, seats, dtype))
        fields.append(_Field("episode_done", None, (num_envs,), "|b1"))
        fields.append(_Field("step_flags", None, (num_envs,), "|b1"))
        return fields


def _spec_of(env: Any) -> _Spec:
    n = int(env.num_agents)
    obs_spaces = list(getattr(env, "observation_spaces", None) or [env.observation_space] * n)
    act_spaces = list(getattr(env, "action_spaces", None) or [env.action_space] * n)
    seats = list(getattr(env, "possible_agents", None) or [f"agent_{j}" for j in range(n)])
    name = str(getattr(env, "name", type(env).__name__))
    roles = getattr(env, "roles", None)
    if roles is None:
        pairs = list(dict.fromkeys(zip(map(repr, obs_spaces), map(repr, act_spaces), strict=True)))
        if len(pairs) != 1:
            raise EnvError(
                f"env {name!r} has seats with different spaces but no `roles` attribute; "
                "vector() needs one role name per seat to lay out its arrays"
            )
        roles = ["agent"] * n
    for j, (o, a) in enumerate(zip(obs_spaces, act_spaces, strict=True)):
        if not isinstance(o, spaces.Box):
            raise SpaceError(f"env {name!r}, seat {seats[j]!r}: vector() needs Box observations")
        if not isinstance(a, spaces.Discrete | spaces.MultiDiscrete | spaces.Box):
            raise SpaceError(
                f"env {name!r}, seat {seats[j]!r}: action space {a} is not supported; "
                "use Discrete, MultiDiscrete or Box actions"
            )
    return _Spec(name, seats, list(roles), obs_spaces, act_spaces)


def _nbytes(fields: list[_Field]) -> int:
    total = 0
    for f in fields:
        total += -total % _ALIGN
        total += int(np.prod(f.shape)) * np.dtype(f.dtype).itemsize
    return max(total, 1)


class _Arrays:
    """The vector's arrays, carved from one flat buffer (shared memory for workers)."""

    def __init__(self, fields: list[_Field], role_names: list[str], buffer: Any) -> None:
        flat = np.frombuffer(buffer, dtype=np.uint8)
        self.obs: dict[str, np.ndarray] = {}
        self.final_obs: dict[str, np.ndarray] = {}
        self.actions: dict[str, np.ndarray] = {}
        self.action_masks: dict[str, np.ndarray | None] = dict.fromkeys(role_names)
        offset = 0
        for f in fields:
            offset += -offset % _ALIGN
            dtype = np.dtype(f.dtype)
            size = int(np.prod(f.shape)) * dtype.itemsize
            array = flat[offset : offset + size].view(dtype).reshape(f.shape)
            offset += size
            if f.role is None:
                setattr(self, f.name, array)
            else:
                getattr(self, f.name)[f.role] = array
        self.rewards: np.ndarray
        self.terminated: np.ndarray
        self.truncated: np.ndarray
        self.active: np.ndarray
        self.episode_return: np.ndarray
        self.episode_length: np.ndarray
        self.episode_done: np.ndarray
        self.step_flags: np.ndarray


class _SeatRows:
    """Per-seat views of one env's rows: `rows[j] = value` copies into seat j's view.

    Passed as a field of `StepOutput`, so the single-env adapters write straight
    into the vector's arrays without building lists.
    """

    __slots__ = ("views",)

    def __init__(self, views: list[np.ndarray | None]) -> None:
        self.views = views

    def __setitem__(self, seat: int, value: Any) -> None:
        self.views[seat][...] = value


class _ListEnv:
    """Adapts an env with only list-based `reset()`/`step()` (a pass-through env
    with ``is_multiagent=True``) to `reset_into`/`step_into`."""

    def __init__(self, env: Any, spec: _Spec) -> None:
        self.env = env
        self.name = spec.name
        self.num_agents = len(spec.roles)
        self.episode_ended = False
        self._all_legal = [
            np.ones(int(a.n), dtype=bool) if isinstance(a, spaces.Discrete) else None
            for a in spec.action_spaces
        ]
        # Seats whose episode ended since the env's episode began: when every
        # seat has ended, the env's episode is over (the contract ends each once).
        self._ended = [False] * self.num_agents

    def reset_into(self, out: StepOutput, seed: int | None = None) -> None:
        obs, infos = self.env.reset(seed=seed)
        self._ended = [False] * self.num_agents
        self._write(obs, infos, out)

    def step_into(self, actions: Sequence[Any], out: StepOutput) -> None:
        # Copies, because a list env may keep the actions it is given.
        step = self.env.step([np.array(a) if np.ndim(a) else a.item() for a in actions])
        obs, rewards, terminated, truncated, infos = step
        for j in range(self.num_agents):
            out.rewards[j] = rewards[j]
            if not (terminated[j] or truncated[j]):
                continue
            out.terminated[j], out.truncated[j] = terminated[j], truncated[j]
            if "final_obs" not in infos[j]:
                raise EnvError(
                    f"env {self.name!r}: seat {j}'s episode ended without infos[{j}]['final_obs']"
                )
            out.final_obs[j] = infos[j]["final_obs"]
            episode = infos[j].get("episode", {})
            out.episode_return[j] = episode.get("return", 0.0)
            out.episode_length[j] = episode.get("length", 0)
            self._ended[j] = True
        self.episode_ended = all(self._ended)
        if self.episode_ended:
            self._ended = [False] * self.num_agents
        self._write(obs, infos, out)

    def _write(self, obs: list[Any], infos: list[dict], out: StepOutput) -> None:
        for j, legal in enumerate(self._all_legal):
            out.obs[j] = obs[j]
            out.active[j] = infos[j].get("is_active", True)
            if legal is not None:
                out.masks[j] = infos[j].get("action_mask", legal)

    def close(self) -> None:
        close = getattr(self.env, "close", None)
        if close is not None:
            close()


def _steppable(env: Any, spec: _Spec) -> Any:
    """The env itself when it writes into rows natively, else a list adapter."""
    native = isinstance(env, MultiAgentEnv) and (type(env).step_into is not MultiAgentEnv.step_into)
    return env if native else _ListEnv(env, spec)


class _EnvSlot:
    """One env and its rows of the vector's arrays."""

    __slots__ = ("actions", "done", "env", "env_id", "out")

    def __init__(self, env: Any, env_id: int, arrays: _Arrays, seat_slots: list) -> None:
        self.env = env
        self.env_id = env_id
        k = env_id
        masks = arrays.action_masks
        self.out = StepOutput(
            obs=_SeatRows([arrays.obs[r][k, s, ...] for r, s in seat_slots]),
            masks=_SeatRows([None if masks[r] is None else masks[r][k, s] for r, s in seat_slots]),
            final_obs=_SeatRows([arrays.final_obs[r][k, s, ...] for r, s in seat_slots]),
            rewards=arrays.rewards[k],
            terminated=arrays.terminated[k],
            truncated=arrays.truncated[k],
            active=arrays.active[k],
            episode_return=arrays.episode_return[k],
            episode_length=arrays.episode_length[k],
        )
        # `[k, s, ...]` keeps even scalar (Discrete) actions as views, so the env
        # reads what the caller wrote into `vec.actions` without any copying here.
        self.actions = [arrays.actions[r][k, s, ...] for r, s in seat_slots]
        self.done = arrays.episode_done

    def reset(self, seed: int | None) -> None:
        self._clear()
        self.env.reset_into(self.out, seed)
        self.done[self.env_id] = False

    def step(self) -> None:
        self._clear()
        self.env.step_into(self.actions, self.out)
        self.done[self.env_id] = self.env.episode_ended

    def _clear(self) -> None:
        out = self.out
        out.rewards.fill(0.0)
        out.terminated.fill(False)
        out.truncated.fill(False)


def _env_error(
    env_id: int, worker: int | None, err: BaseException | None, kind: str, tb: str
) -> Exception:
    """The error the caller sees for an exception an env raised: wrapper errors
    keep their class (so `except ActionError` works with every backend), anything
    else becomes a `WorkerError`. Both carry the env id and the traceback text."""
    where = f"env {env_id}" + ("" if worker is None else f" (worker process {worker})")
    message = f"{where} raised {kind}\n\n{tb.rstrip()}"
    if isinstance(err, _WRAPPER_ERRORS):
        return type(err)(message)
    return WorkerError(message)


class VectorEnv:
    """`num_envs` copies of one env; results land in the arrays below, in place.

    Arrays (numpy; shared memory with worker processes), written by `reset()`
    and by each env's step, read after `recv()` returns its id:

    - ``obs[role]``, ``final_obs[role]``: ``(num_envs, seats of role, *obs_shape)``
    - ``action_masks[role]``: ``(num_envs, seats of role, n)`` bool, None unless Discrete
    - ``actions[role]``: ``(num_envs, seats of role, *action_shape)``, written by the caller
    - ``rewards``, ``episode_return`` float32; ``terminated``, ``truncated``,
      ``active`` bool; ``episode_length`` int32: all ``(num_envs, num_agents)``
    - ``episode_done``: ``(num_envs,)`` bool, the env's whole episode ended
      (and the env auto-reset) at its last step
    """

    def __init__(
        self, spec: _Spec, num_envs: int, batch_size: int, seed: int | None, ordered: bool
    ) -> None:
        self.name = spec.name
        self.num_envs = num_envs
        self.num_agents = len(spec.roles)
        self.possible_agents = list(spec.possible_agents)
        self.roles = list(spec.roles)
        self.role_names = spec.role_names
        self.role_seats = {
            r: [j for j, x in enumerate(self.roles) if x == r] for r in self.role_names
        }
        self.observation_spaces = list(spec.observation_spaces)
        self.action_spaces = list(spec.action_spaces)
        self.batch_size = batch_size
        # ordered: recv() returns the envs of each send() in the order they were sent.
        self.ordered = ordered
        self._sent_order: collections.deque[np.ndarray] = collections.deque()
        self.num_workers = 0
        self._seed = seed
        # Returned by reset() and recv(), kept by send(): read-only so no caller edits it.
        self._all_ids = np.arange(num_envs)
        self._all_ids.flags.writeable = False
        self._last_ids = self._all_ids
        self._busy = np.zeros(num_envs, dtype=bool)
        self._in_flight = 0
        self._closed = False
        # Envs whose episode was abandoned (a Ray worker restarted): the caller drops
        # those episodes and clears the flags. Other backends never set them.
        self.episode_dropped = np.zeros(num_envs, dtype=bool)

    def _attach(self, arrays: _Arrays) -> None:
        self._arrays = arrays
        self.obs = arrays.obs
        self.final_obs = arrays.final_obs
        self.action_masks = arrays.action_masks
        self.actions = arrays.actions
        self.rewards = arrays.rewards
        self.terminated = arrays.terminated
        self.truncated = arrays.truncated
        self.active = arrays.active
        self.episode_return = arrays.episode_return
        self.episode_length = arrays.episode_length
        self.episode_done = arrays.episode_done

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} num_envs={self.num_envs} "
            f"seats={self.possible_agents}>"
        )

    def __enter__(self) -> VectorEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public ------------------------------------------------------------

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset every env (env k with ``seed + k``); returns all env ids.

        Without a seed, the first reset uses the `seed` given to `vector()`.
        Envs still stepping are waited for and their results dropped.
        """
        self._check_open()
        if seed is None:
            seed, self._seed = self._seed, None
        if self._in_flight:
            self._guard(self._collect, self._in_flight)
        self._sent_order.clear()
        self._guard(self._reset, seed)
        self._busy[:] = False
        self._in_flight = 0
        self._last_ids = self._all_ids
        return self._all_ids

    def send(
        self,
        actions: dict[str, Any] | Any | None = None,
        env_ids: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        """Start the envs `env_ids` (default: those the last `recv()` returned) stepping.

        `actions`: role -> array ``(len(env_ids), seats of role, *action_shape)``;
        a single array when the env has one role; None when the actions are
        already in `vec.actions`. Inactive seats' actions are ignored.
        """
        self._check_open()
        ids = self._last_ids if env_ids is None else self._env_ids(env_ids)
        # Checked before writing actions: a worker may be reading a busy env's.
        if self._busy[ids].any():
            raise RuntimeError(
                f"vector env {self.name!r}: envs {ids[self._busy[ids]].tolist()} are still "
                "stepping; recv() their results before sending them actions again"
            )
        if actions is not None:
            self._write_actions(actions, ids)
        self._guard(self._dispatch, ids)
        self._busy[ids] = True
        self._in_flight += len(ids)
        if self.ordered:
            self._sent_order.append(ids)

    def recv(self) -> np.ndarray:
        """Wait until at least `batch_size` envs (or all those stepping, if fewer)
        have their results in the arrays; returns their ids. An `ordered` vector env
        returns the envs of the oldest `send()` still stepping, and only those."""
        self._check_open()
        if not self._in_flight:
            raise RuntimeError(
                f"vector env {self.name!r}: recv() with no envs stepping; send() actions first"
            )
        if self.ordered:
            ids = self._sent_order.popleft()
            self._guard(self._collect_ids, ids)
            self._busy[ids] = False
            self._in_flight -= len(ids)
            self._last_ids = ids
            return ids
        return self._receive(min(self.batch_size, self._in_flight))

    def step(self, actions: dict[str, Any] | Any | None = None) -> np.ndarray:
        """Send actions to every env and wait for all of them; returns all env ids."""
        self.send(actions, self._all_ids)
        self._sent_order.clear()
        return self._receive(self._in_flight)

    def close(self) -> None:
        """Close the envs and stop the workers; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self._shutdown()

    # -- shared pieces -----------------------------------------------------

    def _receive(self, need: int) -> np.ndarray:
        ids = self._guard(self._collect, need)
        self._busy[ids] = False
        self._in_flight -= len(ids)
        self._last_ids = ids
        return ids

    def _guard(self, fn: Callable[..., Any], *args: Any) -> Any:
        # An env error or Ctrl-C mid-batch leaves envs in unknown states: the
        # vector closes (stopping every worker) before the exception goes on.
        try:
            return fn(*args)
        except BaseException:
            self.close()
            raise

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"vector env {self.name!r} is closed")

    def _env_ids(self, env_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        if env_ids is self._all_ids:
            return self._all_ids
        ids = np.array(env_ids, dtype=np.int64).reshape(-1)
        if len(ids) == 0:
            raise ValueError(f"vector env {self.name!r}: send() got no env ids")
        if ids.min() < 0 or ids.max() >= self.num_envs:
            raise ValueError(
                f"vector env {self.name!r}: env ids must be in 0..{self.num_envs - 1}, "
                f"got {ids.tolist()}"
            )
        if len(np.unique(ids)) != len(ids):
            raise ValueError(f"vector env {self.name!r}: env ids repeat: {ids.tolist()}")
        return ids

    def _write_actions(self, actions: Any, ids: np.ndarray) -> None:
        if not isinstance(actions, dict):
            if len(self.role_names) != 1:
                raise ActionError(
                    f"vector env {self.name!r} has roles {self.role_names}: pass actions as a "
                    "dict role -> array"
                )
            actions = {self.role_names[0]: actions}
        missing = [r for r in self.role_names if r not in actions]
        unknown = [r for r in actions if r not in self.actions]
        if missing or unknown:
            raise ActionError(
                f"vector env {self.name!r}: actions need exactly the roles "
                f"{self.role_names}; missing {missing}, unknown {unknown}"
            )
        # Every role is checked before any is written: refused actions change nothing.
        checked = [(self.actions[r], self._checked(r, actions[r], len(ids))) for r in actions]
        for target, a in checked:
            target[ids] = a

    def _checked(self, role: str, actions: Any, num_ids: int) -> np.ndarray:
        target = self.actions[role]
        a = np.asarray(actions)
        expected = (num_ids, *target.shape[1:])
        if a.shape != expected:
            raise ActionError(
                f"vector env {self.name!r}: actions for role {role!r} have shape {a.shape}, "
                f"expected {expected} (envs sent, seats of the role, *action shape)"
            )
        if not np.can_cast(a.dtype, target.dtype, "same_kind"):
            raise ActionError(
                f"vector env {self.name!r}: actions for role {role!r} are {a.dtype}, which "
                f"does not cast safely to the action space's {target.dtype}"
            )
        return a

    # -- backend hooks -------------------------------------------------------

    def _reset(self, seed: int | None) -> None:
        raise NotImplementedError

    def _dispatch(self, ids: np.ndarray) -> None:
        raise NotImplementedError

    def _collect(self, need: int) -> np.ndarray:
        raise NotImplementedError

    def _collect_ids(self, ids: np.ndarray) -> None:
        raise NotImplementedError

    def _shutdown(self) -> None:
        raise NotImplementedError


class SerialVectorEnv(VectorEnv):
    """Every env in this process; `recv()` steps the envs sent since the last one."""

    def __init__(
        self, envs: list[Any], spec: _Spec, batch_size: int, seed: int | None, ordered: bool
    ) -> None:
        super().__init__(spec, len(envs), batch_size, seed, ordered)
        fields = spec.layout(len(envs))
        arrays = _Arrays(fields, spec.role_names, bytearray(_nbytes(fields)))
        self._attach(arrays)
        self._slots = [_EnvSlot(env, k, arrays, spec.seat_slots) for k, env in enumerate(envs)]
        self._queued: list[np.ndarray] = []

    def _reset(self, seed: int | None) -> None:
        for slot in self._slots:
            self._run(slot, slot.reset, None if seed is None else seed + slot.env_id)

    def _dispatch(self, ids: np.ndarray) -> None:
        self._queued.append(ids)

    def _collect(self, need: int) -> np.ndarray:
        queued, self._queued = self._queued, []
        for ids in queued:
            for k in ids:
                slot = self._slots[k]
                self._run(slot, slot.step)
        return queued[0] if len(queued) == 1 else np.concatenate(queued)

    def _collect_ids(self, ids: np.ndarray) -> None:
        self._queued.pop(0)  # the oldest send: `ids`
        for k in ids:
            slot = self._slots[k]
            self._run(slot, slot.step)

    def _run(self, slot: _EnvSlot, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as err:
            tb = traceback.format_exc()
            raise _env_error(slot.env_id, None, err, type(err).__name__, tb) from err

    def _shutdown(self) -> None:
        for slot in self._slots:
            slot.env.close()


class ProcessVectorEnv(VectorEnv):
    """Worker processes, each stepping a contiguous slice of envs in shared memory."""

    def __init__(
        self,
        payload: bytes,
        spec: _Spec,
        num_envs: int,
        num_workers: int,
        batch_size: int,
        seed: int | None,
        start_method: str,
        timeout: float | None,
        ordered: bool,
    ) -> None:
        super().__init__(spec, num_envs, batch_size, seed, ordered)
        self.num_workers = num_workers
        self.start_method = start_method
        self._timeout = timeout
        self._per_worker = num_envs // num_workers
        ctx = mp.get_context(start_method)
        fields = spec.layout(num_envs)
        buffer = ctx.RawArray(ctypes.c_uint8, _nbytes(fields))
        self._attach(_Arrays(fields, spec.role_names, buffer))
        self._conns: list[Connection] = []
        # The worker processes (multiprocessing.Process), for monitoring.
        self.workers: list[Any] = []
        # Registered before any worker starts, so a failure from here on, garbage
        # collection and interpreter exit all stop the workers.
        self._finalizer = weakref.finalize(self, _stop_workers, self.workers, self._conns)
        for w in range(num_workers):
            lo, hi = w * self._per_worker, (w + 1) * self._per_worker
            parent_end, child_end = ctx.Pipe()
            proc = ctx.Process(
                target=_worker,
                args=(lo, hi, payload, child_end, buffer, fields, spec.role_names, spec.seat_slots),
                name=f"vector-{spec.name}-{w}",
                daemon=True,
            )
            self._conns.append(parent_end)
            self.workers.append(proc)
            try:
                proc.start()
            except BaseException:
                self.close()
                raise
            child_end.close()
        # Envs of worker w, and those in flight there (None: the worker is idle);
        # every worker owes a first reply saying its envs are built.
        per = self._per_worker
        self._slices = [self._all_ids[w * per : (w + 1) * per] for w in range(num_workers)]
        self._sent: list[np.ndarray | None] = list(self._slices)
        self._conn_fds = [conn.fileno() for conn in self._conns]
        # One poll object for the life of the vector env (multiprocessing's
        # wait() builds a selector per call): each worker's pipe says a reply
        # is ready, its sentinel that the process ended.
        self._poller = select.poll()
        self._pollers: dict[tuple[int, ...], Any] = {}  # ordered recv: per set of workers
        self._fd_owner: dict[int, int] = {}
        for w, (fd, proc) in enumerate(zip(self._conn_fds, self.workers, strict=True)):
            for waitable in (fd, proc.sentinel):
                self._poller.register(waitable, select.POLLIN)
                self._fd_owner[waitable] = w
        # Starting a worker (a new interpreter's imports, then its envs) may take longer
        # than a step is allowed to: the first reply gets at least _STARTUP_SECONDS.
        startup = None if timeout is None else max(timeout, _STARTUP_SECONDS)
        self._guard(self._gather, num_envs, _READY, None, startup)

    def _reset(self, seed: int | None) -> None:
        message = _RESET + pickle.dumps(seed)
        for w in range(self.num_workers):
            self._send(w, message)
            self._sent[w] = self._slices[w]
        self._gather(self.num_envs, _DONE)

    def _dispatch(self, ids: np.ndarray) -> None:
        if len(ids) == self.num_envs:  # every env (ids are unique): every worker, whole slices
            owners, parts = None, list(enumerate(self._slices))
        else:
            owners = ids // self._per_worker
            parts = [(w, ids[owners == w]) for w in np.unique(owners).tolist()]
        for w, _ in parts:
            if self._sent[w] is not None:
                lo, hi = self._slices[w][0], self._slices[w][-1]
                raise RuntimeError(
                    f"vector env {self.name!r}: worker {w} (envs {lo}..{hi}) is still stepping "
                    f"envs {self._sent[w].tolist()}; recv() them before sending it more"
                )
        flags = self._arrays.step_flags
        for w, part in parts:
            if owners is None:
                flags[part[0] : part[-1] + 1] = True
            else:
                flags[self._slices[w][0] : self._slices[w][-1] + 1] = False
                flags[part] = True
            self._send(w, _STEP)
            self._sent[w] = part

    def _collect(self, need: int) -> np.ndarray:
        return self._gather(need, _DONE)

    def _collect_ids(self, ids: np.ndarray) -> None:
        workers = tuple(np.unique(ids // self._per_worker).tolist())
        if workers not in self._pollers:
            poller = select.poll()
            for w in workers:
                poller.register(self._conn_fds[w], select.POLLIN)
                poller.register(self.workers[w].sentinel, select.POLLIN)
            self._pollers[workers] = poller
        self._gather(len(ids), _DONE, self._pollers[workers])

    def _gather(
        self, need: int, expected: bytes, poller: Any = None, timeout: float | None = None
    ) -> np.ndarray:
        """Wait for replies (of the workers `poller` watches; default all) until `need`
        envs are done, at most `timeout` seconds (None: the vector env's); return their
        ids."""
        poller = poller or self._poller
        done: list[np.ndarray] = []
        count = 0
        timeout = self._timeout if timeout is None else timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        while count < need:
            wait_ms = None if deadline is None else max(deadline - time.monotonic(), 0) * 1000
            events = poller.poll(wait_ms)
            if not events:
                self._raise_timeout(timeout)
            for fd, _ in events:
                w = self._fd_owner[fd]
                part = self._sent[w]
                # Only a worker with work in flight has anything to say: from
                # an idle one this is its death (seen here even between steps).
                if part is None or fd != self._conn_fds[w]:
                    self._fail(w, self._read(w))
                try:
                    message = self._conns[w].recv_bytes()
                except (EOFError, OSError):
                    message = b""
                if message != expected:
                    self._fail(w, message)
                self._sent[w] = None
                done.append(part)
                count += len(part)
        return done[0] if len(done) == 1 else np.concatenate(done)

    def _read(self, w: int) -> bytes:
        """Worker w's next message, or b"" when there is none (it died)."""
        conn = self._conns[w]
        try:
            return conn.recv_bytes() if conn.poll() else b""
        except (EOFError, OSError):
            return b""

    def _fail(self, w: int, message: bytes) -> None:
        """Raise the error worker w reported in `message`, or report its death."""
        if message[:1] == _ERROR:
            env_id, kind, tb, err_bytes = pickle.loads(message[1:])
            err = _loads_or_none(err_bytes)
            raise _env_error(env_id, w, err, kind, tb) from err
        proc = self.workers[w]
        proc.join(0.5)
        lo, hi = self._slices[w][0], self._slices[w][-1]
        hint = ""
        if self.start_method != "fork":
            hint = (
                f"; with start_method={self.start_method!r} the main script must guard its "
                "code with `if __name__ == '__main__':`"
            )
        raise WorkerError(
            f"vector env {self.name!r}: worker process {w} (pid {proc.pid}, envs {lo}..{hi}) "
            f"died without reporting an error, exit code {proc.exitcode}. A negative code is "
            "the signal that killed it (-9: SIGKILL, e.g. the out-of-memory killer); a "
            f"positive one means it failed before it could report: see its stderr{hint}"
        )

    def _raise_timeout(self, timeout: float) -> None:
        stuck = [w for w, s in enumerate(self._sent) if s is not None]
        raise WorkerError(
            f"vector env {self.name!r}: no reply from worker processes {stuck} within "
            f"{timeout} s (timeout={self._timeout}); an env may be stuck in a step"
        )

    def _send(self, w: int, message: bytes) -> None:
        try:
            self._conns[w].send_bytes(message)
        except OSError:
            self.workers[w].join(0.5)
            self._fail(w, self._read(w))

    def _shutdown(self) -> None:
        self._finalizer()


def _loads_or_none(data: bytes | None) -> BaseException | None:
    if data is None:
        return None
    try:
        return pickle.loads(data)
    except Exception:
        return None


def _stop_workers(procs: list[Any], conns: list[Connection]) -> None:
    """Ask every worker to exit, then terminate (and kill) those that do not."""
    for proc, conn in zip(procs, conns, strict=False):
        if proc.pid is not None and proc.is_alive():
            with contextlib.suppress(OSError):
                conn.send_bytes(_CLOSE)
    deadline = time.monotonic() + _JOIN_S
    for proc in procs:
        if proc.pid is None:
            continue
        proc.join(max(deadline - time.monotonic(), 0))
        if proc.is_alive():
            proc.terminate()
            proc.join(0.5)
        if proc.is_alive():
            proc.kill()
            proc.join()
    for conn in conns:
        conn.close()


def _worker(
    lo: int,
    hi: int,
    payload: bytes,
    conn: Connection,
    buffer: Any,
    fields: list[_Field],
    role_names: list[str],
    seat_slots: list[tuple[str, int]],
) -> None:
    """A worker process: build envs lo..hi-1, then step them on command."""
    # Ctrl-C goes to the whole process group; the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch = sys.modules.get("torch")
    if torch is not None:
        # Inherited through fork: the parent's OpenMP pool is not usable here,
        # and envs in every worker must not each spread over all cores.
        torch.set_num_threads(1)
    slots: list[_EnvSlot] = []
    env_id = lo
    try:
        try:
            env_fn, opts = cloudpickle.loads(payload)
            arrays = _Arrays(fields, role_names, buffer)
            for env_id in range(lo, hi):
                env = multiagent(env_fn, **opts)
                slots.append(_EnvSlot(_steppable(env, _spec_of(env)), env_id, arrays, seat_slots))
        except BaseException as err:
            _report(conn, env_id, err)
            return
        _serve(conn, slots, arrays.step_flags)
    finally:
        for slot in slots:
            with contextlib.suppress(Exception):
                slot.env.close()
        conn.close()


def _serve(conn: Connection, slots: list[_EnvSlot], flags: np.ndarray) -> None:
    """The worker's command loop; returns on close or when the parent is gone."""
    parent = mp.parent_process()
    parent_pid = os.getppid()
    try:
        conn.send_bytes(_READY)
    except OSError:
        return
    while True:
        try:
            if not conn.poll(_PARENT_CHECK_S):
                if os.getppid() != parent_pid or (parent is not None and not parent.is_alive()):
                    return
                continue
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return
        env_id = slots[0].env_id
        try:
            if message == _STEP:
                for slot in slots:
                    if flags[slot.env_id]:
                        env_id = slot.env_id
                        slot.step()
            elif message[:1] == _RESET:
                seed = pickle.loads(message[1:])
                for slot in slots:
                    env_id = slot.env_id
                    slot.reset(None if seed is None else seed + env_id)
            else:
                return
        except BaseException as err:
            _report(conn, env_id, err)
            return
        try:
            conn.send_bytes(_DONE)
        except OSError:
            return


def _report(conn: Connection, env_id: int, err: BaseException) -> None:
    tb = traceback.format_exc()
    try:
        err_bytes: bytes | None = pickle.dumps(err)
    except Exception:
        err_bytes = None
    with contextlib.suppress(OSError):
        conn.send_bytes(_ERROR + pickle.dumps((env_id, type(err).__name__, tb, err_bytes)))


def default_start_method() -> str:
    """fork where it is safe, else forkserver (or spawn where there is no forkserver).

    fork starts workers in milliseconds with every module already imported. It
    is safe while this process runs one Python thread (no other thread can hold
    a lock the child would inherit locked) and CUDA is not initialised (a forked
    child cannot use it). Native thread pools (OpenBLAS, torch's intra-op pool)
    reinitialise after fork; workers also set torch to one thread.
    """
    methods = mp.get_all_start_methods()
    torch = sys.modules.get("torch")
    cuda = torch is not None and torch.cuda.is_initialized()
    if (
        sys.platform.startswith("linux")
        and "fork" in methods
        and threading.active_count() == 1
        and not cuda
    ):
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def _integer(name: str, value: Any, low: int, high: int | None = None) -> int:
    try:
        number = operator.index(value)
    except TypeError:
        number = None
    if number is None or number < low or (high is not None and number > high):
        bounds = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{name}={value!r}; expected an integer {bounds}")
    return number


def vector(
    env_fn: Any,
    num_envs: int = 8,
    num_workers: int = 0,
    batch_size: int | None = None,
    seed: int | None = None,
    start_method: str | None = None,
    *,
    timeout: float | None = None,
    ordered: bool = False,
    backend: str = "auto",
    **multiagent_opts: Any,
) -> VectorEnv:
    """`num_envs` copies of ``multiagent(env_fn, **multiagent_opts)`` as one vector env.

    Args:
        env_fn: what `multiagent` accepts, except an env instance (each copy
            needs its own): a function, env module, registry id or import path.
            Sent to workers with cloudpickle, so lambdas and closures work.
        num_envs: number of envs.
        num_workers: 0 steps every env in this process; n >= 1 starts n worker
            processes, each owning ``num_envs / n`` contiguous envs.
        batch_size: `recv()` waits until at least this many envs have results
            (default: all). With workers, a multiple of the envs per worker.
        seed: the seed of the first `reset()` when it is given none.
        start_method: multiprocessing start method; default `default_start_method()`.
        timeout: seconds `recv()`/`reset()` wait for a worker before raising
            `WorkerError`; None waits as long as the workers are alive. A worker's
            start (its imports and envs) gets at least 60 s.
        ordered: `recv()` returns the envs of each `send()` in the order they were
            sent (the oldest batch still stepping, and only it), so a schedule that
            keeps several batches in flight is the same with or without workers.
        backend: "auto" (in this process without workers, else worker processes),
            "serial", "process", or "ray": `num_workers` Ray actors spread over the
            cluster `ray.init` connected to (wrappers/ray_vector.py).
        multiagent_opts: `pad`, `roles`, `illegal_actions`, `env_kwargs`, `opening_plies`,
            `opening_share` of `multiagent`.
    """
    if _is_env(env_fn) and not isinstance(env_fn, type):
        raise EnvError(
            f"vector() got an env instance ({type(env_fn).__name__}); it needs something that "
            "builds a new env per call, e.g. `connect_four_v3.env` or `lambda: MyEnv()`"
        )
    num_envs = _integer("num_envs", num_envs, 1)
    num_workers = _integer("num_workers", num_workers, 0, num_envs)
    if num_workers and num_envs % num_workers:
        raise ValueError(
            f"num_envs={num_envs} does not split evenly over num_workers={num_workers}; "
            "use a num_envs that is a multiple of num_workers"
        )
    batch_size = num_envs if batch_size is None else _integer("batch_size", batch_size, 1)
    per_worker = num_envs // num_workers if num_workers else 1
    if batch_size > num_envs or batch_size % per_worker:
        raise ValueError(
            f"batch_size={batch_size} must be in 1..num_envs={num_envs} and a multiple of the "
            f"{per_worker} envs per worker (num_envs / num_workers), since each worker "
            "replies for all its envs at once"
        )
    backends = ("auto", "serial", "process", "ray")
    if backend not in backends:
        raise ValueError(f"backend={backend!r}; expected one of {backends}")
    if backend == "auto":
        backend = "process" if num_workers else "serial"
    if backend != "serial" and not num_workers:
        raise ValueError(f"backend={backend!r} steps envs in workers: give num_workers >= 1")
    if backend == "serial":
        envs = [multiagent(env_fn, **multiagent_opts) for _ in range(num_envs)]
        spec = _spec_of(envs[0])
        return SerialVectorEnv([_steppable(e, spec) for e in envs], spec, batch_size, seed, ordered)
    probe = multiagent(env_fn, **multiagent_opts)
    close = getattr(probe, "close", None)
    try:
        spec = _spec_of(probe)
    finally:
        if close is not None:
            close()
    payload = cloudpickle.dumps((env_fn, multiagent_opts))
    if backend == "ray":
        from wrappers.ray_vector import RayVectorEnv

        return RayVectorEnv(payload, spec, num_envs, num_workers, batch_size, seed, ordered)
    start_method = start_method or default_start_method()
    if start_method not in mp.get_all_start_methods():
        raise ValueError(
            f"start_method={start_method!r}; this platform has {mp.get_all_start_methods()}"
        )
    return ProcessVectorEnv(
        payload, spec, num_envs, num_workers, batch_size, seed, start_method, timeout, ordered
    )
