"""Matchmaking: who plays which seat. Owns the mapping protocol, the seat layout and the strategies.

A *mapping* answers `assign(env_id) -> [policy id per seat]` at every episode
start and hears `report(env_id, MatchResult)` at every episode end. Every
strategy here is a mapping built on one flow: pick a focal learner (cycling
over the learners), put it on a random team that has seats of its role, and
fill every other (team, role) slot with a policy the strategy picks. All seats
of one team that share a role get the same policy.

Strategies (docs/league.md has the formulas and when to use each):
`uniform`, `self_play`, `pfsp`, `rating`, `round_robin`, `snapshots`, and
`mix`, a probability mix of the others.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from league.errors import ConfigError, MappingError
from league.payoff import Payoff
from league.policies import PolicyRecord
from league.ratings import Ratings

# x is the focal learner's win rate against a candidate opponent.
WEIGHTINGS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "squared": lambda x: (1.0 - x) ** 2,
    "variance": lambda x: x * (1.0 - x),
    "linear": lambda x: 1.0 - x,
    "linear_capped": lambda x: np.minimum(0.5, 1.0 - x),
}


def check_weighting(weighting: str) -> None:
    """ValueError unless `weighting` names a PFSP weighting."""
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"pfsp weighting {weighting!r} is unknown; valid: {list(WEIGHTINGS)}")


def pfsp_weights(win_rates: np.ndarray, weighting: str) -> np.ndarray:
    """PFSP weight of each candidate from the focal learner's win rate against it."""
    check_weighting(weighting)
    return WEIGHTINGS[weighting](np.asarray(win_rates, dtype=float))


@dataclass(frozen=True)
class MatchResult:
    """The outcome of one match (episode), as the trainer reports it."""

    policies: list[str]  # policy id per seat
    returns: list[float]  # episode return per seat
    step: int = 0  # env steps of the run so far
    env_id: int = 0
    # Optional outcome per team (e.g. a game score); by default a team's return
    # is the sum of its seats' returns.
    team_returns: list[float] | None = None


class PolicyMapping(Protocol):
    """What the trainer talks to: the league, a strategy, or a user's own object."""

    def assign(self, env_id: int) -> list[str]: ...

    def report(self, env_id: int, result: MatchResult) -> None: ...


class FunctionMapping:
    """A plain function `fn(env_id, seat_names) -> policy ids` as a mapping; reports go nowhere."""

    def __init__(self, fn: Callable[[int, list[str]], Sequence[str]], seat_names: Sequence[str]):
        self.fn = fn
        self.seat_names = list(seat_names)

    def __repr__(self) -> str:
        return f"FunctionMapping({getattr(self.fn, '__name__', self.fn)!r})"

    def assign(self, env_id: int) -> list[str]:
        return list(self.fn(env_id, list(self.seat_names)))

    def report(self, env_id: int, result: MatchResult) -> None:
        pass


@dataclass(frozen=True)
class Slot:
    """The seats of one team that share a role: one policy sits in all of them."""

    team: int
    role: str
    seats: tuple[int, ...]


