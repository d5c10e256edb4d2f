"""League roles (AlphaStar, Vinyals et al. 2019): whom a learner plays, when it is frozen,
and when it starts over.

A learner's *league role* (not its seat role, the seats it plays) is one of:

- `main`: 50% of its matches PFSP (1-x)^2 over past players; 15% verification
  (exploiter snapshots it wins less than 30% against, then its own forgotten
  snapshots, under 70%); 35% self-play: a main agent (itself included) if
  x > 0.3, else that agent's snapshots with PFSP x(1-x). Frozen once it beats
  every past player (x > 0.7) or at its step cap; goes on.
- `main_exploiter`: a main agent if x > 0.1, else that agent's snapshots with
  PFSP x(1-x). Frozen once it beats every main agent (x > 0.7) or at its step
  cap; then starts over from its initial weights.
- `league_exploiter`: PFSP min(1/2, 1-x) over past players. Frozen once it
  beats every past player or at its step cap; starts over with probability 0.25.
- `learner`: the league's PFSP; frozen at its step cap, or once its score
  against the learners and snapshots it met since its last snapshot reaches
  `snapshot_win_rate`.

x is the learner's decayed win rate against a candidate (league.payoff);
"past players" are the snapshots and fixed policies of the seat role. Every
number is a `LeagueConfig` option; no rule fires within `snapshot_min_steps`
learner steps of the learner's last snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from league.matchmaking import Pool, SeatLayout, Strategy, pfsp_weights

if TYPE_CHECKING:
    from league.manager import LeagueConfig

LEAGUE_ROLES = ("learner", "main", "main_exploiter", "league_exploiter")
ALPHASTAR_ROLES = ("main", "main_exploiter", "league_exploiter")


class RoleMatchmaking(Strategy):
    """Matchmaking by league role: each assignment takes one branch for its focal learner,
    and every opponent slot is filled from that branch's candidates."""

    name = "roles"

    def __init__(
        self,
        layout: SeatLayout,
        pool: Pool,
        rng: np.random.Generator,
        config: LeagueConfig,
        base: Strategy,
    ) -> None:
        super().__init__(layout, pool, rng)
        self.config = config
        self.base = base  # for learners without an AlphaStar role
        self._pick: Callable[[str, str, int], str] = base.opponent

    def assign(self, env_id: int) -> list[str]:
        focal = self.next_focal()
        role = self.pool.policies[focal].league_role
        self._pick = self.base.opponent if role not in ALPHASTAR_ROLES else self._branch(focal)
        return self.fill(focal)

    def opponent(self, focal: str, role: str, ordinal: int) -> str:
        return self._pick(focal, role, ordinal)

    def branch_name(self, focal: str) -> str:
        """Which branch `assign` would take for `focal` now (draws random numbers)."""
        return self._branch(focal).__name__.strip("_")

    def _branch(self, focal: str) -> Callable[[str, str, int], str]:
        role = self.pool.policies[focal].league_role
        c = self.config
        if role == "league_exploiter":
            return self._league_exploiter
        if role == "main_exploiter":
            return self._exploit_mains
        coin = self.rng.random()
        if coin < c.main_pfsp:
            return self._pfsp_past
        if coin < c.main_pfsp + c.main_verification:
            return self._verification
        return self._self_play

    # -- branches: each picks the opponent for one slot of seat role `role` ----------

    def _pfsp_past(self, focal: str, role: str, ordinal: int) -> str:
        past = self.past_players(role, focal)
        if not past:
            return self._self_play(focal, role, ordinal)
        return self._pfsp(focal, past, "squared")

    def _verification(self, focal: str, role: str, ordinal: int) -> str:
        c = self.config
        exploiters = [
            p
            for p in self.pool.snapshots(role=role)
            if self.pool.policies[p].league_role == "main_exploiter"
        ]
        rates = self.pool.payoff.win_rates(focal, exploiters)
        if len(exploiters) and rates.min() < c.verification_win_rate:
            return self._pfsp(focal, exploiters, "squared")
        own = self.pool.snapshots(role=role, parent=focal)
        forgotten = _drop_monotonic_suffix(own, self.pool.payoff.win_rates(focal, own))
        rates = self.pool.payoff.win_rates(focal, forgotten)
        if len(forgotten) and rates.min() < c.forgotten_win_rate:
            return self._pfsp(focal, forgotten, "squared")
        return self._self_play(focal, role, ordinal)

    def _self_play(self, focal: str, role: str, ordinal: int) -> str:
        opponent = self._main(role, focal)
        if (
            opponent == focal
            or self.pool.payoff.win_rate(focal, opponent) > self.config.self_play_win_rate
        ):
            return opponent
        return self._curriculum(focal, opponent, role)

    def _exploit_mains(self, focal: str, role: str, ordinal: int) -> str:
        opponent = self._main(role, focal)
        if self.pool.payoff.win_rate(focal, opponent) > self.config.exploiter_win_rate:
            return opponent
        return self._curriculum(focal, opponent, role)

    def _league_exploiter(self, focal: str, role: str, ordinal: int) -> str:
        past = self.past_players(role, focal)
        if not past:
            return self._main(role, focal)
        return self._pfsp(focal, past, "linear_capped")

    # -- pieces ----------------------------------------------------------------------

    def past_players(self, role: str, focal: str) -> list[str]:
        """Snapshots and fixed policies of seat role `role` (never the focal learner)."""
        return [
            p
            for p, r in self.pool.policies.items()
            if r.role == role and r.kind in ("snapshot", "fixed") and p != focal
        ]

    def mains(self, role: str) -> list[str]:
        return [p for p in self.pool.learners(role) if self.pool.policies[p].league_role == "main"]

    def _main(self, role: str, focal: str) -> str:
        mains = self.mains(role)
        if not mains:  # a seat role without main agents: its learners stand in
            mains = self.pool.learners(role) or self.pool.of_role(role)
        return self.choice(mains)

    def _curriculum(self, focal: str, opponent: str, role: str) -> str:
        """A main agent too strong for now: its snapshots, those near the focal's level first."""
        history = self.pool.snapshots(role=role, parent=opponent)
        return self._pfsp(focal, history, "variance") if history else opponent

    def _pfsp(self, focal: str, candidates: Sequence[str], weighting: str) -> str:
        weights = pfsp_weights(self.pool.payoff.win_rates(focal, candidates), weighting)
        cdf = np.cumsum(weights).tolist()
        if not cdf[-1] > 0:
            return self.choice(candidates)
        return self.weighted_choice(candidates, cdf)


