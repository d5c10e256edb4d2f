"""Policies as the league sees them: records of metadata, and the fixed policies.

A `PolicyRecord` is what the league knows about a policy: its id, kind
(learner, snapshot or fixed), role, algorithm, parent and step. The object that
acts (a learner's live network, a snapshot's frozen copy, a `RandomPolicy`) is
the record's opaque `payload`: the league hands it out but never looks inside
it or serialises it. `RandomPolicy` and `CallablePolicy` are the fixed policies
that need no training; they use numpy only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces

KINDS = ("learner", "snapshot", "fixed")

# Ids end up in ';'-joined CSV fields and in file names (checkpoints/<policy>/).
_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.@+\-]+$")


def check_policy_id(policy_id: str) -> None:
    """Raise ValueError unless `policy_id` is usable in records and paths."""
    if not isinstance(policy_id, str) or not _ID_PATTERN.match(policy_id):
        raise ValueError(
            f"policy id {policy_id!r} is not allowed: use letters, digits and '_.@+-' only "
            "(ids appear in ';'-joined CSV fields and in checkpoint paths)"
        )


@dataclass
class PolicyRecord:
    """Metadata of one policy of the league, plus the object that acts for it.

    The league owns the metadata fields and changes them itself (a learner's
    `step`); `payload` is the caller's to set, e.g. after `League.load`, which
    restores metadata only.
    """

    id: str
    kind: str
    role: str  # the seat role it plays
    algo: str
    # A snapshot's learner; a learner's, when PBT copied another learner into it.
    parent: str | None = None
    # Learner steps: the learner's latest known step, or the step a snapshot was taken at.
    step: int = 0
    # AlphaStar role (league.roles): main, main_exploiter, league_exploiter or learner;
    # a snapshot keeps its learner's; None for fixed policies.
    league_role: str | None = "learner"
    # The acting object; never saved by the league (the trainer saves weights itself).
    payload: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_policy_id(self.id)
        if self.kind not in KINDS:
            raise ValueError(f"policy {self.id!r}: kind {self.kind!r} is not one of {KINDS}")
        if self.kind == "snapshot" and self.parent is None:
            raise ValueError(f"policy {self.id!r}: a snapshot needs the learner it froze as parent")
        if self.kind == "fixed" and self.parent is not None:
            raise ValueError(f"policy {self.id!r}: a fixed policy has no parent")

    def to_dict(self) -> dict[str, Any]:
        """The metadata as JSON-ready data; the payload is left out."""
        return {
            "id": self.id,
            "kind": self.kind,
            "role": self.role,
            "algo": self.algo,
            "parent": self.parent,
            "step": self.step,
            "league_role": self.league_role,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], payload: Any = None) -> PolicyRecord:
        """Inverse of `to_dict`."""
        return cls(
            id=data["id"],
            kind=data["kind"],
            role=data["role"],
            algo=data["algo"],
            parent=data["parent"],
            step=int(data["step"]),
            league_role=data.get("league_role", None if data["kind"] == "fixed" else "learner"),
            payload=payload,
        )


class RandomPolicy:
    """Uniformly random legal actions for a Discrete, MultiDiscrete or Box action space.

    `act(obs, action_mask=None)` takes one observation or a batch with a leading
    batch dimension. A batch is recognised by the mask (shape `(B, n)`) or, when
    there is no mask, by `observation_space` (an observation with one more
    dimension than the space is a batch); without either, `obs` is one observation.
    Masks are boolean, True = legal: shape `(n,)` for Discrete(n) and
    `(sum(nvec),)` for MultiDiscrete (the per-component masks concatenated).
    """

    def __init__(
        self,
        action_space: spaces.Space,
        seed: int | None = None,
        observation_space: spaces.Space | None = None,
    ) -> None:
        if not isinstance(action_space, spaces.Discrete | spaces.MultiDiscrete | spaces.Box):
            raise TypeError(
                f"RandomPolicy supports Discrete, MultiDiscrete and Box action spaces, "
                f"not {action_space}; wrap your own sampler in CallablePolicy instead"
            )
        self.action_space = action_space
        self.observation_space = observation_space
        self.rng = np.random.default_rng(seed)

    def __repr__(self) -> str:
        return f"RandomPolicy({self.action_space})"

    def act(self, obs: Any, action_mask: np.ndarray | None = None) -> Any:
        """One random legal action, or an array of them for a batch."""
        mask = None if action_mask is None else np.asarray(action_mask, dtype=bool)
        batch = self._batch_size(obs, mask)
        rows = 1 if batch is None else batch
        space = self.action_space
        if isinstance(space, spaces.Discrete):
            actions = self._discrete(int(space.n), rows, mask) + int(space.start)
            actions = actions.astype(space.dtype)
        elif isinstance(space, spaces.MultiDiscrete):
            actions = self._multi_discrete(rows, mask)
        else:
            if mask is not None:
                raise ValueError("RandomPolicy: a Box action space takes no action mask")
            actions = self._box(rows)
        return actions if batch is not None else actions[0]

    def _batch_size(self, obs: Any, mask: np.ndarray | None) -> int | None:
        if mask is not None:
            return mask.shape[0] if mask.ndim == 2 else None
        if self.observation_space is not None and self.observation_space.shape is not None:
            obs = np.asarray(obs)
            if obs.ndim == len(self.observation_space.shape) + 1:
                return obs.shape[0]
        return None

    def _discrete(self, n: int, rows: int, mask: np.ndarray | None) -> np.ndarray:
        if mask is None:
            return self.rng.integers(0, n, size=rows)
        mask = mask.reshape(rows, -1)
        if mask.shape[1] != n:
            raise ValueError(f"RandomPolicy: action mask has {mask.shape[1]} entries, expected {n}")
        empty = ~mask.any(axis=1)
        if empty.any():
            raise ValueError(
                f"RandomPolicy: action mask row {int(np.argmax(empty))} allows no action"
            )
        # The argmax of independent uniforms over the legal entries is a uniform legal index.
        keys = np.where(mask, self.rng.random(mask.shape), -1.0)
        return keys.argmax(axis=1)

    def _multi_discrete(self, rows: int, mask: np.ndarray | None) -> np.ndarray:
        space = self.action_space
        nvec = space.nvec.reshape(-1)
        if mask is not None:
            mask = mask.reshape(rows, -1)
            if mask.shape[1] != nvec.sum():
                raise ValueError(
                    f"RandomPolicy: action mask has {mask.shape[1]} entries, expected "
                    f"{int(nvec.sum())} (the masks of {space} concatenated)"
                )
        bounds = np.concatenate([[0], np.cumsum(nvec)])
        columns = [
            self._discrete(int(n), rows, None if mask is None else mask[:, lo:hi])
            for n, lo, hi in zip(nvec, bounds[:-1], bounds[1:], strict=True)
        ]
        actions = np.stack(columns, axis=1) + space.start.reshape(-1)
        return actions.reshape((rows, *space.shape)).astype(space.dtype)

    def _box(self, rows: int) -> np.ndarray:
        space = self.action_space
        shape = (rows, *space.shape)
        low = np.broadcast_to(space.low, space.shape)
        high = np.broadcast_to(space.high, space.shape)
        if np.issubdtype(space.dtype, np.integer):
            return self.rng.integers(low, high, size=shape, endpoint=True).astype(space.dtype)
        # Bounded dims: uniform; half-bounded: shifted exponential; unbounded: normal
        # (the distributions gymnasium's Box.sample uses).
        bounded_low, bounded_high = np.isfinite(low), np.isfinite(high)
        sample = self.rng.standard_normal(shape)
        exponential = self.rng.exponential(size=shape)
        sample = np.where(bounded_low & ~bounded_high, low + exponential, sample)
        sample = np.where(~bounded_low & bounded_high, high - exponential, sample)
        both = bounded_low & bounded_high
        uniform = self.rng.uniform(np.where(both, low, 0.0), np.where(both, high, 1.0), size=shape)
        sample = np.where(both, uniform, sample)
        return sample.astype(space.dtype)


class CallablePolicy:
    """A fixed policy from any callable `fn(obs, action_mask) -> action`, used as is."""

    def __init__(self, fn: Callable[[Any, np.ndarray | None], Any]) -> None:
        if not callable(fn):
            raise TypeError(f"CallablePolicy needs a callable fn(obs, action_mask), got {fn!r}")
        self.fn = fn

    def __repr__(self) -> str:
        return f"CallablePolicy({getattr(self.fn, '__name__', self.fn)!r})"

    def act(self, obs: Any, action_mask: np.ndarray | None = None) -> Any:
        """Whatever `fn(obs, action_mask)` returns."""
        return self.fn(obs, action_mask)


class UnsavedPolicy:
    """Stands in for a fixed policy of a loaded run that was a user function: such
    functions are not saved, so the run can be read but that policy cannot act."""

    def __init__(self, policy_id: str, run_dir: str) -> None:
        self.policy_id = policy_id
        self.run_dir = run_dir

    def __repr__(self) -> str:
        return f"UnsavedPolicy({self.policy_id!r})"

    def act(self, obs: Any, action_mask: np.ndarray | None = None) -> Any:
        raise RuntimeError(
            f"fixed policy {self.policy_id!r} of run {self.run_dir!r} was a user function, "
            f"which runs do not save; pass fixed_policies={{{self.policy_id!r}: fn}} to "
            "league.load (or league.train(resume=...)) to act with it"
        )
