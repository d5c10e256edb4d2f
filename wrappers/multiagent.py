"""The list-based multi-agent env contract and its adapters.

`multiagent(env_or_fn)` turns a PettingZoo AEC env, a PettingZoo parallel env,
a gymnasium env or an env that already is list-based into a `MultiAgentEnv`:
lists of length `num_agents` in and out, auto-reset, `is_active` and
`action_mask` per seat in infos, and every reward attached to the decision
that earned it. docs/contract.md is the full statement of the contract.
"""

from __future__ import annotations

import importlib
import inspect
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils import wrappers as pz_wrappers

from wrappers.errors import ActionError, EnvError, RewardError
from wrappers.spaces import MASK_KEY, SeatSpace, check_action, group_roles, pad_seats, seat_space

ILLEGAL_ACTIONS = ("raise", "env")
# Random openings drawn in a row, each ending the game, before the wrapper gives up.
_OPENING_TRIES = 100

# PettingZoo's own AEC wrappers: each reaches agents, agent_selection, rewards,
# terminations, truncations and infos only by forwarding to the env inside.
_FORWARDING_WRAPPERS = (
    pz_wrappers.OrderEnforcingWrapper,
    pz_wrappers.AssertOutOfBoundsWrapper,
    pz_wrappers.TerminateIllegalWrapper,
    pz_wrappers.ClipOutOfBoundsWrapper,
)


@dataclass(slots=True)
class StepOutput:
    """Where `reset_into`/`step_into` write one env's per-seat results.

    `step()` passes fresh lists and returns them; `wrappers.vector` passes rows
    of its arrays, with `obs`, `masks` and `final_obs` as writers that copy into
    the row (so no list is built and nothing is copied twice). Every field is
    indexed by seat and written item by item. `rewards`, `terminated` and
    `truncated` come in zeroed; `obs`, `active` and the masks of Discrete seats
    are written for every seat; `final_obs`, `episode_return` and
    `episode_length` only for seats whose episode ended.
    """

    obs: Any
    masks: Any
    final_obs: Any
    rewards: Any
    terminated: Any
    truncated: Any
    active: Any
    episode_return: Any
    episode_length: Any