def _drop_monotonic_suffix(ids: list[str], win_rates: np.ndarray) -> list[str]:
    """AlphaStar's forgetting check (`remove_monotonic_suffix`): the newest snapshots
    whose win rates only fall towards the present are skipped (the learner is still
    catching up with them, it has not forgotten them). Everything up to the last rise
    is kept; a run that never rises keeps nothing."""
    for i in range(len(ids) - 1, 0, -1):
        if win_rates[i - 1] < win_rates[i]:
            return list(ids[: i + 1])
    return []


def snapshot_due(
    league_role: str,
    steps_since: int,
    beaten: Callable[[], bool],
    config: LeagueConfig,
) -> bool:
    """Whether a learner is frozen now: never within `snapshot_min_steps` of its last
    snapshot; then at its step cap (`snapshot_every`), or once it beats its targets."""
    if steps_since < max(config.snapshot_min_steps, 1):
        return False
    if config.snapshot_every and steps_since >= config.snapshot_every:
        return True
    return beaten()


def reset_after_snapshot(league_role: str, config: LeagueConfig, rng: np.random.Generator) -> bool:
    """Exploiters start over after a snapshot: main exploiters with probability
    `main_exploiter_reset` (1), league exploiters with `league_exploiter_reset` (0.25)."""
    chance = {
        "main_exploiter": config.main_exploiter_reset,
        "league_exploiter": config.league_exploiter_reset,
    }.get(league_role, 0.0)
    return chance > 0 and rng.random() < chance


def targets(league_role: str, role: str, policy_id: str, pool: Pool) -> list[str]:
    """The policies a learner with an AlphaStar role must beat (x > snapshot_win_rate
    against each) to be frozen before its step cap."""
    if league_role == "main_exploiter":
        return [p for p in pool.learners(role) if pool.policies[p].league_role == "main"]
    return [
        p
        for p, r in pool.policies.items()
        if r.role == role and r.kind in ("snapshot", "fixed") and p != policy_id
    ]
