"""Per-seat observation adapters, action checks and role grouping.

An env's raw observation space becomes the Box the contract returns:

- ``Dict({"observation", "action_mask"})`` (PettingZoo classic): the observation
  is the ``"observation"`` part and the mask goes to ``infos[i]["action_mask"]``;
- any other ``Dict``/``Tuple``/``Discrete``/``MultiDiscrete``/``MultiBinary``:
  flattened by ``gymnasium.spaces.flatten`` into a 1-D Box. The layout is
  gymnasium's: Dict entries in key order (sorted unless the env built an
  ordered dict), Tuple entries in order, Discrete as one-hot, Box raveled;
- ``Box``: unchanged.

With ``pad=True`` every seat's observation is zero-padded to one common shape
and every Discrete action space is widened to the largest one, the added
actions masked out, so one model can serve seats that differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from wrappers.errors import ActionError, SpaceError

MASK_KEY = "action_mask"
OBS_KEY = "observation"


@dataclass
class SeatSpace:
    """How one seat's raw observations and actions map to the contract."""

    seat: str
    raw_space: spaces.Space
    observation_space: spaces.Box
    action_space: spaces.Space
    raw_action_n: int | None = None  # Discrete size before padding
    mask_in_obs: bool = False
    flatten: bool = False
    pad_to: tuple[int, ...] | None = None
    # When padding added actions: True for the env's own actions, False for the added.
    own_actions: np.ndarray | None = None

    def observation(
        self, raw: Any, info: dict | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Raw env observation and info -> (contract observation, action mask or None).

        The mask is the observation's ``"action_mask"``, else the info's; a seat
        whose actions were padded always has one, with the added actions masked out.
        """
        mask = None
        if self.mask_in_obs:
            mask = np.asarray(raw[MASK_KEY], dtype=bool)
            raw = raw[OBS_KEY]
        elif info and MASK_KEY in info:
            mask = np.asarray(info[MASK_KEY], dtype=bool)
        obs = spaces.flatten(self._inner_space, raw) if self.flatten else np.asarray(raw)
        if self.pad_to is not None:
            obs = _pad(obs, self.pad_to)
        if self.own_actions is not None:
            if mask is None:
                mask = self.own_actions
            else:
                padded = np.zeros(self.own_actions.shape, dtype=bool)
                padded[: mask.shape[0]] = mask
                mask = padded
        return obs, mask

    @property
    def _inner_space(self) -> spaces.Space:
        return self.raw_space[OBS_KEY] if self.mask_in_obs else self.raw_space

    def zeros(self) -> np.ndarray:
        z = np.zeros(self.observation_space.shape, dtype=self.observation_space.dtype)
        z.flags.writeable = False
        return z


def _pad(obs: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if obs.shape == shape:
        return obs
    out = np.zeros(shape, dtype=obs.dtype)
    out[tuple(slice(0, n) for n in obs.shape)] = obs
    return out


def _has_mask(space: spaces.Space) -> bool:
    return isinstance(space, spaces.Dict) and OBS_KEY in space.spaces and MASK_KEY in space.spaces


def seat_space(seat: str, obs_space: spaces.Space, action_space: spaces.Space, env_name: str):
    """Build the adapter for one seat from its raw spaces."""
    if not isinstance(action_space, spaces.Discrete | spaces.MultiDiscrete | spaces.Box):
        raise SpaceError(
            f"env {env_name!r}, seat {seat!r}: action space {action_space} is not supported; "
            "use Discrete, MultiDiscrete or Box actions (wrap the env to convert it)"
        )
    mask_in_obs = _has_mask(obs_space)
    inner = obs_space[OBS_KEY] if mask_in_obs else obs_space
    if isinstance(inner, spaces.Box):
        box, flatten = inner, False
    elif isinstance(
        inner,
        spaces.Dict | spaces.Tuple | spaces.Discrete | spaces.MultiDiscrete | spaces.MultiBinary,
    ):
        try:
            box = spaces.flatten_space(inner)
        except NotImplementedError as err:
            raise SpaceError(
                f"env {env_name!r}, seat {seat!r}: observation space {inner} cannot be flattened"
            ) from err
        if not isinstance(box, spaces.Box):
            raise SpaceError(
                f"env {env_name!r}, seat {seat!r}: observation space {inner} does not flatten "
                "to a Box (Graph, Sequence and Text spaces are not supported)"
            )
        flatten = True
    else:
        raise SpaceError(
            f"env {env_name!r}, seat {seat!r}: observation space {inner} is not supported; "
            "use Box, Discrete, MultiDiscrete, MultiBinary or Dict/Tuple of them"
        )
    raw_n = int(action_space.n) if isinstance(action_space, spaces.Discrete) else None
    return SeatSpace(
        seat=seat,
        raw_space=obs_space,
        observation_space=box,
        action_space=action_space,
        raw_action_n=raw_n,
        mask_in_obs=mask_in_obs,
        flatten=flatten,
    )


def pad_seats(seat_spaces: Sequence[SeatSpace], env_name: str) -> None:
    """Widen every seat to one common observation shape and Discrete action size."""
    shapes = [s.observation_space.shape for s in seat_spaces]
    if len({len(s) for s in shapes}) != 1:
        raise SpaceError(
            f"env {env_name!r}: pad=True needs observations of one rank, got shapes {shapes}"
        )
    common = tuple(int(max(dims)) for dims in zip(*shapes, strict=True))
    dtype = np.result_type(*[s.observation_space.dtype for s in seat_spaces])
    low = min(float(np.min(s.observation_space.low)) for s in seat_spaces)
    high = max(float(np.max(s.observation_space.high)) for s in seat_spaces)
    box = spaces.Box(min(low, 0.0), max(high, 0.0), common, dtype=dtype)
    actions = [s.action_space for s in seat_spaces]
    if all(isinstance(a, spaces.Discrete) for a in actions):
        starts = {int(a.start) for a in actions}
        if starts != {0}:
            raise SpaceError(f"env {env_name!r}: pad=True needs Discrete actions starting at 0")
        action = spaces.Discrete(max(int(a.n) for a in actions))
    elif all(a == actions[0] for a in actions):
        action = actions[0]
    else:
        raise SpaceError(
            f"env {env_name!r}: pad=True can widen Discrete action spaces only, got {actions}"
        )
    for s in seat_spaces:
        s.pad_to = common
        s.observation_space = box
        s.action_space = action
        if s.raw_action_n is not None and s.raw_action_n < action.n:
            s.own_actions = np.arange(action.n) < s.raw_action_n
            s.own_actions.flags.writeable = False


def role_of(seat: str) -> str:
    """`adversary_2` -> `adversary`; a seat name without a numeric suffix is its own role."""
    head, sep, tail = seat.rpartition("_")
    return head if sep and tail.isdigit() else seat


def group_roles(
    seats: Sequence[str], seat_spaces: Sequence[SeatSpace], given: dict[str, str] | None = None
) -> list[str]:
    """One role name per seat: seats share a role when their spaces are identical."""
    if given is not None:
        missing = [s for s in seats if s not in given]
        if missing:
            raise SpaceError(f"roles= gives no role for seats {missing}")
        roles = [given[s] for s in seats]
        for role in set(roles):
            members = [sp for sp, r in zip(seat_spaces, roles, strict=True) if r == role]
            if any(not _same_spaces(members[0], m) for m in members[1:]):
                raise SpaceError(f"roles=: seats of role {role!r} have different spaces")
        return roles
    groups: list[list[int]] = []
    for i, sp in enumerate(seat_spaces):
        for group in groups:
            if _same_spaces(seat_spaces[group[0]], sp):
                group.append(i)
                break
        else:
            groups.append([i])
    roles = [""] * len(seats)
    used: set[str] = set()
    for k, group in enumerate(groups):
        prefixes = list(dict.fromkeys(role_of(seats[i]) for i in group))
        name = prefixes[0] if len(prefixes) == 1 else "+".join(prefixes)
        if name in used:
            name = f"{name}{k}"
        used.add(name)
        for i in group:
            roles[i] = name
    return roles


def _same_spaces(a: SeatSpace, b: SeatSpace) -> bool:
    return a.observation_space == b.observation_space and a.action_space == b.action_space


def check_action(
    space: spaces.Space, action: Any, mask: np.ndarray | None, env_name: str, seat: str
) -> Any:
    """Validate one active seat's action; return it in the form the env expects."""
    if isinstance(space, spaces.Discrete):
        if np.ndim(action) != 0:
            raise ActionError(
                f"env {env_name!r}, seat {seat!r}: action {action!r} must be a scalar for {space}"
            )
        try:
            a = int(action)
        except (TypeError, ValueError):
            a = None
        # int() would truncate 1.5 and parse "3": only integral numbers pass.
        if a is None or a != action:
            raise ActionError(
                f"env {env_name!r}, seat {seat!r}: action {action!r} is not an integer for {space}"
            )
        index = a - int(space.start)
        if not 0 <= index < space.n:
            raise ActionError(f"env {env_name!r}, seat {seat!r}: action {a} is outside {space}")
        if mask is not None and not mask[index]:
            legal = np.flatnonzero(mask).tolist()
            raise ActionError(
                f"env {env_name!r}, seat {seat!r}: action {a} is illegal here (legal: {legal}); "
                "pass illegal_actions='env' to let the env handle it"
            )
        return a
    a = np.asarray(action)
    if a.shape != space.shape:
        raise ActionError(
            f"env {env_name!r}, seat {seat!r}: action has shape {a.shape}, "
            f"expected {space.shape} for {space}"
        )
    if isinstance(space, spaces.MultiDiscrete):
        a = a.astype(space.dtype, copy=False)
        if np.any(a < space.start) or np.any(a >= space.start + space.nvec):
            raise ActionError(f"env {env_name!r}, seat {seat!r}: action {a} is outside {space}")
        return a
    return a.astype(space.dtype, copy=False)
