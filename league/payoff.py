"""The payoff table: decayed wins, draws and losses of every ordered pair of policies.

Matchmaking reads it (PFSP weights a candidate by the focal learner's win rate
against it); it forgets old results at a rate set by `decay`, so win rates
follow learners that keep improving. The undecayed, whole-run record lives in
`league.ratings.MatchHistory`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class PairRecord:
    """Decayed results of one policy against another."""

    wins: float = 0.0
    draws: float = 0.0
    losses: float = 0.0

    @property
    def games(self) -> float:
        return self.wins + self.draws + self.losses


class Payoff:
    """Decayed results per ordered pair `(policy, opponent)`.

    Each new result of a pair first multiplies that pair's counts by `decay`,
    then adds the result. `win_rate(a, b)` is `(W + D/2) / G`, or 0.5 while the
    pair has fewer than `min_games` (decayed) games.
    """

    def __init__(self, decay: float = 0.99, min_games: float = 5.0) -> None:
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"payoff decay={decay}: must be in (0, 1] (1 = never forget)")
        if min_games < 0:
            raise ValueError(f"payoff min_games={min_games}: must be >= 0")
        self.decay = decay
        self.min_games = min_games
        self._records: dict[tuple[str, str], PairRecord] = {}

    def update(self, policy: str, opponent: str, score: float) -> None:
        """Add one game of `policy` against `opponent`; `score` is 1 win, 0.5 draw, 0 loss."""
        if score not in (0.0, 0.5, 1.0):
            raise ValueError(f"score={score}: must be 1 (win), 0.5 (draw) or 0 (loss)")
        self._add(policy, opponent, score)
        self._add(opponent, policy, 1.0 - score)

    def _add(self, policy: str, opponent: str, score: float) -> None:
        old = self._records.get((policy, opponent), PairRecord())
        d = self.decay
        self._records[(policy, opponent)] = PairRecord(
            wins=old.wins * d + (score == 1.0),
            draws=old.draws * d + (score == 0.5),
            losses=old.losses * d + (score == 0.0),
        )

    def record(self, policy: str, opponent: str) -> PairRecord:
        """The decayed record of `policy` against `opponent` (zeros if they never met)."""
        return self._records.get((policy, opponent), PairRecord())

    def win_rate(self, policy: str, opponent: str) -> float:
        """`(W + D/2) / G` of `policy` against `opponent`; 0.5 below `min_games`."""
        r = self._records.get((policy, opponent))
        if r is None or r.games < max(self.min_games, 1e-12):
            return 0.5
        return (r.wins + 0.5 * r.draws) / r.games

    def win_rates(self, policy: str, opponents: Sequence[str]) -> np.ndarray:
        """`win_rate(policy, o)` for every `o` in `opponents`."""
        return np.array([self.win_rate(policy, o) for o in opponents])

    def matrix(self, policies: Sequence[str], values: str = "win_rate") -> pd.DataFrame:
        """Square table, row = policy, column = opponent: win rates, or decayed `games`."""
        if values not in ("win_rate", "games"):
            raise ValueError(f"values={values!r}: expected 'win_rate' or 'games'")
        if values == "games":
            table = [[self.record(a, b).games for b in policies] for a in policies]
        else:
            table = [[self.win_rate(a, b) for b in policies] for a in policies]
        frame = pd.DataFrame(table, index=list(policies), columns=list(policies), dtype=float)
        frame.index.name = "policy"
        frame.columns.name = "opponent"
        return frame

    def forget(self, policy: str) -> None:
        """Drop every pair that involves `policy` (an evicted snapshot)."""
        self._records = {k: r for k, r in self._records.items() if policy not in k}

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready rows `[policy, opponent, wins, draws, losses]`, sorted."""
        return {
            "records": [
                [a, b, r.wins, r.draws, r.losses] for (a, b), r in sorted(self._records.items())
            ]
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        self._records = {
            (a, b): PairRecord(float(w), float(d), float(lo)) for a, b, w, d, lo in state["records"]
        }