@dataclass(frozen=True)
class SeatLayout:
    """Seats with their roles and teams, as matchmaking and the records need them."""

    seats: tuple[str, ...]
    roles: tuple[str, ...]
    teams: tuple[str, ...]  # team name per seat
    team_names: tuple[str, ...] = field(init=False)  # in order of first seat
    team_of: tuple[int, ...] = field(init=False)  # team index per seat
    slots: tuple[Slot, ...] = field(init=False)

    def __post_init__(self) -> None:
        names = tuple(dict.fromkeys(self.teams))
        team_of = tuple(names.index(t) for t in self.teams)
        grouped: dict[tuple[int, str], list[int]] = {}
        for seat, (team, role) in enumerate(zip(team_of, self.roles, strict=True)):
            grouped.setdefault((team, role), []).append(seat)
        object.__setattr__(self, "team_names", names)
        object.__setattr__(self, "team_of", team_of)
        slots = tuple(Slot(t, r, tuple(s)) for (t, r), s in grouped.items())
        object.__setattr__(self, "slots", slots)

    @classmethod
    def build(
        cls,
        seat_names: Sequence[str],
        roles: Sequence[str],
        teams: Mapping[str, str] | Callable[[str], str] | None = None,
    ) -> SeatLayout:
        """Check seats and roles, and resolve `teams`: a dict seat -> team, a callable
        seat -> team, or None for one team per seat."""
        seat_names, roles = [str(s) for s in seat_names], [str(r) for r in roles]
        if not seat_names:
            raise ConfigError("a league needs at least one seat")
        if len(set(seat_names)) != len(seat_names):
            raise ConfigError(f"seat names must be unique, got {seat_names}")
        if len(roles) != len(seat_names):
            raise ConfigError(
                f"{len(roles)} roles for {len(seat_names)} seats {seat_names}: "
                "give one role per seat"
            )
        for name in seat_names + roles:
            if not name or any(c in name for c in ";,\n\r"):
                raise ConfigError(f"seat or role name {name!r} must be non-empty without ';', ','")
        if teams is None:
            resolved = list(seat_names)
        elif callable(teams):
            resolved = [str(teams(s)) for s in seat_names]
        else:
            missing = [s for s in seat_names if s not in teams]
            unknown = [s for s in teams if s not in seat_names]
            if missing or unknown:
                raise ConfigError(
                    f"teams= must name a team for every seat of {seat_names}: "
                    f"missing {missing}, unknown seats {unknown}"
                )
            resolved = [str(teams[s]) for s in seat_names]
        return cls(tuple(seat_names), tuple(roles), tuple(resolved))

    def team_returns(self, returns: Sequence[float]) -> list[float]:
        """Sum of seat returns per team."""
        totals = [0.0] * len(self.team_names)
        for team, r in zip(self.team_of, returns, strict=True):
            totals[team] += float(r)
        return totals

    def team_policies(self, policies: Sequence[str]) -> list[list[str]]:
        """Distinct policy ids per team, in seat order."""
        members: list[dict[str, None]] = [{} for _ in self.team_names]
        for team, p in zip(self.team_of, policies, strict=True):
            members[team][p] = None
        return [list(m) for m in members]

    def check_assignment(
        self, env_id: int, ids: Sequence[str], policies: Mapping[str, PolicyRecord]
    ) -> list[str]:
        """`ids` as a list, or ValueError naming the env, seat or policy at fault."""
        ids = list(ids)
        if len(ids) != len(self.seats):
            raise MappingError(
                f"mapping returned {len(ids)} policy ids for env {env_id}, expected "
                f"{len(self.seats)} (one per seat: {list(self.seats)})"
            )
        for seat, role, pid in zip(self.seats, self.roles, ids, strict=True):
            record = policies.get(pid)
            if record is None:
                raise MappingError(
                    f"mapping assigned unknown policy {pid!r} to seat {seat!r} of env {env_id}; "
                    f"known policies: {list(policies)}"
                )
            if record.role != role:
                raise MappingError(
                    f"mapping assigned policy {pid!r} (role {record.role!r}) to seat {seat!r} "
                    f"(role {role!r}) of env {env_id}: a policy only sits in seats of its role"
                )
        return ids


class Pool:
    """What strategies read: the league's policies, payoff and ratings (shared, not copied)."""

    def __init__(self, policies: dict[str, PolicyRecord], payoff: Payoff, ratings: Ratings):
        self.policies = policies
        self.payoff = payoff
        self.ratings = ratings

    def of_role(self, role: str) -> list[str]:
        ids = [p for p, r in self.policies.items() if r.role == role]
        if not ids:
            raise MappingError(
                f"no policy of role {role!r} to seat: add one with add_learner or add_fixed"
            )
        return ids

    def learners(self, role: str | None = None) -> list[str]:
        return [
            p
            for p, r in self.policies.items()
            if r.kind == "learner" and (role is None or r.role == role)
        ]

    def snapshots(self, *, role: str | None = None, parent: str | None = None) -> list[str]:
        return [
            p
            for p, r in self.policies.items()
            if r.kind == "snapshot"
            and (role is None or r.role == role)
            and (parent is None or r.parent == parent)
        ]

    def focal_candidates(self) -> list[str]:
        """Learners take turns as focal policy; a league without learners cycles over all."""
        ids = self.learners() or list(self.policies)
        if not ids:
            raise ValueError("the league has no policies: add some with add_learner or add_fixed")
        return ids