class MultiAgentEnv:
    """Shared bookkeeping of every adapter: spaces, roles, checks, episode stats."""

    is_multiagent = True

    def __init__(
        self,
        name: str,
        seats: Sequence[str],
        seat_spaces: list[SeatSpace],
        *,
        pad: bool = False,
        roles: dict[str, str] | None = None,
        illegal_actions: str = "raise",
    ) -> None:
        if illegal_actions not in ILLEGAL_ACTIONS:
            raise ValueError(
                f"illegal_actions={illegal_actions!r}; expected one of {ILLEGAL_ACTIONS}"
            )
        if pad:
            pad_seats(seat_spaces, name)
        self.name = name
        self.possible_agents = list(seats)
        self.num_agents = len(seats)
        self.observation_spaces = [s.observation_space for s in seat_spaces]
        self.action_spaces = [s.action_space for s in seat_spaces]
        self.roles = group_roles(self.possible_agents, seat_spaces, roles)
        shared = all(
            o == self.observation_spaces[0] and a == self.action_spaces[0]
            for o, a in zip(self.observation_spaces, self.action_spaces, strict=True)
        )
        self.observation_space = self.observation_spaces[0] if shared else None
        self.action_space = self.action_spaces[0] if shared else None
        self._seat_spaces = seat_spaces
        self._check_masks = illegal_actions == "raise"
        self._zeros = [s.zeros() for s in seat_spaces]
        self._all_legal = [
            np.ones(a.n, dtype=bool) if isinstance(a, gymnasium.spaces.Discrete) else None
            for a in self.action_spaces
        ]
        for m in self._all_legal:
            if m is not None:
                m.flags.writeable = False
        self._returns = [0.0] * self.num_agents
        self._lengths = [0] * self.num_agents
        # True right after a step that ended the episode (and auto-reset the env).
        self.episode_ended = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} seats={self.possible_agents}>"

    def reset(self, seed: int | None = None) -> tuple[list[np.ndarray], list[dict]]:
        out = self._new_lists()
        self.reset_into(out, seed)
        return out.obs, self._list_infos(out)

    def step(
        self, actions: Sequence[Any]
    ) -> tuple[list[np.ndarray], list[float], list[bool], list[bool], list[dict]]:
        self._check_length(actions)
        out = self._new_lists()
        self.step_into(actions, out)
        return out.obs, out.rewards, out.terminated, out.truncated, self._list_infos(out)

    def reset_into(self, out: StepOutput, seed: int | None = None) -> None:
        """`reset()` that writes into `out` instead of returning lists."""
        raise NotImplementedError

    def step_into(self, actions: Sequence[Any], out: StepOutput) -> None:
        """`step()` that writes into `out` instead of returning lists: the fast
        path `wrappers.vector` uses, with one action per seat in `actions`."""
        raise NotImplementedError

    def close(self) -> None:
        close = getattr(self._env, "close", None)
        if close is not None:
            close()

    # -- shared pieces -----------------------------------------------------

    def _check_length(self, actions: Sequence[Any]) -> None:
        try:
            n = len(actions)
        except TypeError:
            raise ActionError(
                f"env {self.name!r}: step() takes a list of {self.num_agents} actions, "
                f"one per seat {self.possible_agents}, got {type(actions).__name__}"
            ) from None
        if n != self.num_agents:
            raise ActionError(
                f"env {self.name!r}: step() got {n} actions, expected {self.num_agents} "
                f"(one per seat {self.possible_agents}; inactive seats' actions are ignored)"
            )

    def _action(self, i: int, action: Any, mask: np.ndarray | None) -> Any:
        # With illegal_actions="env" the env rules on its own actions, but the
        # actions padding added are none of its own: those are always refused.
        return check_action(
            self.action_spaces[i],
            action,
            mask if self._check_masks else self._seat_spaces[i].own_actions,
            self.name,
            self.possible_agents[i],
        )

    def _reward(self, i: int, r: Any) -> float:
        r = float(r)
        if not math.isfinite(r):
            raise RewardError(
                f"env {self.name!r}, seat {self.possible_agents[i]!r}: reward {r} is not finite"
            )
        return r

    def _end_episode(self, i: int, out: StepOutput) -> None:
        """Write seat i's episode stats to `out` and start counting its next episode."""
        out.episode_return[i] = self._returns[i]
        out.episode_length[i] = self._lengths[i]
        self._returns[i] = 0.0
        self._lengths[i] = 0

    def _new_lists(self) -> StepOutput:
        n = self.num_agents
        return StepOutput(
            obs=[None] * n,
            masks=[None] * n,
            final_obs=[None] * n,
            rewards=[0.0] * n,
            terminated=[False] * n,
            truncated=[False] * n,
            active=[False] * n,
            episode_return=[0.0] * n,
            episode_length=[0] * n,
        )

    def _list_infos(self, out: StepOutput) -> list[dict]:
        infos = []
        for j, legal in enumerate(self._all_legal):
            info: dict[str, Any] = {}
            if out.terminated[j] or out.truncated[j]:
                info["final_obs"] = out.final_obs[j]
                info["episode"] = {"return": out.episode_return[j], "length": out.episode_length[j]}
            info["is_active"] = out.active[j]
            if legal is not None:
                info[MASK_KEY] = out.masks[j]
            infos.append(info)
        return infos


class _PettingZooEnv(MultiAgentEnv):
    """Seats, spaces and the seat index, read from a PettingZoo env (AEC or parallel)."""

    def __init__(self, env: AECEnv | ParallelEnv, **opts: Any) -> None:
        self._env = env
        name = _env_name(env)
        seats = list(getattr(env, "possible_agents", None) or [])
        if not seats:
            raise EnvError(
                f"env {name!r} has no agents (its possible_agents is empty): there is no seat "
                "to play; check the env's arguments"
            )
        spaces = [seat_space(a, env.observation_space(a), env.action_space(a), name) for a in seats]
        super().__init__(name, seats, spaces, **opts)
        self._index = {a: i for i, a in enumerate(seats)}


