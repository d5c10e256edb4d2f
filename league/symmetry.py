"""Board symmetries: the transformations of a game that change nothing about it.

A left-right mirror of a connect-four position is the same position with the
columns renumbered; tic-tac-toe has eight such views (four rotations, each
also reflected). A policy that knows this learns from every game what it would
otherwise have to learn once per view. Given an env's symmetries, the models
in `league.models` make their action logits and values exactly invariant,
whatever the weights: by averaging them over all views of an observation
(each view's logits put back in the original action order; one forward pass
per view), or by running the network on one fixed view of it ("canonical").
Either is still a plain differentiable policy, so PPO's likelihood ratios,
A2C and DQN need no change.

A symmetry is a pair of index permutations (`Symmetry`): `obs[i]` is the flat
index of the original observation that lands at flat index `i` of the
transformed one, and `action[a]` is the transformed game's action for the
original action `a`. The identity is implicit. Connect four and tic-tac-toe
ship theirs; `register_symmetries(env_name, fn)` adds others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from league.errors import ConfigError


@dataclass(frozen=True)
class Symmetry:
    """One view of the game: flat observation indices and the matching action map."""

    obs: tuple[int, ...]
    action: tuple[int, ...]


# How a model uses them (league.models.Symmetries): one pass on a fixed view, or all views.
SYMMETRY_MODES = ("average", "canonical")
# The config form: ((obs indices, action indices), ...), hashable so learners can be grouped.
Symmetries = tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]
SymmetryFn = Callable[[spaces.Space, spaces.Space], list[Symmetry] | None]
_REGISTERED: dict[str, SymmetryFn] = {}


def grid_symmetries(
    shape: Sequence[int], transforms: Sequence[Callable[[np.ndarray], np.ndarray]], cells: bool
) -> list[Symmetry]:
    """Symmetries of an (H, W, C) board for array `transforms` acting on the first two
    axes; actions name a cell (`cells=True`, action = row * W + col) or a column."""
    height, width = shape[0], shape[1]
    flat = np.arange(int(np.prod(shape))).reshape(shape)
    targets = np.arange(height * width).reshape(height, width) if cells else np.arange(width)
    result = []
    for transform in transforms:
        obs = transform(flat).reshape(-1)
        if cells:
            # The cell where original cell a lands: invert the transformed index grid.
            moved = transform(targets).reshape(-1)
            action = np.empty(height * width, dtype=np.int64)
            action[moved] = np.arange(height * width)
        else:
            action = transform(targets[None, :])[0]
        result.append(Symmetry(tuple(int(i) for i in obs), tuple(int(a) for a in action)))
    return result


def _connect_four(obs_space: spaces.Space, action_space: spaces.Space) -> list[Symmetry] | None:
    if getattr(obs_space, "shape", None) != (6, 7, 2) or action_space != spaces.Discrete(7):
        return None
    return grid_symmetries((6, 7, 2), [lambda a: a[:, ::-1]], cells=False)


def _tictactoe(obs_space: spaces.Space, action_space: spaces.Space) -> list[Symmetry] | None:
    if getattr(obs_space, "shape", None) != (3, 3, 2) or action_space != spaces.Discrete(9):
        return None
    transforms = [
        lambda a, k=k, f=f: np.rot90(a[:, ::-1] if f else a, k) for f in (0, 1) for k in range(4)
    ]
    return grid_symmetries((3, 3, 2), transforms[1:], cells=True)


_BUILT_IN: dict[str, SymmetryFn] = {
    "connect_four_v3": _connect_four,
    "tictactoe_v3": _tictactoe,
}


def register_symmetries(env_name: str, fn: SymmetryFn) -> None:
    """Give `env_name` (as the wrappers name it, e.g. "connect_four_v3") symmetries:
    `fn(observation_space, action_space)` returns a list of `Symmetry`, or None where
    the spaces are not the ones it knows (a padded or stacked variant)."""
    _REGISTERED[env_name] = fn


def unregister_symmetries(env_name: str) -> None:
    """Take back symmetries added with `register_symmetries`."""
    _REGISTERED.pop(env_name, None)


def env_symmetries(
    env_name: str, observation_space: spaces.Space, action_space: spaces.Space
) -> list[Symmetry]:
    """The registered (else built-in) symmetries of an env for these spaces; [] if none."""
    fn = _REGISTERED.get(env_name) or _BUILT_IN.get(env_name)
    found = fn(observation_space, action_space) if fn else None
    return list(found or [])


def as_config(symmetries: Sequence[Symmetry]) -> list[list[list[int]]]:
    """The form an algorithm config stores: [[obs indices, action indices], ...]."""
    return [[list(s.obs), list(s.action)] for s in symmetries]


def freeze_symmetries(pairs: Any) -> Symmetries | None:
    """An algorithm config's `symmetries` as nested tuples (JSON gives lists); None if empty."""
    if not pairs:
        return None
    try:
        return tuple(tuple(tuple(int(i) for i in part) for part in pair) for pair in pairs)
    except (TypeError, ValueError):
        raise ConfigError(
            "symmetries must be a list of [obs indices, action indices] pairs of integers, "
            f"got {str(pairs)[:80]}"
        ) from None


def check_symmetries(
    pairs: Sequence[Sequence[Sequence[int]]], obs_size: int, num_actions: int, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """Validate config pairs; returns (obs, action) index arrays with the identity first."""
    obs_rows, action_rows = [np.arange(obs_size)], [np.arange(num_actions)]
    for k, pair in enumerate(pairs):
        if len(pair) != 2:
            raise ConfigError(
                f"{where}: symmetries[{k}] must be a pair [obs indices, action indices]"
            )
        for name, index, size, rows in (
            ("observation", pair[0], obs_size, obs_rows),
            ("action", pair[1], num_actions, action_rows),
        ):
            index = np.asarray(index, dtype=np.int64)
            if index.shape != (size,) or not np.array_equal(np.sort(index), np.arange(size)):
                raise ConfigError(
                    f"{where}: symmetries[{k}]'s {name} indices must be a permutation of "
                    f"0..{size - 1} (the flat {name} size), got {len(index)} entries"
                )
            rows.append(index)
    return np.stack(obs_rows), np.stack(action_rows)