class Strategy:
    """A mapping: focal learner on a random team, other slots filled by `opponent`."""

    name: ClassVar[str]

    def __init__(self, layout: SeatLayout, pool: Pool, rng: np.random.Generator) -> None:
        self.layout = layout
        self.pool = pool
        self.rng = rng
        self.counter = 0  # assignments made: the focal learner cycles with it

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def assign(self, env_id: int) -> list[str]:
        return self.fill(self.next_focal())

    def report(self, env_id: int, result: MatchResult) -> None:
        """The league updates payoff and ratings, which strategies read; nothing else to do."""

    def next_focal(self) -> str:
        focals = self.pool.focal_candidates()
        focal = focals[self.counter % len(focals)]
        self.counter += 1
        return focal

    def fill(self, focal: str) -> list[str]:
        """An assignment with `focal` on one team and the strategy's picks everywhere else."""
        role = self.pool.policies[focal].role
        focal_team = self.focal_team(focal, role)
        ids = [""] * len(self.layout.seats)
        ordinal: dict[str, int] = {}
        for slot in self.layout.slots:
            if slot.team == focal_team and slot.role == role:
                pid = focal
            else:
                pid = self.opponent(focal, slot.role, ordinal.setdefault(slot.role, 0))
                ordinal[slot.role] += 1
            for seat in slot.seats:
                ids[seat] = pid
        return ids

    def focal_team(self, focal: str, role: str) -> int:
        teams = self._teams_with(role, focal)
        return teams[int(self.rng.integers(len(teams)))]

    def _teams_with(self, role: str, focal: str) -> list[int]:
        teams = sorted({s.team for s in self.layout.slots if s.role == role})
        if not teams:
            raise ValueError(
                f"policy {focal!r} has role {role!r}, which no seat of {list(self.layout.seats)} "
                f"has (seat roles: {list(self.layout.roles)})"
            )
        return teams

    def opponent(self, focal: str, role: str, ordinal: int) -> str:
        """The policy for one slot of `role` (the `ordinal`-th such slot of this match)."""
        raise NotImplementedError

    def choice(self, ids: Sequence[str]) -> str:
        return ids[int(self.rng.integers(len(ids)))]

    def weighted_choice(self, items: Sequence[Any], cdf: Sequence[float]) -> Any:
        """An item drawn with probability proportional to its step in the cumulative
        weights `cdf` (last entry > 0): one uniform number and a bisection, where
        `rng.choice(p=...)` costs ~20 µs, and a match ends every few env steps in
        small games."""
        i = bisect.bisect_right(cdf, self.rng.random() * cdf[-1])
        return items[min(i, len(items) - 1)]

    def state_dict(self) -> dict[str, Any]:
        return {"counter": self.counter}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.counter = int(state["counter"])


class Uniform(Strategy):
    """Uniform random policies of each slot's role; an env keeps its assignment for
    `resample_interval` episodes (Sample Factory's random policy mixing)."""

    name = "uniform"

    def __init__(
        self, layout: SeatLayout, pool: Pool, rng: np.random.Generator, resample_interval: int = 1
    ) -> None:
        super().__init__(layout, pool, rng)
        if resample_interval < 1:
            raise ValueError(f"resample_interval={resample_interval}: must be >= 1 episode")
        self.resample_interval = resample_interval
        self.held: dict[int, tuple[int, list[str]]] = {}  # env id -> (episodes left, assignment)

    def assign(self, env_id: int) -> list[str]:
        left, ids = self.held.get(env_id, (0, []))
        if left <= 0 or any(p not in self.pool.policies for p in ids):
            left, ids = self.resample_interval, super().assign(env_id)
        self.held[env_id] = (left - 1, ids)
        return list(ids)

    def opponent(self, focal: str, role: str, ordinal: int) -> str:
        return self.choice(self.pool.of_role(role))

    def state_dict(self) -> dict[str, Any]:
        held = {str(e): [left, ids] for e, (left, ids) in sorted(self.held.items())}
        return {"counter": self.counter, "held": held}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.held = {int(e): (int(left), list(ids)) for e, (left, ids) in state["held"].items()}


class SelfPlay(Strategy):
    """Latest against latest: the focal learner's role is played by copies of itself;
    other roles by their learners."""

    name = "self_play"

    def opponent(self, focal: str, role: str, ordinal: int) -> str:
        if role == self.pool.policies[focal].role:
            return focal
        return self.choice(self.pool.learners(role) or self.pool.of_role(role))


class Snapshots(Strategy):
    """Uniform over the focal learner's own snapshots (self-play until it has one)."""

    name = "snapshots"

    def opponent(self, focal: str, role: str, ordinal: int) -> str:
        if role == self.pool.policies[focal].role:
            own = self.pool.snapshots(parent=focal)
            return self.choice(own) if own else focal
        others = self.pool.snapshots(role=role)
        return self.choice(others or self.pool.learners(role) or self.pool.of_role(role))


class _Weighted(Strategy):
    """Candidates of the slot's role other than the focal learner, sampled by `weights`;
    uniform when every weight is 0."""

    def opponent(self, focal: str, role: str, ordinal: int) -> str:
        candidates = [p for p in self.pool.of_role(role) if p != focal] or [focal]
        weights = self.weights(focal, candidates)
        cdf = np.cumsum(weights).tolist()
        if not cdf[-1] > 0:
            return self.choice(candidates)
        return self.weighted_choice(candidates, cdf)

    def weights(self, focal: str, candidates: list[str]) -> np.ndarray:
        raise NotImplementedError


class PFSP(_Weighted):
    """Prioritized fictitious self-play: weight f(x), x = focal's win rate against the candidate."""

    name = "pfsp"

    def __init__(
        self, layout: SeatLayout, pool: Pool, rng: np.random.Generator, weighting: str = "squared"
    ) -> None:
        super().__init__(layout, pool, rng)
        check_weighting(weighting)
        self.weighting = weighting

    def weights(self, focal: str, candidates: list[str]) -> np.ndarray:
        return pfsp_weights(self.pool.payoff.win_rates(focal, candidates), self.weighting)