class AECMultiAgentEnv(_PettingZooEnv):
    """A turn-based AEC env: one active seat per step, dead steps driven by the wrapper.

    After every step the wrapper walks the AEC env forward through the turns of
    seats that are terminated or truncated (stepping them with ``None``), so the
    rewards PettingZoo hands out on those dead steps, such as the connect-four
    loser's -1, reach the seat in the same `step` call that ended its game.
    """

    def __init__(
        self, env: AECEnv, *, opening_plies: int = 0, opening_share: float = 1.0, **opts: Any
    ) -> None:
        super().__init__(env, **opts)
        self._active = 0
        self._obs: np.ndarray = self._zeros[0]
        self._mask: np.ndarray | None = None
        self._base = _base_env(env)
        # The env whose turn state (agents, agent_selection) is read.
        self._turn = env if self._base is None else self._base
        self._done = [False] * self.num_agents  # seats whose episode ended already
        if opening_plies and not all(
            isinstance(a, gymnasium.spaces.Discrete) for a in self.action_spaces
        ):
            spaces = [type(a).__name__ for a in self.action_spaces]
            raise EnvError(
                f"env {self.name!r}: random openings need Discrete action spaces, not "
                f"{spaces}; train without opening_plies"
            )
        self.opening_plies = opening_plies
        self.opening_share = opening_share
        self._opening_rng = np.random.default_rng()

    def reset_into(self, out: StepOutput, seed: int | None = None) -> None:
        self._returns = [0.0] * self.num_agents
        self._lengths = [0] * self.num_agents
        self._done = [False] * self.num_agents
        self._new_game(seed)
        self._write(out)

    def step_into(self, actions: Sequence[Any], out: StepOutput) -> None:
        i = self._active
        action = self._action(i, actions[i], self._mask)
        self._lengths[i] += 1
        self._env.step(action)
        ended = self._advance(out)
        self.episode_ended = ended
        if ended:
            for j, done in enumerate(self._done):
                if not done:
                    # The env removed this seat without a dead step: its episode
                    # is over all the same, so close it as truncated.
                    out.truncated[j] = True
                    out.final_obs[j] = self._zeros[j]
                    self._end_episode(j, out)
            self._done = [False] * self.num_agents
            self._new_game(None)
        self._write(out)

    def _new_game(self, seed: int | None) -> None:
        """Reset the env; in `opening_share` of the games, then play `opening_plies`
        uniformly random legal moves that belong to no seat's episode (no reward, no
        decision), as the reference ladder opens its games. An opening that ends
        the game or removes a seat is thrown away and drawn again."""
        if seed is not None:
            self._opening_rng = np.random.default_rng(seed)
        self._reset_env(seed)
        rng = self._opening_rng
        if not self.opening_plies or rng.random() >= self.opening_share:
            return
        for _ in range(_OPENING_TRIES):
            seats = len(self._turn.agents)
            for _ply in range(self.opening_plies):
                j = self._active
                legal = np.arange(self.action_spaces[j].n)
                if self._mask is not None:
                    legal = np.flatnonzero(self._mask)
                self._env.step(self._action(j, int(rng.choice(legal)), self._mask))
                if self._advance(None) or len(self._turn.agents) < seats:
                    break
            else:
                return
            self._reset_env(None)
        raise EnvError(
            f"env {self.name!r}: {_OPENING_TRIES} random openings of {self.opening_plies} "
            "plies in a row ended the game or removed a seat; use fewer opening_plies"
        )

    def _reset_env(self, seed: int | None) -> None:
        self._env.reset(seed=seed)
        if self._advance(None):
            raise EnvError(f"env {self.name!r}: the episode ended during reset()")

    def _advance(self, out: StepOutput | None) -> bool:
        """Run dead steps until a live seat is to move; True when the episode is over.

        Rewards, endings and final observations go to `out`; with None (right
        after a reset) they belong to no episode and are dropped.
        """
        env = self._env
        base = self._base
        state = self._turn
        while state.agents:
            agent = state.agent_selection
            j = self._index[agent]
            if base is None:
                raw, r, term, trunc, info = env.last()
            else:
                # env.last(), reading the base env's dicts directly; observe()
                # still goes through the wrappers, which may record or change it.
                raw = env.observe(agent)
                r = base._cumulative_rewards[agent]
                term, trunc = base.terminations[agent], base.truncations[agent]
                info = base.infos[agent]
            if r:
                r = self._reward(j, r)
                if out is not None:
                    out.rewards[j] += r
                    self._returns[j] += r
            if term or trunc:
                if out is not None:
                    out.terminated[j] = bool(term)
                    out.truncated[j] = bool(trunc) and not term
                    out.final_obs[j] = self._seat_spaces[j].observation(raw)[0]
                    self._end_episode(j, out)
                    self._done[j] = True
                env.step(None)
                continue
            self._active = j
            self._obs, self._mask = self._seat_spaces[j].observation(raw, info)
            return False
        return True

    def _write(self, out: StepOutput) -> None:
        active = self._active
        for j, legal in enumerate(self._all_legal):
            live = j == active
            out.active[j] = live
            out.obs[j] = self._obs if live else self._zeros[j]
            if legal is not None:
                out.masks[j] = self._mask if live and self._mask is not None else legal


