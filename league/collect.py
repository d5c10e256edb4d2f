"""Experience collection: the vector env, the mapping and the policies meet here.

At every step the collector

1. adds each seat's reward to that seat's *pending* sample (the decision the
   reward follows from, per the env contract);
2. closes the pending samples of seats whose episode ended, bootstrapping
   truncated ones from ``final_obs``;
3. reports finished matches to the mapping and asks it for the next episode's
   seat -> policy assignment;
4. runs one forward pass per policy over all active seats it plays, closes the
   previous pending sample of each such seat (its next value is known now) and
   opens a new one.

Only learners' decisions become samples; snapshots and fixed policies act but
never learn. Inactive seats are never sampled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def batch_act(policy: Any) -> Callable[[np.ndarray, np.ndarray | None], tuple[np.ndarray, dict]]:
    """`policy`'s acting as ``act(obs_batch, mask_batch) -> (actions, extras)``.

    Learners and frozen snapshots already act that way; fixed policies return
    bare actions; a user callable (`CallablePolicy`) is written for one
    observation at a time, so it is called once per row.
    """
    from league.policies import CallablePolicy

    if isinstance(policy, CallablePolicy):

        def act_rows(obs: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, dict]:
            rows = [policy.act(o, None if mask is None else mask[i]) for i, o in enumerate(obs)]
            return np.asarray(rows), {}

        return act_rows

    def act(obs: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, dict]:
        out = policy.act(obs, mask)
        return out if isinstance(out, tuple) else (np.asarray(out), {})

    return act


@dataclass
class Actor:
    """A policy as the collector sees it: something that acts, maybe a learner."""

    policy_id: str
    act: Callable[[np.ndarray, np.ndarray | None], tuple[np.ndarray, dict[str, np.ndarray]]]
    learner: Any = None  # the Algorithm when this policy learns
    buffer: SampleBuffer | None = None


@dataclass
class SampleBuffer:
    """Completed decisions of one learner, handed out oldest first as batches."""

    keep_next_obs: bool
    chunks: list[dict[str, np.ndarray]] = field(default_factory=list)
    count: int = 0

    def add(self, rows: dict[str, np.ndarray]) -> None:
        n = len(rows["rewards"])
        if n:
            self.chunks.append(rows)
            self.count += n

    def take(self, n: int) -> dict[str, np.ndarray]:
        """The `n` oldest samples as a batch of per-seat segments (docs/algorithms.md)."""
        if n > self.count:
            raise ValueError(f"asked for {n} samples, only {self.count} collected")
        data = {k: np.concatenate([c[k] for c in self.chunks]) for k in self.chunks[0]}
        oldest = np.argsort(data["t"], kind="stable")
        taken, kept = oldest[:n], oldest[n:]
        if len(kept):
            kept = np.sort(kept)
            self.chunks = [{k: v[kept] for k, v in data.items()}]
        else:
            self.chunks = []
        self.count = len(kept)
        # Segments: each (env, seat) in time order. Taking the oldest rows keeps
        # a time prefix of every seat's decisions, so segments stay contiguous.
        order = taken[np.lexsort((data["t"][taken], data["seat"][taken], data["env"][taken]))]
        batch = {k: v[order] for k, v in data.items()}
        same_next = np.zeros(n, dtype=bool)
        same_next[:-1] = (batch["env"][1:] == batch["env"][:-1]) & (
            batch["seat"][1:] == batch["seat"][:-1]
        )
        batch["segment_end"] = ~same_next | batch["terminated"] | batch["truncated"]
        return batch


class Collector:
    """Steps a vector env with a mapping deciding who plays which seat."""

    def __init__(
        self,
        vec: Any,
        mapping: Any,
        actors: dict[str, Actor],
        env_batches: list[tuple[int, int]] | None = None,
    ) -> None:
        self.vec = vec
        # Batched mode: contiguous env ranges, each with one policy per role, so
        # a role's whole (envs, seats) block goes through one forward pass.
        self.env_batches = env_batches
        self.mapping = mapping
        self.actors = actors
        self.ids = list(actors)
        self._index = {pid: i for i, pid in enumerate(self.ids)}
        E, S = vec.num_envs, vec.num_agents
        self.seat_role = list(vec.roles)
        self.role_local = np.zeros(S, dtype=np.int64)
        for seats in vec.role_seats.values():
            for k, s in enumerate(seats):
                self.role_local[s] = k
        self.assignment = np.full((E, S), -1, dtype=np.int64)
        self.pending = np.zeros((E, S), dtype=bool)
        self.p_learner = np.full((E, S), -1, dtype=np.int64)
        self.p_reward = np.zeros((E, S), dtype=np.float32)
        self.p_value = np.zeros((E, S), dtype=np.float32)
        self.p_logprob = np.zeros((E, S), dtype=np.float32)
        self.p_version = np.zeros((E, S), dtype=np.int64)
        self.p_obs = {r: np.zeros_like(o) for r, o in vec.obs.items()}
        self.p_action = {r: np.zeros_like(a) for r, a in vec.actions.items()}
        self.p_mask = {
            r: None if m is None else np.ones_like(m) for r, m in vec.action_masks.items()
        }
        self.seat_return = np.zeros((E, S), dtype=np.float32)
        self.t = 0
        self.env_steps = 0
        # Per policy: returns of finished seat-episodes since the last drain.
        self.episode_returns: dict[str, list[float]] = {pid: [] for pid in self.ids}

    # -- public ------------------------------------------------------------

    def start(self, seed: int | None) -> None:
        self.vec.reset(seed=seed)
        for e in range(self.vec.num_envs):
            self._assign(e)
        self.ready = np.arange(self.vec.num_envs)
        self._act(None)

    def step(self) -> None:
        """Send the actions chosen for the ready envs; process the envs that come back; act.

        With a vector env whose `recv()` returns part of the envs (its
        `batch_size` smaller than `num_envs`), the envs not returned keep
        stepping in their workers while this process runs inference for the
        others. Only the rows of returned envs are read or written here.
        """
        vec = self.vec
        vec.send(None, self.ready)
        ids = vec.recv()
        self.ready = ids
        self.t += 1
        self.env_steps += len(ids)
        rows = None
        if len(ids) < vec.num_envs:
            rows = np.zeros((vec.num_envs, 1), dtype=bool)
            rows[ids] = True
        pending = self.pending if rows is None else self.pending & rows
        np.add(self.p_reward, vec.rewards, out=self.p_reward, where=pending)
        done = vec.terminated | vec.truncated
        if rows is not None:
            done &= rows
        if done.any():
            self._close_done(done)
        episode_done = vec.episode_done if rows is None else vec.episode_done & rows[:, 0]
        for e in np.flatnonzero(episode_done):
            self._end_match(int(e))
        self._act(rows)

    def drain_returns(self) -> dict[str, list[float]]:
        out = {pid: r for pid, r in self.episode_returns.items() if r}
        self.episode_returns = {pid: [] for pid in self.ids}
        return out

    def add_actor(self, actor: Actor) -> None:
        self.actors[actor.policy_id] = actor
        self._index[actor.policy_id] = len(self.ids)
        self.ids.append(actor.policy_id)
        self.episode_returns[actor.policy_id] = []

    # -- steps -------------------------------------------------------------

    def _close_done(self, done: np.ndarray) -> None:
        vec = self.vec
        episode_return = vec.episode_return
        for e, s in zip(*np.nonzero(done), strict=True):
            self.seat_return[e, s] = episode_return[e, s]
            pid = self.ids[self.assignment[e, s]]
            self.episode_returns[pid].append(float(episode_return[e, s]))
        closing = done & self.pending
        if not closing.any():
            return
        for li in np.unique(self.p_learner[closing]):
            e, s = np.nonzero(closing & (self.p_learner == li))
            actor = self.actors[self.ids[li]]
            role = self.seat_role[s[0]]
            k = self.role_local[s]
            final = vec.final_obs[role][e, k]
            truncated = vec.truncated[e, s] & ~vec.terminated[e, s]
            next_values = np.zeros(len(e), dtype=np.float32)
            if truncated.any():
                next_values[truncated] = actor.learner.value(final[truncated])
            mask = vec.action_masks[role]
            next_mask = None if mask is None else np.ones_like(mask[e, k])
            self._emit(actor, e, s, next_values, final, next_mask, vec.terminated[e, s], truncated)
        self.pending &= ~closing

    def _end_match(self, e: int) -> None:
        # Seats that never closed (an env that ended without flagging them)
        # end here as truncated with their own value as the bootstrap.
        stray = np.flatnonzero(self.pending[e])
        for s in stray:
            actor = self.actors[self.ids[self.p_learner[e, s]]]
            ee, ss = np.array([e]), np.array([s])
            role = self.seat_role[s]
            k = self.role_local[ss]
            mask = self.p_mask[role]
            self._emit(
                actor,
                ee,
                ss,
                self.p_value[ee, ss],
                self.p_obs[role][ee, k],
                None if mask is None else mask[ee, k],
                np.zeros(1, bool),
                np.ones(1, bool),
            )
        self.pending[e] = False
        policies = [self.ids[i] for i in self.assignment[e]]
        self.mapping.report(e, self._result(e, policies))
        self.seat_return[e] = 0.0
        self._assign(e)

    def _result(self, e: int, policies: list[str]) -> Any:
        from league.manager import MatchResult

        return MatchResult(
            policies=policies,
            returns=[float(r) for r in self.seat_return[e]],
            step=self.env_steps,
            env_id=e,
        )

    def _assign(self, e: int) -> None:
        ids = self.mapping.assign(e)
        self.assignment[e] = [self._index[pid] for pid in ids]

    def _act(self, rows: np.ndarray | None) -> None:
        vec = self.vec
        active = vec.active if rows is None else vec.active & rows
        if self.env_batches is not None:
            self._act_batched(active)
            return
        for pi in np.unique(self.assignment[active]):
            e, s = np.nonzero(active & (self.assignment == pi))
            actor = self.actors[self.ids[pi]]
            role = self.seat_role[s[0]]
            k = self.role_local[s]
            obs = vec.obs[role][e, k]
            masks = vec.action_masks[role]
            mask = None if masks is None else masks[e, k]
            actions, extras = actor.act(obs, mask)
            vec.actions[role][e, k] = actions
            if actor.learner is not None:
                self._record(actor, pi, e, s, obs, mask, actions, extras)

    def _act_batched(self, active: np.ndarray) -> None:
        vec = self.vec
        for lo, hi in self.env_batches:
            for role, seats in vec.role_seats.items():
                pi = self.assignment[lo, seats[0]]
                actor = self.actors[self.ids[pi]]
                block = vec.obs[role][lo:hi]
                n = block.shape[0] * block.shape[1]
                obs = block.reshape(n, *block.shape[2:])
                masks = vec.action_masks[role]
                mask = None if masks is None else masks[lo:hi].reshape(n, -1)
                actions, extras = actor.act(obs, mask)
                vec.actions[role][lo:hi] = actions.reshape(vec.actions[role][lo:hi].shape)
                if actor.learner is None:
                    continue
                rows = np.flatnonzero(active[lo:hi][:, seats])
                if not len(rows):
                    continue
                e = lo + rows // len(seats)
                s = np.asarray(seats)[rows % len(seats)]
                self._record(
                    actor,
                    pi,
                    e,
                    s,
                    obs[rows],
                    None if mask is None else mask[rows],
                    actions[rows],
                    {key: v[rows] for key, v in extras.items()},
                )

    def _record(
        self,
        actor: Actor,
        pi: int,
        e: np.ndarray,
        s: np.ndarray,
        obs: np.ndarray,
        mask: np.ndarray | None,
        actions: np.ndarray,
        extras: dict[str, np.ndarray],
    ) -> None:
        """Close the seats' previous samples (their next value is known now), open new ones."""
        role = self.seat_role[s[0]]
        k = self.role_local[s]
        still_open = self.pending[e, s]
        if still_open.any():
            oe, os_ = e[still_open], s[still_open]
            self._emit(
                actor,
                oe,
                os_,
                extras["value"][still_open].astype(np.float32),
                obs[still_open],
                None if mask is None else mask[still_open],
                np.zeros(len(oe), bool),
                np.zeros(len(oe), bool),
            )
        self.pending[e, s] = True
        self.p_learner[e, s] = pi
        self.p_reward[e, s] = 0.0
        self.p_value[e, s] = extras["value"]
        self.p_logprob[e, s] = extras.get("logprob", 0.0)
        self.p_version[e, s] = actor.learner.version
        self.p_obs[role][e, k] = obs
        self.p_action[role][e, k] = actions
        if mask is not None:
            self.p_mask[role][e, k] = mask

    def _emit(
        self,
        actor: Actor,
        e: np.ndarray,
        s: np.ndarray,
        next_values: np.ndarray,
        next_obs: np.ndarray,
        next_mask: np.ndarray | None,
        terminated: np.ndarray,
        truncated: np.ndarray,
    ) -> None:
        """Move the pending samples at (e, s) into the learner's buffer."""
        role = self.seat_role[s[0]]
        k = self.role_local[s]
        rows = {
            "env": e.astype(np.int64),
            "seat": s.astype(np.int64),
            "t": np.full(len(e), self.t, dtype=np.int64),
            "obs": self.p_obs[role][e, k].copy(),
            "actions": self.p_action[role][e, k].copy(),
            "logprobs": self.p_logprob[e, s].copy(),
            "values": self.p_value[e, s].copy(),
            "rewards": self.p_reward[e, s].copy(),
            "terminated": np.asarray(terminated, dtype=bool),
            "truncated": np.asarray(truncated, dtype=bool),
            "next_values": np.asarray(next_values, dtype=np.float32),
            "versions": self.p_version[e, s].copy(),
        }
        if self.p_mask[role] is not None:
            rows["action_mask"] = self.p_mask[role][e, k].copy()
        if actor.buffer.keep_next_obs:
            rows["next_obs"] = np.array(next_obs)
            if next_mask is not None:
                rows["next_action_mask"] = np.array(next_mask, dtype=bool)
        actor.buffer.add(rows)