class RatingMatch(_Weighted):
    """Weight = TrueSkill match quality of focal against candidate: close games first."""

    name = "rating"

    def weights(self, focal: str, candidates: list[str]) -> np.ndarray:
        return np.array([self.pool.ratings.quality([focal], [c]) for c in candidates])


class RoundRobin(Strategy):
    """Deterministic schedule: assignment k has focal learner k mod L; opponents of a role
    step through that role's policies once per round of L assignments.

    Over every L*C assignments (C policies of the focal role) each learner is focal
    C times and meets every policy of its role in every opponent slot once, so
    learners of a role get equal numbers of seats. The focal team rotates every
    L*C assignments.
    """

    name = "round_robin"
    _round = 0  # assignments so far // number of learners

    def assign(self, env_id: int) -> list[str]:
        self._round = self.counter // len(self.pool.focal_candidates())
        return super().assign(env_id)

    def focal_team(self, focal: str, role: str) -> int:
        teams = self._teams_with(role, focal)
        return teams[self._round // len(self.pool.of_role(role)) % len(teams)]

    def opponent(self, focal: str, role: str, ordinal: int) -> str:
        candidates = self.pool.of_role(role)
        return candidates[(self._round + ordinal) % len(candidates)]


class Mix(Strategy):
    """Each assignment follows one strategy drawn with the given probabilities
    (a uniform part draws afresh every time: resample_interval applies to "uniform" alone)."""

    name = "mix"

    def __init__(
        self,
        layout: SeatLayout,
        pool: Pool,
        rng: np.random.Generator,
        parts: dict[str, Strategy],
        probabilities: Sequence[float],
    ) -> None:
        super().__init__(layout, pool, rng)
        self.parts = parts
        self.names = list(parts)
        p = np.asarray(probabilities, dtype=float)
        self.probabilities = p / p.sum()  # exact sum; check_mix allows 1e-6 off
        self._cdf = np.cumsum(self.probabilities).tolist()

    def assign(self, env_id: int) -> list[str]:
        focal = self.next_focal()
        return self.parts[self.weighted_choice(self.names, self._cdf)].fill(focal)


_STRATEGIES: dict[str, type[Strategy]] = {
    s.name: s for s in (Uniform, SelfPlay, PFSP, RatingMatch, RoundRobin, Snapshots, Mix)
}
# "roles" (league.roles.RoleMatchmaking) needs the league's options; League builds it.
STRATEGIES = (*_STRATEGIES, "roles")


# round_robin keeps its own schedule, mix cannot nest, roles is a whole league: none can
# be part of a mix.
MIXABLE = tuple(s for s in STRATEGIES if s not in ("mix", "round_robin", "roles"))


def check_mix(mix: Mapping[str, float]) -> None:
    """ValueError unless `mix` maps strategy names in MIXABLE to probabilities summing to 1."""
    valid = list(MIXABLE)
    if not mix:
        raise ConfigError(f"mix is empty: give probabilities for some of {valid}")
    unknown = [s for s in mix if s not in valid]
    if unknown:
        raise ConfigError(f"mix strategies {unknown} are unknown; valid: {valid}")
    negative = {s: p for s, p in mix.items() if not p >= 0}
    if negative:
        raise ConfigError(f"mix probabilities must be >= 0, got {negative}")
    total = float(sum(mix.values()))
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"mix probabilities {dict(mix)} sum to {total:g}; they must sum to 1")


def make_strategy(
    name: str,
    layout: SeatLayout,
    pool: Pool,
    rng: np.random.Generator,
    *,
    weighting: str = "squared",
    mix: Mapping[str, float] | None = None,
    resample_interval: int = 1,
) -> Strategy:
    """The strategy called `name` (one of STRATEGIES); `mix` is used by name 'mix'."""
    if name not in _STRATEGIES:
        raise ValueError(f"matchmaking strategy {name!r} is unknown; valid: {list(STRATEGIES)}")
    if name == "mix":
        if mix is None:
            raise ValueError("strategy 'mix' needs mix= probabilities, e.g. {'pfsp': 1.0}")
        check_mix(mix)
        parts = {
            s: make_strategy(
                s, layout, pool, rng, weighting=weighting, resample_interval=resample_interval
            )
            for s in mix
        }
        return Mix(layout, pool, rng, parts, list(mix.values()))
    if name == "pfsp":
        return PFSP(layout, pool, rng, weighting)
    if name == "uniform":
        return Uniform(layout, pool, rng, resample_interval)
    return _STRATEGIES[name](layout, pool, rng)