def _base_env(env: AECEnv) -> AECEnv | None:
    """The env inside PettingZoo's forwarding wrappers, when reading the turn
    state there is the same as reading it through them; else None.

    Each wrapper level costs a Python ``__getattr__`` call per attribute read
    (about 2 µs for three levels), more than the rest of a step's bookkeeping.
    """
    while type(env) in _FORWARDING_WRAPPERS:
        env = env.env
    if isinstance(env, pz_wrappers.BaseWrapper) or type(env).last is not AECEnv.last:
        return None
    return env


class ParallelMultiAgentEnv(_PettingZooEnv):
    """A parallel env: every live seat acts each step; dead seats go inactive."""

    def __init__(self, env: ParallelEnv, **opts: Any) -> None:
        super().__init__(env, **opts)
        # Per seat: observation (zeros while not live) and mask (None while not live).
        self._obs: list[np.ndarray] = list(self._zeros)
        self._live: list[int] = []
        self._masks: list[np.ndarray | None] = [None] * self.num_agents

    def reset_into(self, out: StepOutput, seed: int | None = None) -> None:
        self._returns = [0.0] * self.num_agents
        self._lengths = [0] * self.num_agents
        self._reset(seed)
        self._write(out)

    def _reset(self, seed: int | None) -> None:
        raw_obs, raw_infos = self._env.reset(seed=seed)
        self._obs = list(self._zeros)
        self._masks = [None] * self.num_agents
        self._live = []
        for agent in self._env.agents:
            j = self._index[agent]
            self._live.append(j)
            self._obs[j], self._masks[j] = self._observe(j, raw_obs[agent], raw_infos.get(agent))

    def _observe(self, j: int, raw: Any, info: dict | None) -> tuple[np.ndarray, Any]:
        return self._seat_spaces[j].observation(raw, info)

    def step_into(self, actions: Sequence[Any], out: StepOutput) -> None:
        seats = self.possible_agents
        joint = {seats[j]: self._action(j, actions[j], self._masks[j]) for j in self._live}
        raw_obs, raw_rewards, raw_term, raw_trunc, raw_infos = self._env.step(joint)
        for agent, r in raw_rewards.items():
            j = self._index[agent]
            if r:
                r = self._reward(j, r)
                out.rewards[j] = r
                self._returns[j] += r
        live = []
        for j in self._live:
            agent = seats[j]
            self._lengths[j] += 1
            term = bool(raw_term.get(agent, False))
            trunc = bool(raw_trunc.get(agent, False)) and not term
            o, mask = self._observe(j, raw_obs[agent], raw_infos.get(agent))
            if term or trunc:
                out.terminated[j], out.truncated[j] = term, trunc
                out.final_obs[j] = o
                self._end_episode(j, out)
                self._obs[j], self._masks[j] = self._zeros[j], None
            else:
                self._obs[j], self._masks[j] = o, mask
                live.append(j)
        self._live = live
        self.episode_ended = not live or not self._env.agents
        if self.episode_ended:
            for j in live:
                # The env ended the episode without flagging these seats: their
                # episode is over all the same, so close it as truncated.
                out.truncated[j] = True
                out.final_obs[j] = self._obs[j]
                self._end_episode(j, out)
            self._reset(None)
        self._write(out)

    def _write(self, out: StepOutput) -> None:
        for j, legal in enumerate(self._all_legal):
            out.obs[j] = self._obs[j]
            out.active[j] = False
            if legal is not None:
                mask = self._masks[j]
                out.masks[j] = legal if mask is None else mask
        for j in self._live:
            out.active[j] = True


