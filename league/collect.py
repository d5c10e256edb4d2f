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
from gymnasium import spaces as gym_spaces


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


class SingleActing:
    """One policy as an acting group: every row it is asked about is that policy.

    `learns` marks a learner (its samples are recorded, tagged with its
    version); snapshots and fixed policies only act.
    """

    def __init__(self, policy: Any, learns: bool = False, policy_id: str = "policy") -> None:
        self.policy = policy
        self.learns = learns
        self.policy_id = policy_id
        self._act = batch_act(policy)

    def act(
        self, obs: np.ndarray, mask: np.ndarray | None, rows: np.ndarray
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        actions, extras = self._act(obs, mask)
        if self.learns:
            extras = {**extras, "version": np.full(len(obs), self.policy.version)}
        return actions, extras

    def value(self, obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return self.policy.value(obs)


@dataclass
class Actor:
    """A policy as the collector sees it: the group that acts for it and its row there.

    A group is anything with ``act(obs, mask, rows) -> (actions, extras)`` and
    ``value(obs, rows)``: a `SingleActing`, or a stack's `PolicyBank`, which acts
    for all its learners and snapshots in one forward pass. Learners have a
    `buffer` for their samples.
    """

    policy_id: str
    acting: Any
    row: int = 0
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
        check_masks: bool = True,
    ) -> None:
        self.vec = vec
        # Fixed policies are user code: their actions are checked before they reach the
        # env (learners act within their masks by construction).
        self.check_masks = check_masks
        # Batched mode: contiguous env ranges, each with one policy per role, so
        # a role's whole (envs, seats) block goes through one forward pass.
        self.env_batches = env_batches
        self.mapping = mapping
        self.actors: dict[str, Actor] = {}
        # Per policy slot (the numbers in `assignment`): its id (None once retired),
        # its acting group, its row in that group, and whether it learns.
        self.ids: list[str | None] = []
        self._index: dict[str, int] = {}
        self.groups: list[Any] = []
        self._group_index: dict[int, int] = {}
        self.slot_group = np.zeros(0, dtype=np.int64)
        self.slot_row = np.zeros(0, dtype=np.int64)
        self.slot_learns = np.zeros(0, dtype=bool)
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
        self.dropped_episodes = 0  # abandoned when a backend restarted their envs
        # Per policy: returns of finished seat-episodes since the last drain.
        self.episode_returns: dict[str, list[float]] = {}
        for actor in actors.values():
            self.add_actor(actor)

    # -- public ------------------------------------------------------------

    def start(self, seed: int | None) -> None:
        vec = self.vec
        vec.reset(seed=seed)
        for e in range(vec.num_envs):
            self._assign(e)
        self._act(None)
        # An ordered vector env with part of the envs per recv() keeps that many
        # batches in flight: each step acts on the oldest while the others step.
        if vec.ordered and vec.batch_size < vec.num_envs:
            self.to_send = np.split(np.arange(vec.num_envs), vec.num_envs // vec.batch_size)
        else:
            self.to_send = [np.arange(vec.num_envs)]

    @property
    def steps_per_round(self) -> int:
        """Collector steps in which every env steps once."""
        return self.vec.num_envs // len(self.to_send[0]) if self.to_send else 1

    def step(self) -> None:
        """Send the actions chosen for the ready envs; process the envs that come back; act.

        With a vector env whose `recv()` returns part of the envs (its
        `batch_size` smaller than `num_envs`), the envs not returned keep
        stepping in their workers while this process runs inference for the
        others. Only the rows of returned envs are read or written here.
        """
        vec = self.vec
        for ids in self.to_send:
            vec.send(None, ids)
        ids = vec.recv()
        self.to_send = [ids]
        self.t += 1
        self.env_steps += len(ids)
        if vec.episode_dropped[ids].any():
            self._drop_episodes(ids[vec.episode_dropped[ids]])
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
        self.episode_returns = {pid: [] for pid in self.episode_returns}
        return out

    def add_actor(self, actor: Actor) -> None:
        """Let a new policy (a snapshot, say) be assigned from now on."""
        key = id(actor.acting)
        if key not in self._group_index:
            self._group_index[key] = len(self.groups)
            self.groups.append(actor.acting)
        if None in self.ids:
            slot = self.ids.index(None)
        else:
            slot = len(self.ids)
            self.ids.append(None)
            grow = max(len(self.ids) - len(self.slot_group), 0)
            self.slot_group = np.concatenate([self.slot_group, np.zeros(grow, np.int64)])
            self.slot_row = np.concatenate([self.slot_row, np.zeros(grow, np.int64)])
            self.slot_learns = np.concatenate([self.slot_learns, np.zeros(grow, bool)])
        self.ids[slot] = actor.policy_id
        self._index[actor.policy_id] = slot
        self.slot_group[slot] = self._group_index[key]
        self.slot_row[slot] = actor.row
        self.slot_learns[slot] = actor.buffer is not None
        self.actors[actor.policy_id] = actor
        self.episode_returns.setdefault(actor.policy_id, [])

    def in_use(self) -> set[str]:
        """Ids of the policies playing a seat of an episode in progress."""
        return {self.ids[i] for i in np.unique(self.assignment) if i >= 0}

    def retire(self, policy_id: str) -> Actor:
        """Forget a policy that plays no seat any more (an evicted snapshot)."""
        slot = self._index.pop(policy_id)
        if (self.assignment == slot).any():
            raise ValueError(f"policy {policy_id!r} still plays a seat; it cannot be retired")
        self.ids[slot] = None
        self.episode_returns.pop(policy_id, None)
        return self.actors.pop(policy_id)

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
        for role, seats in self.vec.role_seats.items():
            e, s = np.nonzero(closing[:, seats])
            if len(e):
                self._close(role, e, np.asarray(seats)[s])
        self.pending &= ~closing

    def _close(self, role: str, e: np.ndarray, s: np.ndarray) -> None:
        """Close the pending samples of seats (of one role) whose episode ended."""
        vec = self.vec
        final = vec.final_obs[role][e, self.role_local[s]]
        truncated = vec.truncated[e, s] & ~vec.terminated[e, s]
        next_values = np.zeros(len(e), dtype=np.float32)
        if truncated.any():
            slots = self.p_learner[e, s]
            for slot in np.unique(slots[truncated]):
                sel = truncated & (slots == slot)
                actor = self.actors[self.ids[slot]]
                next_values[sel] = actor.acting.value(final[sel], np.full(sel.sum(), actor.row))
        mask = vec.action_masks[role]
        next_mask = None if mask is None else np.ones_like(mask[e, self.role_local[s]])
        self._emit(e, s, next_values, final, next_mask, vec.terminated[e, s], truncated)

    def _drop_episodes(self, envs: np.ndarray) -> None:
        """Envs restarted by their backend (a Ray worker came back): their episodes are
        abandoned, with no result for the league and no samples for the learners."""
        self.dropped_episodes += len(envs)
        self.pending[envs] = False
        self.seat_return[envs] = 0.0
        self.vec.episode_dropped[envs] = False
        for e in envs:
            self._assign(int(e))

    def _end_match(self, e: int) -> None:
        # Seats that never closed (an env that ended without flagging them)
        # end here as truncated with their own value as the bootstrap.
        for role, seats in self.vec.role_seats.items():
            stray = np.asarray(seats)[self.pending[e, seats]]
            if not len(stray):
                continue
            ee = np.full(len(stray), e)
            k = self.role_local[stray]
            mask = self.p_mask[role]
            self._emit(
                ee,
                stray,
                self.p_value[ee, stray],
                self.p_obs[role][ee, k],
                None if mask is None else mask[ee, k],
                np.zeros(len(stray), bool),
                np.ones(len(stray), bool),
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
        e, s = np.nonzero(active)
        if not len(e):
            return
        slots = self.assignment[e, s]
        groups = self.slot_group[slots]
        for g in np.unique(groups):
            sel = np.flatnonzero(groups == g) if len(groups) > 1 else slice(None)
            ee, ss, pp = e[sel], s[sel], slots[sel]
            role = self.seat_role[ss[0]]
            k = self.role_local[ss]
            obs = vec.obs[role][ee, k]
            masks = vec.action_masks[role]
            mask = None if masks is None else masks[ee, k]
            group = self.groups[g]
            actions, extras = group.act(obs, mask, self.slot_row[pp])
            if isinstance(group, SingleActing) and not group.learns:
                actions = self._checked(group.policy_id, actions, mask, ee, ss)
            vec.actions[role][ee, k] = actions
            learns = self.slot_learns[pp]
            if learns.all():
                self._record(pp, ee, ss, obs, mask, actions, extras)
            elif learns.any():
                self._record(
                    pp[learns],
                    ee[learns],
                    ss[learns],
                    obs[learns],
                    None if mask is None else mask[learns],
                    actions[learns],
                    {key: v[learns] for key, v in extras.items()},
                )

    def _checked(
        self, policy_id: str, actions: Any, mask: np.ndarray | None, e: np.ndarray, s: np.ndarray
    ) -> np.ndarray:
        """A fixed policy's actions, or PolicyError naming it, the seat and the env."""
        from league.errors import PolicyError

        space = self.vec.action_spaces[int(s[0])]
        where = f"policy {policy_id!r} (seat {self.vec.possible_agents[s[0]]!r} of env {e[0]})"
        array = np.asarray(actions) if actions is not None else None
        if array is None or array.dtype == object or array.shape[:1] != (len(e),):
            shown = actions if actions is None else array.tolist()
            raise PolicyError(
                f"{where} returned {shown!r} for {len(e)} observation(s); a fixed policy "
                f"returns one action of {space} per observation"
            )
        if not isinstance(space, gym_spaces.Discrete):
            return array
        if not np.array_equal(array, np.round(array)):
            bad = array[array != np.round(array)][0].item()
            raise PolicyError(
                f"{where} returned action {bad!r} for {space}: actions of a Discrete space "
                "are whole numbers (it would have been cut to an integer)"
            )
        index = array.astype(np.int64) - int(space.start)
        outside = (index < 0) | (index >= space.n)
        if outside.any():
            raise PolicyError(
                f"{where} returned action {array[outside][0].item()!r}, outside {space}"
            )
        if self.check_masks and mask is not None:
            forbidden = ~mask[np.arange(len(index)), index]
            if forbidden.any():
                row = int(np.flatnonzero(forbidden)[0])
                raise PolicyError(
                    f"policy {policy_id!r} chose action {int(array[row])} in seat "
                    f"{self.vec.possible_agents[s[row]]!r} of env {e[row]}, which the action "
                    f"mask forbids (legal: {np.flatnonzero(mask[row]).tolist()}); fix the "
                    "policy, or pass illegal_actions='env' to league.train to let the env "
                    "apply its own rule"
                )
        return array

    def _act_batched(self, active: np.ndarray) -> None:
        vec = self.vec
        for lo, hi in self.env_batches:
            for role, seats in vec.role_seats.items():
                slot = self.assignment[lo, seats[0]]
                actor = self.actors[self.ids[slot]]
                block = vec.obs[role][lo:hi]
                n = block.shape[0] * block.shape[1]
                obs = block.reshape(n, *block.shape[2:])
                masks = vec.action_masks[role]
                mask = None if masks is None else masks[lo:hi].reshape(n, -1)
                actions, extras = actor.acting.act(obs, mask, np.full(n, actor.row))
                vec.actions[role][lo:hi] = actions.reshape(vec.actions[role][lo:hi].shape)
                if actor.buffer is None:
                    continue
                rows = np.flatnonzero(active[lo:hi][:, seats])
                if not len(rows):
                    continue
                e = lo + rows // len(seats)
                s = np.asarray(seats)[rows % len(seats)]
                self._record(
                    np.full(len(rows), slot),
                    e,
                    s,
                    obs[rows],
                    None if mask is None else mask[rows],
                    actions[rows],
                    {key: v[rows] for key, v in extras.items()},
                )

    def _record(
        self,
        slots: np.ndarray,
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
            self._emit(
                e[still_open],
                s[still_open],
                extras["value"][still_open].astype(np.float32),
                obs[still_open],
                None if mask is None else mask[still_open],
                np.zeros(int(still_open.sum()), bool),
                np.zeros(int(still_open.sum()), bool),
            )
        self.pending[e, s] = True
        self.p_learner[e, s] = slots
        self.p_reward[e, s] = 0.0
        self.p_value[e, s] = extras["value"]
        self.p_logprob[e, s] = extras.get("logprob", 0.0)
        self.p_version[e, s] = extras["version"]
        self.p_obs[role][e, k] = obs
        self.p_action[role][e, k] = actions
        if mask is not None:
            self.p_mask[role][e, k] = mask

    def _emit(
        self,
        e: np.ndarray,
        s: np.ndarray,
        next_values: np.ndarray,
        next_obs: np.ndarray,
        next_mask: np.ndarray | None,
        terminated: np.ndarray,
        truncated: np.ndarray,
    ) -> None:
        """Move the pending samples at (e, s), seats of one role, into their learners' buffers."""
        role = self.seat_role[s[0]]
        k = self.role_local[s]
        rows = {
            "env": e.astype(np.int64),
            "seat": s.astype(np.int64),
            "t": np.full(len(e), self.t, dtype=np.int64),
            "obs": self.p_obs[role][e, k],
            "actions": self.p_action[role][e, k],
            "logprobs": self.p_logprob[e, s],
            "values": self.p_value[e, s],
            "rewards": self.p_reward[e, s],
            "terminated": np.asarray(terminated, dtype=bool),
            "truncated": np.asarray(truncated, dtype=bool),
            "next_values": np.asarray(next_values, dtype=np.float32),
            "versions": self.p_version[e, s],
        }
        if self.p_mask[role] is not None:
            rows["action_mask"] = self.p_mask[role][e, k]
        slots = self.p_learner[e, s]
        if (slots == slots[0]).all():
            parts = [(slots[0], slice(None))]
        else:  # rows of several learners: sort once, hand each its slice
            order = np.argsort(slots, kind="stable")
            rows = {key: v[order] for key, v in rows.items()}
            next_obs = np.asarray(next_obs)[order]
            next_mask = None if next_mask is None else np.asarray(next_mask)[order]
            slots = slots[order]
            starts = np.flatnonzero(np.r_[True, slots[1:] != slots[:-1]])
            ends = np.r_[starts[1:], len(slots)]
            parts = [(slots[a], slice(a, b)) for a, b in zip(starts, ends, strict=True)]
        for slot, sel in parts:
            buffer = self.actors[self.ids[slot]].buffer
            mine = {key: v[sel] for key, v in rows.items()}
            if buffer.keep_next_obs:
                mine["next_obs"] = np.array(next_obs[sel])
                if next_mask is not None:
                    mine["next_action_mask"] = np.array(next_mask[sel], dtype=bool)
            buffer.add(mine)
