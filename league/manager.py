"""The league manager: policies, ratings, payoff, snapshots and records behind one mapping.

`League` is the mapping the trainer talks to (`assign` at every episode start,
`report` at every episode end) and the owner of everything the league knows:
the policies (learners, snapshots, fixed), their ratings (online Elo,
TrueSkill, ML Elo), the decayed payoff table that matchmaking reads, the
snapshot schedule and the records of the run directory. `LeagueConfig` holds
every option, documented at its field.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import trueskill

from league._io import atomic_write_text
from league.errors import ConfigError, MappingError, unknown_keys
from league.matchmaking import (
    STRATEGIES,
    FunctionMapping,
    MatchResult,
    PolicyMapping,
    Pool,
    SeatLayout,
    Strategy,
    check_mix,
    check_weighting,
    make_strategy,
)
from league.payoff import Payoff
from league.policies import PolicyRecord, RandomPolicy
from league.ratings import Ratings, pairwise_scores, policy_stats, team_ranks
from league.records import (
    LEADERBOARD_FILE,
    PAYOFF_FILE,
    STATE_FILE,
    STATE_FORMAT,
    LeagueStateError,
    MatchLog,
    matches_path,
    read_state,
    state_error,
    write_state,
)
from league.roles import (
    LEAGUE_ROLES,
    RoleMatchmaking,
    reset_after_snapshot,
    snapshot_due,
    targets,
)

__all__ = ["Advance", "League", "LeagueConfig", "LeagueStateError", "MatchResult"]

LEADERBOARD_COLUMNS = (
    "rank",
    "policy",
    "role",
    "league_role",
    "kind",
    "algo",
    "rating",
    "err_lo",
    "err_hi",
    "trueskill_mu",
    "trueskill_sigma",
    "games",
    "wins",
    "draws",
    "losses",
    "score",
    "draw_rate",
    "opp_avg",
    "parent",
    "step",
    "mean_return",
    "return_lo",
    "return_hi",
    "ranked_by",
)


def _return_columns(stats: list[float] | None) -> dict[str, float]:
    """Mean team return and its 95% interval (normal approximation)."""
    if not stats or stats[0] == 0:
        return {"mean_return": math.nan, "return_lo": math.nan, "return_hi": math.nan}
    n, mean, m2 = stats
    half = 1.96 * math.sqrt(m2 / (n - 1) / n) if n > 1 else math.inf
    return {"mean_return": mean, "return_lo": mean - half, "return_hi": mean + half}


def _alphastar_mix() -> dict[str, float]:
    return {"pfsp": 0.5, "self_play": 0.35, "snapshots": 0.15}


@dataclass
class LeagueConfig:
    """Every option of the league layer; the defaults suit a laptop run."""

    # -- matchmaking --
    strategy: str = "mix"
    """uniform | self_play | pfsp | rating | round_robin | snapshots | mix | roles
    (docs/league.md)."""
    mix: dict[str, float] = field(default_factory=_alphastar_mix)
    """Strategy -> probability per assignment, used by strategy "mix"; must sum to 1.
    The default is AlphaStar's main-agent mix; "snapshots" = the focal learner's own snapshots."""
    pfsp_weighting: str = "squared"
    """PFSP weight of an opponent the focal learner beats with rate x: squared (1-x)^2,
    variance x(1-x), linear 1-x, linear_capped min(0.5, 1-x)."""
    resample_interval: int = 1
    """Strategy "uniform": episodes an env keeps its assignment before drawing a new one."""
    seed: int = 0
    """Seeds matchmaking's random numbers and the ML Elo bootstrap."""

    # -- ratings --
    elo_k: float = 16.0
    """Online Elo step size K (a two-team match moves each side by at most K)."""
    elo_initial: float = 1500.0
    """Online Elo of a new learner or fixed policy (snapshots start at their parent's)."""
    trueskill_mu: float = 25.0
    """TrueSkill prior mean."""
    trueskill_sigma: float = 25.0 / 3
    """TrueSkill prior standard deviation."""
    trueskill_beta: float = 25.0 / 6
    """TrueSkill performance noise: a skill gap of beta means ~76% wins."""
    trueskill_tau: float = 25.0 / 300
    """TrueSkill dynamics: sigma grows by this per match so ratings can follow learners."""
    trueskill_draw_probability: float = 0.1
    """TrueSkill's prior draw rate between equal teams; raise it for drawish games."""
    elo_anchor: str | None = "random"
    """ML Elo anchor: this policy is 0. If the league has no such policy, the fixed
    policies with algo "random" average 0; if none, all policies average 0."""
    ml_prior_sd: float = 1000.0
    """ML Elo: standard deviation (Elo) of the Gaussian prior that keeps perfect records finite."""
    ml_bootstrap: int = 100
    """ML Elo: parametric bootstrap resamples for the error bars (0 = no error bars)."""
    ml_ci: float = 0.95
    """ML Elo: coverage of the [err_lo, err_hi] interval."""

    # -- payoff --
    payoff_decay: float = 0.99
    """Each new result of a pair first multiplies the pair's counts by this (1 = never forget)."""
    min_games: float = 5.0
    """Win rates are 0.5 until a pair has this many (decayed) games."""

    # -- snapshots --
    snapshot_every: int = 50_000
    """Step cap: snapshot a learner every this many learner steps (0 = never by steps)."""
    snapshot_min_steps: int = 10_000
    """No snapshot of a learner within this many learner steps of its last one, whatever
    the win rates say, so the snapshots kept span the run."""
    snapshot_win_rate: float | None = 0.7
    """Also snapshot a learner once it beats its targets: a plain learner when its score
    (W + D/2)/G against the learners and snapshots it met since its last snapshot reaches
    this; a main agent or league exploiter when its win rate against every past player
    (snapshot or fixed policy) is above it; a main exploiter against every main agent.
    None = never by win rate."""
    snapshot_min_games: int = 50
    """Games since the last snapshot before a plain learner's win-rate rule may fire."""

    # -- league roles (league/roles.py; strategy "roles") --
    main_pfsp: float = 0.5
    """Main agents: share of matches against past players, PFSP (1-x)^2."""
    main_verification: float = 0.15
    """Main agents: share of matches against exploiters and forgotten snapshots that still
    beat them (the rest, 1 - main_pfsp - main_verification, is self-play)."""
    verification_win_rate: float = 0.3
    """Main agents verify against exploiter snapshots they win less than this against."""
    forgotten_win_rate: float = 0.7
    """... and against own snapshots they win less than this against (forgotten)."""
    self_play_win_rate: float = 0.3
    """Self-play: below this win rate against the main agent drawn, play its snapshots."""
    exploiter_win_rate: float = 0.1
    """Main exploiters: below this win rate against the main agent drawn, play its snapshots."""
    main_exploiter_reset: float = 1.0
    """Chance that a main exploiter starts over from its initial weights after a snapshot."""
    league_exploiter_reset: float = 0.25
    """Chance that a league exploiter starts over from its initial weights after a snapshot."""
    max_snapshots: int | None = 20
    """Most snapshots kept in the league (None = no cap). Past the cap, of the two snapshots
    of one role closest in TrueSkill mu, the older one is evicted."""

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy {self.strategy!r} is unknown; valid: {list(STRATEGIES)}")
        try:
            check_mix(self.mix)
            check_weighting(self.pfsp_weighting)
        except ValueError as err:
            raise ConfigError(f"league options: {err}") from None
        positive = {"elo_k": self.elo_k, "trueskill_sigma": self.trueskill_sigma}
        positive |= {"trueskill_beta": self.trueskill_beta, "ml_prior_sd": self.ml_prior_sd}
        for name, value in positive.items():
            if not value > 0:
                raise ConfigError(f"league option {name}={value}: must be > 0")
        checks = {
            "resample_interval": self.resample_interval >= 1,
            "trueskill_tau": self.trueskill_tau >= 0,
            "trueskill_draw_probability": 0 <= self.trueskill_draw_probability < 1,
            "ml_bootstrap": self.ml_bootstrap >= 0,
            "ml_ci": 0 < self.ml_ci < 1,
            "payoff_decay": 0 < self.payoff_decay <= 1,
            "min_games": self.min_games >= 0,
            "snapshot_every": self.snapshot_every >= 0,
            "snapshot_win_rate": self.snapshot_win_rate is None or 0 < self.snapshot_win_rate <= 1,
            "snapshot_min_games": self.snapshot_min_games >= 1,
            "max_snapshots": self.max_snapshots is None or self.max_snapshots >= 1,
            "snapshot_min_steps": self.snapshot_min_steps >= 0,
        }
        for name in ("verification_win_rate", "forgotten_win_rate"):
            checks[name] = 0 < getattr(self, name) < 1
        for name in ("self_play_win_rate", "exploiter_win_rate"):
            checks[name] = 0 < getattr(self, name) < 1
        shares_fit = self.main_pfsp + self.main_verification <= 1
        checks["main_pfsp"] = self.main_pfsp >= 0 and shares_fit
        checks["main_verification"] = self.main_verification >= 0 and shares_fit
        for name in ("main_exploiter_reset", "league_exploiter_reset"):
            checks[name] = 0 <= getattr(self, name) <= 1
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(
                    f"league option {name}={getattr(self, name)!r} is out of range (main_pfsp "
                    "+ main_verification may not pass 1); see its documentation in "
                    "docs/league.md"
                )

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON-ready data."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LeagueConfig:
        """Inverse of `to_dict`; unknown keys are an error that lists the valid ones."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in data if k not in names]
        if unknown:
            raise unknown_keys("league option", unknown, names)
        return cls(**data)


@dataclass(frozen=True)
class Advance:
    """What `League.advance` decided for a learner after an update."""

    snapshot: str | None = None  # id of the snapshot taken, if one was
    reset: bool = False  # the learner starts over from its initial weights (exploiters)


class League:
    """A population of policies playing each other, and the mapping that seats them.

    `seat_names` and `roles` give one entry per seat of the env; `teams` is a
    dict seat -> team name or a callable seat name -> team name (default:
    every seat is its own team). `mapping` replaces the built-in matchmaking:
    an object with `assign(env_id)` / `report(env_id, result)`, or a function
    `(env_id, seat_names) -> policy ids`; it is used unchanged, and every
    assignment it makes is checked.
    """

    def __init__(
        self,
        seat_names: Sequence[str],
        roles: Sequence[str],
        teams: Mapping[str, str] | Callable[[str], str] | None = None,
        config: LeagueConfig | None = None,
        mapping: PolicyMapping | Callable[[int, list[str]], Sequence[str]] | None = None,
    ) -> None:
        self.config = config if config is not None else LeagueConfig()
        self.layout = SeatLayout.build(seat_names, roles, teams)
        c = self.config
        self.ratings = Ratings(
            elo_k=c.elo_k,
            elo_initial=c.elo_initial,
            trueskill_env=trueskill.TrueSkill(
                mu=c.trueskill_mu,
                sigma=c.trueskill_sigma,
                beta=c.trueskill_beta,
                tau=c.trueskill_tau,
                draw_probability=c.trueskill_draw_probability,
            ),
            anchor=c.elo_anchor,
            prior_sd=c.ml_prior_sd,
            bootstrap=c.ml_bootstrap,
            ci=c.ml_ci,
            seed=c.seed,
        )
        self.payoff = Payoff(decay=c.payoff_decay, min_games=c.min_games)
        self._policies: dict[str, PolicyRecord] = {}
        self._retired: dict[str, PolicyRecord] = {}  # evicted snapshots: metadata only
        self._last_snapshot: dict[str, int] = {}  # learner -> step of its last snapshot
        self._since_snapshot: dict[str, list[float]] = {}  # learner -> [score, games]
        self._matches = MatchLog()
        self._returns: dict[str, list[float]] = {}  # policy -> [matches, mean, sum of squares]
        self._contested = False  # some match had teams with different returns
        self._rng = np.random.default_rng(c.seed)
        self._pool = Pool(self._policies, self.payoff, self.ratings)
        self._strategy = self._make_strategy()
        self._mapping: PolicyMapping = self._as_mapping(mapping)

    def _make_strategy(self) -> Strategy:
        c = self.config
        if c.strategy == "roles":
            # Learners without an AlphaStar role play PFSP under role matchmaking.
            base = make_strategy(
                "pfsp", self.layout, self._pool, self._rng, weighting=c.pfsp_weighting
            )
            return RoleMatchmaking(self.layout, self._pool, self._rng, c, base)
        return make_strategy(
            c.strategy,
            self.layout,
            self._pool,
            self._rng,
            weighting=c.pfsp_weighting,
            mix=c.mix,
            resample_interval=c.resample_interval,
        )

    def _as_mapping(self, mapping: Any) -> PolicyMapping:
        if mapping is None:
            return self._strategy
        if callable(getattr(mapping, "assign", None)) and callable(
            getattr(mapping, "report", None)
        ):
            return mapping
        if callable(mapping):
            return FunctionMapping(mapping, self.layout.seats)
        raise TypeError(
            f"mapping={mapping!r} is neither an object with assign(env_id) and "
            "report(env_id, result) nor a function (env_id, seat_names) -> policy ids"
        )

    def __repr__(self) -> str:
        kinds = [r.kind for r in self._policies.values()]
        counts = ", ".join(f"{kinds.count(k)} {k}" for k in ("learner", "snapshot", "fixed"))
        return f"<League seats={list(self.layout.seats)} {counts} mapping={self._mapping!r}>"

    # -- policies ----------------------------------------------------------

    @property
    def policies(self) -> dict[str, PolicyRecord]:
        """Policy id -> record, in the order they joined (evicted snapshots excluded)."""
        return dict(self._policies)

    def policy(self, policy_id: str) -> Any:
        """The acting object (payload) of a policy: `league.policy(id).act(obs, action_mask)`."""
        record = self._record(policy_id)
        if record.payload is None:
            raise ValueError(
                f"policy {policy_id!r} has no acting object: League.load restores metadata "
                f"only; set league.policies[{policy_id!r}].payload to it"
            )
        return record.payload

    def learners(self, role: str | None = None) -> list[str]:
        """Ids of the learners (of one role, if given)."""
        return [
            p
            for p, r in self._policies.items()
            if r.kind == "learner" and (role is None or r.role == role)
        ]

    def snapshots(self, learner_id: str | None = None) -> list[str]:
        """Ids of the snapshots kept (of one learner, if given), oldest first."""
        return [
            p
            for p, r in self._policies.items()
            if r.kind == "snapshot" and (learner_id is None or r.parent == learner_id)
        ]

    def add_learner(
        self,
        policy_id: str,
        role: str,
        algo: str = "ppo",
        payload: Any = None,
        league_role: str = "learner",
    ) -> str:
        """Add a trainable policy serving seats of `role`; `payload` is its live acting
        object; `league_role` its AlphaStar role (league.roles)."""
        if league_role not in LEAGUE_ROLES:
            raise ConfigError(
                f"learner {policy_id!r}: league role {league_role!r} is unknown; "
                f"valid: {list(LEAGUE_ROLES)}"
            )
        record = PolicyRecord(policy_id, "learner", role, algo, league_role=league_role)
        record.payload = payload
        self._add(record)
        self._last_snapshot[policy_id] = 0
        self._since_snapshot[policy_id] = [0.0, 0.0]
        return policy_id

    def add_fixed(self, policy_id: str, role: str, policy: Any, algo: str | None = None) -> str:
        """Add a policy that never trains (RandomPolicy, CallablePolicy, any object with act).

        `algo` defaults to "random" for a RandomPolicy and "scripted" otherwise.
        """
        if not callable(getattr(policy, "act", None)):
            raise TypeError(
                f"fixed policy {policy_id!r}: {policy!r} has no act(obs, action_mask) method; "
                "wrap a function in league.policies.CallablePolicy"
            )
        if algo is None:
            algo = "random" if isinstance(policy, RandomPolicy) else "scripted"
        self._add(PolicyRecord(policy_id, "fixed", role, algo, league_role=None, payload=policy))
        return policy_id

    def add_snapshot(
        self, learner_id: str, step: int, payload: Any, copy_payload: bool = True
    ) -> str:
        """Freeze learner `learner_id` at learner step `step`; returns the id "<learner>@<step>".

        The league deep-copies `payload` so later training of the learner
        cannot change the snapshot; pass `copy_payload=False` when `payload` is
        already a frozen copy nobody else will change. The snapshot starts with
        its parent's online Elo and TrueSkill rating. Past `max_snapshots`, one
        snapshot is evicted (see `LeagueConfig.max_snapshots`).
        """
        parent = self._learner(learner_id)
        snapshot_id = f"{learner_id}@{int(step)}"
        frozen = copy.deepcopy(payload) if copy_payload else payload
        self._add(
            PolicyRecord(
                snapshot_id,
                "snapshot",
                parent.role,
                parent.algo,
                parent=learner_id,
                step=int(step),
                league_role=parent.league_role,
                payload=frozen,
            ),
            like=learner_id,
        )
        parent.step = max(parent.step, int(step))
        self._last_snapshot[learner_id] = int(step)
        self._since_snapshot[learner_id] = [0.0, 0.0]
        self._evict()
        return snapshot_id

    def should_snapshot(self, learner_id: str, learner_step: int) -> bool:
        """Whether to snapshot the learner now (league.roles: never within
        `snapshot_min_steps` of its last snapshot; then at `snapshot_every` steps, or once
        it beats its targets by `snapshot_win_rate`).

        Also records `learner_step` as the learner's current step (the
        leaderboard's `step`).
        """
        record = self._learner(learner_id)
        record.step = int(learner_step)
        since = learner_step - self._last_snapshot[learner_id]
        return snapshot_due(
            record.league_role, since, lambda: self._beats_targets(record), self.config
        )

    def _beats_targets(self, record: PolicyRecord) -> bool:
        c = self.config
        if c.snapshot_win_rate is None:
            return False
        if record.league_role == "learner":
            score, games = self._since_snapshot[record.id]
            return games >= c.snapshot_min_games and score / games >= c.snapshot_win_rate
        beaten = targets(record.league_role, record.role, record.id, self._pool)
        rates = self.payoff.win_rates(record.id, beaten)
        return bool(len(beaten)) and bool(rates.min() > c.snapshot_win_rate)

    def advance(self, learner_id: str, step: int, freeze: Callable[[], Any]) -> Advance:
        """Learner `learner_id` reached learner step `step` (samples trained): apply its
        snapshot rule, calling `freeze()` for a frozen acting copy when it fires.

        The one call the trainer makes after each update; what came of it is in
        the returned `Advance`.
        """
        if not self.should_snapshot(learner_id, step):
            return Advance()
        snapshot = self.add_snapshot(learner_id, step, freeze(), copy_payload=False)
        role = self._policies[learner_id].league_role
        return Advance(snapshot=snapshot, reset=reset_after_snapshot(role, self.config, self._rng))

    def inherit(self, learner_id: str, source_id: str) -> None:
        """Learner `learner_id` took over learner `source_id`'s weights (PBT): it becomes
        its lineage parent and starts from its online Elo and TrueSkill rating."""
        record, source = self._learner(learner_id), self._learner(source_id)
        if record.role != source.role:
            raise ValueError(
                f"learner {learner_id!r} (role {record.role!r}) cannot take over "
                f"{source_id!r} (role {source.role!r})"
            )
        record.parent = source_id
        self.ratings.copy(learner_id, source_id)

    def _add(self, record: PolicyRecord, like: str | None = None) -> None:
        known = self._policies.get(record.id) or self._retired.get(record.id)
        if known is not None:
            raise ValueError(
                f"policy id {record.id!r} is already in the league (a {known.kind}); "
                "pick another id"
            )
        if record.role not in self.layout.roles:
            raise ValueError(
                f"policy {record.id!r} has role {record.role!r}, but the seats' roles are "
                f"{sorted(set(self.layout.roles))}; give one of those"
            )
        self._policies[record.id] = record
        self.ratings.add(record.id, like=like)
        self.ratings.anchor = self._anchor()

    def _anchor(self) -> str | list[str] | None:
        anchor = self.config.elo_anchor
        if anchor is None or anchor in self._policies:
            return anchor
        return [p for p, r in self._policies.items() if r.kind == "fixed" and r.algo == "random"]

    def _record(self, policy_id: str) -> PolicyRecord:
        record = self._policies.get(policy_id)
        if record is None:
            where = " (an evicted snapshot)" if policy_id in self._retired else ""
            raise KeyError(
                f"no policy {policy_id!r} in the league{where}; policies: {list(self._policies)}"
            )
        return record

    def _learner(self, learner_id: str) -> PolicyRecord:
        record = self._record(learner_id)
        if record.kind != "learner":
            raise ValueError(
                f"policy {learner_id!r} is a {record.kind}, not a learner; "
                f"learners: {self.learners()}"
            )
        return record

    def _evict(self) -> None:
        cap = self.config.max_snapshots
        while cap is not None and len(self.snapshots()) > cap:
            victim = self._eviction_victim()
            record = self._policies.pop(victim)
            self._retired[victim] = PolicyRecord.from_dict(record.to_dict())
            self.payoff.forget(victim)

    def _eviction_victim(self) -> str:
        # Two snapshots of one role with nearly the same skill are redundant as
        # opponents: of the closest pair (TrueSkill mu), drop the older, since the
        # newer is closer to how its learner plays now. The newest snapshot is
        # never the older of a pair, so it always stays.
        snapshots = self.snapshots()
        age = {p: i for i, p in enumerate(snapshots)}
        mu = {p: self.ratings.trueskill(p)[0] for p in snapshots}
        best: tuple[float, str] | None = None
        for role in dict.fromkeys(self._policies[p].role for p in snapshots):
            ranked = sorted(
                (p for p in snapshots if self._policies[p].role == role),
                key=lambda p: (mu[p], age[p]),
            )
            for a, b in itertools.pairwise(ranked):
                gap = mu[b] - mu[a]
                if best is None or gap < best[0]:
                    best = (gap, min(a, b, key=age.__getitem__))
        return snapshots[0] if best is None else best[1]

    # -- the mapping ---------------------------------------------------------

    def assign(self, env_id: int) -> list[str]:
        """Policy id per seat for the episode starting in env `env_id`."""
        return self.layout.check_assignment(env_id, self._mapping.assign(env_id), self._policies)

    def report(self, env_id: int, result: MatchResult) -> None:
        """Take the result of a finished match: ratings, payoff, snapshot counters, records."""
        layout = self.layout
        n = len(layout.seats)
        if result.env_id != env_id:
            raise MappingError(f"report for env {env_id} carries a result of env {result.env_id}")
        for name, values in (("policies", result.policies), ("returns", result.returns)):
            if len(values) != n:
                raise MappingError(
                    f"match result of env {env_id} has {len(values)} {name}, expected {n}: "
                    f"one per seat {list(layout.seats)}"
                )
        for seat, role, pid in zip(layout.seats, layout.roles, result.policies, strict=True):
            record = self._policies.get(pid) or self._retired.get(pid)
            if record is None:
                raise MappingError(
                    f"match result of env {env_id} names unknown policy {pid!r} in seat {seat!r}"
                )
            if record.role != role:
                raise MappingError(
                    f"match result of env {env_id}: policy {pid!r} (role {record.role!r}) "
                    f"sat in seat {seat!r} of role {role!r}"
                )
        if result.team_returns is None:
            team_returns = layout.team_returns(result.returns)
        elif len(result.team_returns) != len(layout.team_names):
            raise MappingError(
                f"match result of env {env_id} has {len(result.team_returns)} team returns, "
                f"expected {len(layout.team_names)}: one per team {list(layout.team_names)}"
            )
        else:
            team_returns = [float(r) for r in result.team_returns]
        if not all(math.isfinite(r) for r in team_returns):
            raise MappingError(
                f"match result of env {env_id} has non-finite returns {team_returns}"
            )

        self._count_returns(result.policies, team_returns)
        ranks = team_ranks(team_returns)
        teams = layout.team_policies(result.policies)
        self.ratings.update(teams, ranks)
        for i, j, score in pairwise_scores(ranks):
            for p in teams[i]:
                for q in teams[j]:
                    if p != q and p in self._policies and q in self._policies:
                        self.payoff.update(p, q, score)
            self._count_since_snapshot(teams[i], teams[j], score)
            self._count_since_snapshot(teams[j], teams[i], 1.0 - score)
        league_roles = [
            (self._policies.get(p) or self._retired[p]).league_role for p in result.policies
        ]
        self._matches.add(
            result.step, env_id, layout.seats, result.policies, team_returns, ranks, league_roles
        )
        self._mapping.report(env_id, result)

    def _count_returns(self, policies: Sequence[str], team_returns: list[float]) -> None:
        """Each policy's team return per match (Welford's running mean and variance): the
        leaderboard's ranking when matches are not contests."""
        if len(set(team_returns)) > 1:
            self._contested = True
        seen = set()
        for team, pid in zip(self.layout.team_of, policies, strict=True):
            if (team, pid) in seen:
                continue
            seen.add((team, pid))
            stats = self._returns.setdefault(pid, [0.0, 0.0, 0.0])
            stats[0] += 1
            delta = team_returns[team] - stats[1]
            stats[1] += delta / stats[0]
            stats[2] += delta * (team_returns[team] - stats[1])

    @property
    def ranked_by(self) -> str:
        """ "rating" when matches are contests; "return" when they are not: every seat on
        one team (cooperative), one seat (single-agent), or every match so far a tie."""
        if len(self.layout.team_names) == 1 or (self._returns and not self._contested):
            return "return"
        return "rating"

    def _count_since_snapshot(self, team: list[str], opponents: list[str], score: float) -> None:
        # A plain learner's win-rate rule counts games against what matters: learners
        # and snapshots, not fixed (usually weak) opponents.
        if not any(p in self._policies and self._policies[p].kind != "fixed" for p in opponents):
            return
        for p in team:
            counts = self._since_snapshot.get(p)
            if counts is not None and p not in opponents:
                counts[0] += score
                counts[1] += 1.0

    # -- tables ----------------------------------------------------------------

    def leaderboard(self) -> pd.DataFrame:
        """One row per policy, best ML Elo first; columns LEADERBOARD_COLUMNS (docs/league.md).

        Games are pairwise team games over the whole run (a match of n teams
        is n-1 games for each policy in it); games against a copy of oneself
        do not count.
        """
        ids = list(self._policies)
        ml = self.ratings.ml_elo().as_dict()
        stats = policy_stats(self.ratings.history, {p: r for p, (r, _, _) in ml.items()})
        nan = (math.nan, math.nan, math.nan)
        rows = []
        for pid in ids:
            record = self._policies[pid]
            rating, lo, hi = ml.get(pid, nan)
            mu, sigma = self.ratings.trueskill(pid)
            s = stats.get(pid)
            games = s.games if s else 0
            rows.append(
                {
                    "policy": pid,
                    "role": record.role,
                    "league_role": record.league_role,
                    "kind": record.kind,
                    "algo": record.algo,
                    "rating": rating,
                    "err_lo": lo,
                    "err_hi": hi,
                    "trueskill_mu": mu,
                    "trueskill_sigma": sigma,
                    "games": games,
                    "wins": s.wins if s else 0,
                    "draws": s.draws if s else 0,
                    "losses": s.losses if s else 0,
                    "score": (s.wins + 0.5 * s.draws) / games if games else math.nan,
                    "draw_rate": s.draws / games if games else math.nan,
                    "opp_avg": s.opp_avg if s else math.nan,
                    "parent": record.parent,
                    "step": record.step,
                    **_return_columns(self._returns.get(pid)),
                }
            )
        board = pd.DataFrame(rows, columns=[c for c in LEADERBOARD_COLUMNS if c != "rank"])
        ranked_by = self.ranked_by
        key = "rating" if ranked_by == "rating" else "mean_return"
        board = board.sort_values(key, ascending=False, na_position="last", kind="stable")
        # One ranking per seat role: an adversary and a prey are not rated against
        # each other's kind, so they are not ranked on one list either.
        order = {role: k for k, role in enumerate(dict.fromkeys(self.layout.roles))}
        board = board.sort_values("role", key=lambda r: r.map(order), kind="stable")
        board.insert(0, "rank", board.groupby("role", sort=False).cumcount().to_numpy() + 1)
        board["ranked_by"] = ranked_by
        return board.reset_index(drop=True).astype(
            {"games": int, "wins": int, "draws": int, "losses": int, "step": int}
        )

    def payoff_matrix(self) -> pd.DataFrame:
        """Decayed win rate of each policy (row) against each (column), 0.5 below min_games."""
        return self.payoff.matrix(list(self._policies))

    # -- files -------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The full state as JSON-ready data (payloads excluded)."""
        return {
            "format": STATE_FORMAT,
            "config": self.config.to_dict(),
            "layout": {
                "seats": list(self.layout.seats),
                "roles": list(self.layout.roles),
                "teams": list(self.layout.teams),
            },
            "policies": [r.to_dict() for r in self._policies.values()],
            "retired": [r.to_dict() for r in self._retired.values()],
            "ratings": self.ratings.state_dict(),
            "payoff": self.payoff.state_dict(),
            "snapshots": {
                "last_step": self._last_snapshot,
                "since": self._since_snapshot,
            },
            "matchmaking": {
                "rng": self._rng.bit_generator.state,
                "strategy": self._strategy.state_dict(),
            },
            "matches_written": self._matches.written + len(self._matches.pending),
            "returns": {"by_policy": self._returns, "contested": self._contested},
        }

    def save(self, run_dir: str | os.PathLike[str]) -> None:
        """Write matches.csv.gz (append), leaderboard.csv, payoff.csv and league.json to
        run_dir."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        self._matches.flush(run_dir)
        atomic_write_text(run_dir / LEADERBOARD_FILE, self.leaderboard().to_csv(index=False))
        atomic_write_text(run_dir / PAYOFF_FILE, self.payoff_matrix().to_csv())
        write_state(run_dir, self.state_dict())

    @classmethod
    def load(
        cls,
        run_dir: str | os.PathLike[str],
        mapping: PolicyMapping | Callable[[int, list[str]], Sequence[str]] | None = None,
    ) -> League:
        """The league saved in run_dir, without payloads (set `policies[id].payload` to act).

        `mapping` is a custom mapping to use again (custom mappings are not saved).
        """
        run_dir = Path(run_dir)
        state = read_state(run_dir)
        path = run_dir / STATE_FILE
        try:
            layout = state["layout"]
            league = cls(
                layout["seats"],
                layout["roles"],
                teams=dict(zip(layout["seats"], layout["teams"], strict=True)),
                config=LeagueConfig.from_dict(state["config"]),
                mapping=mapping,
            )
            for data in state["policies"]:
                record = PolicyRecord.from_dict(data)
                league._policies[record.id] = record
            for data in state["retired"]:
                record = PolicyRecord.from_dict(data)
                league._retired[record.id] = record
            league.ratings.load_state_dict(state["ratings"])
            league.ratings.anchor = league._anchor()
            league.payoff.load_state_dict(state["payoff"])
            league._last_snapshot = {p: int(s) for p, s in state["snapshots"]["last_step"].items()}
            league._since_snapshot = {
                p: [float(score), float(games)]
                for p, (score, games) in state["snapshots"]["since"].items()
            }
            league._rng.bit_generator.state = state["matchmaking"]["rng"]
            league._strategy.load_state_dict(state["matchmaking"]["strategy"])
            league._matches = MatchLog(int(state["matches_written"]), matches_path(run_dir))
            returns = state.get("returns", {"by_policy": {}, "contested": True})
            league._returns = {p: [float(x) for x in v] for p, v in returns["by_policy"].items()}
            league._contested = bool(returns["contested"])
            missing = [p for p in league._policies if p not in league.ratings]
            if missing:
                raise ValueError(f"policies {missing} have no ratings")
        except (KeyError, TypeError, ValueError) as err:
            raise state_error(path, f"its content is inconsistent ({err!r})") from err
        return league