class GymMultiAgentEnv(MultiAgentEnv):
    """A gymnasium env as one always-active seat named ``agent_0``."""

    def __init__(self, env: gymnasium.Env, **opts: Any) -> None:
        self._env = env
        name = _env_name(env)
        spaces = [seat_space("agent_0", env.observation_space, env.action_space, name)]
        super().__init__(name, ["agent_0"], spaces, **opts)
        self._obs: np.ndarray = self._zeros[0]
        self._mask: np.ndarray | None = None

    def reset_into(self, out: StepOutput, seed: int | None = None) -> None:
        self._returns, self._lengths = [0.0], [0]
        raw, info = self._env.reset(seed=seed)
        self._obs = self._observe(raw, info)
        self._write(out)

    def _observe(self, raw: Any, info: dict) -> np.ndarray:
        obs, self._mask = self._seat_spaces[0].observation(raw, info)
        return obs

    def step_into(self, actions: Sequence[Any], out: StepOutput) -> None:
        raw, r, term, trunc, info = self._env.step(self._action(0, actions[0], self._mask))
        reward = self._reward(0, r)
        self._returns[0] += reward
        self._lengths[0] += 1
        out.rewards[0] = reward
        obs = self._observe(raw, info)
        term, trunc = bool(term), bool(trunc) and not term
        self.episode_ended = term or trunc
        if self.episode_ended:
            out.terminated[0], out.truncated[0] = term, trunc
            out.final_obs[0] = obs
            self._end_episode(0, out)
            raw, info = self._env.reset()
            obs = self._observe(raw, info)
        self._obs = obs
        self._write(out)

    def _write(self, out: StepOutput) -> None:
        out.obs[0] = self._obs
        out.active[0] = True
        if self._all_legal[0] is not None:
            out.masks[0] = self._mask if self._mask is not None else self._all_legal[0]


def _env_name(env: Any) -> str:
    metadata = getattr(env, "metadata", None) or {}
    name = metadata.get("name")
    if name:
        return str(name)
    spec = getattr(env, "spec", None)
    if spec is not None and getattr(spec, "id", None):
        return str(spec.id)
    return type(env).__name__


def multiagent(
    env_or_fn: Any,
    *,
    pad: bool = False,
    roles: dict[str, str] | None = None,
    illegal_actions: str = "raise",
    env_kwargs: dict[str, Any] | None = None,
    opening_plies: int = 0,
    opening_share: float = 1.0,
) -> Any:
    """Wrap an env (or a function, registry id or import path that builds one).

    Args:
        env_or_fn: a PettingZoo AEC or parallel env, a gymnasium env, an env
            with ``is_multiagent=True`` (returned unchanged), a callable that
            returns one of those, a PettingZoo env module (``connect_four_v3``),
            or a string: a PettingZoo registry id (``"classic/connect_four-v3"``),
            a gymnasium id (``"CartPole-v1"``) or an import path
            (``"pettingzoo.classic.connect_four_v3"``, ``"pkg.mod:make_env"``).
        pad: zero-pad every seat's observation to one shape and widen Discrete
            action spaces to one size (added actions masked out), so that one
            policy can serve seats whose spaces differ.
        roles: seat name -> role name, overriding the grouping by equal spaces.
        illegal_actions: ``"raise"`` (an action the mask forbids raises
            `ActionError` naming env, seat and action) or ``"env"`` (pass it
            on and let the env apply its own rule, e.g. a loss for the mover).
        env_kwargs: keyword arguments for the env constructor (callables and
            strings only).
        opening_plies: turn-based (AEC) envs only: after each reset, play this many
            uniformly random legal moves, for every seat in turn, before the first
            decision; they earn no reward and are no seat's decision.
        opening_share: the share of games (drawn per game) that get the opening.
    """
    check_opening(opening_plies, opening_share)
    env = make_env(env_or_fn, env_kwargs)
    opts = {"pad": pad, "roles": roles, "illegal_actions": illegal_actions}
    if opening_plies and not isinstance(env, AECEnv):
        raise EnvError(
            f"opening_plies={opening_plies}: random openings are for turn-based games, and "
            f"{type(env).__name__} is not a PettingZoo AEC env; train without opening_plies"
        )
    if getattr(env, "is_multiagent", False) is True:
        return env
    if isinstance(env, AECEnv):
        return AECMultiAgentEnv(
            env, opening_plies=opening_plies, opening_share=opening_share, **opts
        )
    if isinstance(env, ParallelEnv):
        return ParallelMultiAgentEnv(env, **opts)
    if isinstance(env, gymnasium.Env):
        return GymMultiAgentEnv(env, **opts)
    raise EnvError(
        f"{env_or_fn!r} built {type(env).__name__}, which is not a PettingZoo AECEnv or "
        "ParallelEnv, a gymnasium.Env or an env with is_multiagent=True"
    )


def check_opening(opening_plies: int, opening_share: float) -> None:
    """ValueError unless the random-opening options can work."""
    if isinstance(opening_plies, bool) or not isinstance(opening_plies, int) or opening_plies < 0:
        raise ValueError(f"opening_plies={opening_plies!r}; expected an integer >= 0")
    share = opening_share
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise ValueError(f"opening_share={opening_share!r}; expected a share in [0, 1]")


def make_env(env_or_fn: Any, env_kwargs: dict[str, Any] | None = None) -> Any:
    """Resolve what `multiagent` accepts to a raw env instance (not yet wrapped)."""
    kwargs = dict(env_kwargs or {})
    if isinstance(env_or_fn, str):
        return _make_from_string(env_or_fn, kwargs)
    if _is_env(env_or_fn):
        if kwargs:
            raise EnvError("env_kwargs= applies to env constructors, not to a built env")
        return env_or_fn
    if hasattr(env_or_fn, "__spec__") and hasattr(env_or_fn, "__name__"):  # a module
        return _make_from_module(env_or_fn, kwargs)
    if not callable(env_or_fn):
        raise EnvError(
            f"expected an env, a function that builds one, an env module or an env id string; "
            f"got {type(env_or_fn).__name__}: {env_or_fn!r}"
        )
    try:
        env = env_or_fn(**kwargs)
    except TypeError as err:
        raise _build_error(env_or_fn, kwargs, err) from err
    if not _is_env(env):
        raise EnvError(
            f"{getattr(env_or_fn, '__name__', env_or_fn)!r} returned {type(env).__name__}, "
            "not a PettingZoo AECEnv or ParallelEnv, a gymnasium.Env or an env with "
            "is_multiagent=True"
        )
    return env


def _build_error(
    fn: Any, kwargs: dict[str, Any], err: TypeError, name: str | None = None
) -> EnvError:
    """EnvError for an env constructor that refused its arguments, naming the ones it takes."""
    if name is None:
        qualname = getattr(fn, "__qualname__", "") or repr(fn)
        name = qualname if "<locals>" not in qualname else getattr(fn, "__name__", qualname)
        name = f"{getattr(fn, '__module__', '')}.{name}".lstrip(".")
    params = env_parameters(fn)
    if kwargs and params is not None:
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            return EnvError(
                f"env {name!r} has no parameter(s) {unknown} (from env_kwargs); its "
                f"parameters are: {', '.join(params) or 'none'}"
            )
    return EnvError(f"calling {name!r} to build the env failed: {err}")


def env_parameters(fn: Any) -> list[str] | None:
    """The keyword parameters an env constructor takes. PettingZoo's `env()` and
    `parallel_env()` take **kwargs and pass them to their module's `raw_env`: its own
    parameters are the ones that count. None when they cannot be told."""
    candidates = [fn]
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    for cell in getattr(fn, "__closure__", None) or ():
        candidates.append(cell.cell_contents)
    for candidate in list(candidates):
        home = sys.modules.get(getattr(candidate, "__module__", "") or "")
        if home is not None and isinstance(getattr(home, "raw_env", None), type):
            candidates.append(home.raw_env)
    if module is not None and isinstance(getattr(module, "raw_env", None), type):
        candidates.append(module.raw_env)
    for candidate in candidates:
        try:
            target = candidate.__init__ if isinstance(candidate, type) else candidate
            signature = inspect.signature(target)
        except (TypeError, ValueError):
            continue
        params = [
            p.name
            for p in signature.parameters.values()
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        if params or not any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()):
            return params
    return None


def _is_env(obj: Any) -> bool:
    if isinstance(obj, type):  # an env class is a constructor, not an env
        return False
    return (
        isinstance(obj, AECEnv | ParallelEnv | gymnasium.Env)
        or getattr(obj, "is_multiagent", False) is True
    )


def _make_from_module(module: Any, kwargs: dict[str, Any]) -> Any:
    # Prefer the parallel constructor when a module has one: parallel envs step
    # every seat per call, which is the faster path for simultaneous games.
    for attr in ("parallel_env", "env"):
        fn: Callable[..., Any] | None = getattr(module, attr, None)
        if callable(fn):
            return fn(**kwargs)
    raise EnvError(
        f"module {module.__name__!r} has no parallel_env() or env() function to build an env"
    )


def _make_from_string(spec: str, kwargs: dict[str, Any]) -> Any:
    import pettingzoo

    if spec.startswith("atari/"):
        kwargs.setdefault("auto_rom_install_path", _ale_rom_path())
    for kind, registry in (
        ("parallel", pettingzoo.parallel_registry),
        ("aec", pettingzoo.aec_registry),
    ):
        if spec in registry:
            try:
                return pettingzoo.make(kind, spec, **kwargs)
            except TypeError as err:
                module_name, _, attr = registry[spec].entry_point.partition(":")
                fn = getattr(importlib.import_module(module_name), attr)
                raise _build_error(fn, kwargs, err, name=spec) from err
    if spec in gymnasium.registry:
        return gymnasium.make(spec, **kwargs)
    if "." in spec or ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise EnvError(f"env {spec!r}: cannot import module {module_name!r} ({err})") from err
        if attr:
            try:
                fn = getattr(module, attr)
            except AttributeError as err:
                raise EnvError(f"env {spec!r}: module {module_name!r} has no {attr!r}") from err
            return make_env(fn, kwargs)
        return _make_from_module(module, kwargs)
    known = sorted(set(pettingzoo.aec_registry) | set(pettingzoo.parallel_registry))
    raise EnvError(
        f"{spec!r} names no env: not a PettingZoo registry id (e.g. {known[:3]}...), "
        "a gymnasium id or an import path such as 'pettingzoo.classic.connect_four_v3'"
    )


def _ale_rom_path() -> str | None:
    try:
        import os

        import ale_py.roms
    except ImportError:
        return None
    return os.path.dirname(ale_py.roms.get_rom_path("pong"))
