"""Ratings of policies from match outcomes: online Elo, TrueSkill and maximum-likelihood Elo.

A match outcome is a list of teams (the distinct policies of each team) and
their ranks (0 = best; equal ranks = draw). Three rating systems read it:

- online Elo: one update per match with step size K; a team's rating is the mean
  of its policies'; a match of n teams is n(n-1)/2 pairwise games, each scaled by
  K/(n-1) so a two-team match is the textbook update;
- TrueSkill, through the `trueskill` package (teams, draws, any number of teams);
- maximum-likelihood Elo (Bradley-Terry) over the whole history, with bootstrap
  error bars, anchored so the policy "random" is 0 (see `fit_ml_elo`).

The pure functions (`team_ranks`, `pairwise_scores`, `expected_score`,
`elo_deltas`, `fit_ml_elo`) hold the math; `Ratings` keeps the state of all
three systems for a league and saves and restores it exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import trueskill

# Elo points per natural-log unit of odds: P(a beats b) = 1 / (1 + 10^((r_b - r_a) / 400)).
ELO_SCALE = 400.0 / math.log(10.0)

Team = tuple[str, ...]


def team_ranks(team_returns: Sequence[float]) -> list[int]:
    """Competition ranks: 0 for the highest return; equal returns share a rank."""
    return [sum(other > r for other in team_returns) for r in team_returns]


def pairwise_scores(ranks: Sequence[int]) -> list[tuple[int, int, float]]:
    """Every pair of teams `(i, j)`, i < j, with team i's score: 1 win, 0.5 draw, 0 loss."""
    n = len(ranks)
    return [
        (i, j, 1.0 if ranks[i] < ranks[j] else 0.5 if ranks[i] == ranks[j] else 0.0)
        for i in range(n)
        for j in range(i + 1, n)
    ]


def expected_score(rating_a: float, rating_b: float) -> float:
    """Elo's expected score of a against b."""
    return 1.0 / (1.0 + 10.0 ** ((rating_b - rating_a) / 400.0))


def elo_deltas(team_ratings: Sequence[float], ranks: Sequence[int], k: float) -> list[float]:
    """Online Elo change of each team's rating after one match (pairwise, K/(n-1) per pair)."""
    n = len(team_ratings)
    deltas = [0.0] * n
    if n < 2:
        return deltas
    step = k / (n - 1)
    for i, j, score in pairwise_scores(ranks):
        change = step * (score - expected_score(team_ratings[i], team_ratings[j]))
        deltas[i] += change
        deltas[j] -= change
    return deltas


class MatchHistory:
    """Every pairwise team outcome of a run, counted per pairing of teams.

    The counts (wins, draws, losses of team a against team b) are the
    sufficient statistic of the Bradley-Terry likelihood, so the ML fit and its
    bootstrap read them instead of the list of matches, and the history stays
    small however long the run. Pairings are stored with the teams in sorted
    order; a team is its sorted tuple of distinct policy ids.
    """

    def __init__(self) -> None:
        self._counts: dict[tuple[Team, Team], list[int]] = {}

    def __len__(self) -> int:
        return len(self._counts)

    @property
    def games(self) -> int:
        """Number of pairwise games recorded."""
        return sum(sum(c) for c in self._counts.values())

    def add(self, team_a: Sequence[str], team_b: Sequence[str], score: float) -> None:
        """Record one game: `score` is team a's (1 win, 0.5 draw, 0 loss)."""
        if score not in (0.0, 0.5, 1.0):
            raise ValueError(f"score={score}: must be 1 (win), 0.5 (draw) or 0 (loss)")
        a, b = tuple(sorted(set(team_a))), tuple(sorted(set(team_b)))
        if a == b:
            return  # a policy set against itself: no information about strength
        if a > b:
            a, b, score = b, a, 1.0 - score
        counts = self._counts.setdefault((a, b), [0, 0, 0])
        counts[0 if score == 1.0 else 1 if score == 0.5 else 2] += 1

    def items(self) -> list[tuple[Team, Team, int, int, int]]:
        """`(team_a, team_b, wins, draws, losses)` per pairing, from team a's side.

        Sorted, so that everything computed from a history depends on its
        content only, not on the order games arrived in (or a reload).
        """
        return [(a, b, *counts) for (a, b), counts in sorted(self._counts.items())]

    def policies(self) -> list[str]:
        """Sorted ids of every policy with at least one game."""
        return sorted({p for a, b in self._counts for p in a + b})

    def to_list(self) -> list[list[Any]]:
        """JSON-ready rows."""
        return [[list(a), list(b), w, d, lo] for a, b, w, d, lo in self.items()]

    @classmethod
    def from_list(cls, rows: list[list[Any]]) -> MatchHistory:
        """Inverse of `to_list`."""
        history = cls()
        for a, b, wins, draws, losses in rows:
            history._counts[(tuple(a), tuple(b))] = [int(wins), int(draws), int(losses)]
        return history


@dataclass(frozen=True)
class PolicyStats:
    """One policy's record over the whole history (pairwise team games)."""

    wins: int
    draws: int
    losses: int
    # Mean rating of the opposing teams faced, weighted by games; NaN without games.
    opp_avg: float

    @property
    def games(self) -> int:
        return self.wins + self.draws + self.losses


def policy_stats(history: MatchHistory, ratings: Mapping[str, float]) -> dict[str, PolicyStats]:
    """Per policy: wins, draws, losses and mean opponent rating.

    A game counts for a policy on one side only; a team's rating is the mean of
    its policies' `ratings`.
    """
    totals: dict[str, list[float]] = {}

    def count(policy: str, us: Team, them: Team, won: int, drew: int, lost: int) -> None:
        if policy in them:
            return
        t = totals.setdefault(policy, [0, 0, 0, 0.0])
        t[0] += won
        t[1] += drew
        t[2] += lost
        t[3] += (won + drew + lost) * float(np.mean([ratings[p] for p in them]))

    for a, b, wins, draws, losses in history.items():
        for p in a:
            count(p, a, b, wins, draws, losses)
        for p in b:
            count(p, b, a, losses, draws, wins)
    return {
        p: PolicyStats(int(w), int(d), int(lo), s / (w + d + lo) if w + d + lo else math.nan)
        for p, (w, d, lo, s) in totals.items()
    }


@dataclass(frozen=True)
class MLElo:
    """Maximum-likelihood Elo of the policies in a history, with interval bounds."""

    policies: tuple[str, ...]
    rating: np.ndarray
    err_lo: np.ndarray
    err_hi: np.ndarray
    # The policies whose mean is pinned at 0; empty when the mean of all is 0.
    anchor: tuple[str, ...]

    def as_dict(self) -> dict[str, tuple[float, float, float]]:
        """policy id -> (rating, err_lo, err_hi)."""
        rows = zip(self.policies, self.rating, self.err_lo, self.err_hi, strict=True)
        return {p: (float(r), float(lo), float(hi)) for p, r, lo, hi in rows}


def fit_ml_elo(
    history: MatchHistory,
    *,
    anchor: str | Sequence[str] | None = "random",
    prior_sd: float = 1000.0,
    bootstrap: int = 100,
    ci: float = 0.95,
    seed: int = 0,
) -> MLElo:
    """Bradley-Terry maximum-likelihood Elo over a whole history, with bootstrap intervals.

    Model: P(team a beats team b) = sigmoid(mean(theta_a) - mean(theta_b)), draws
    counting half a win for each side. A zero-mean Gaussian prior with standard
    deviation `prior_sd` Elo on every rating keeps perfect records finite.
    The maximum is found by Newton's method (the log-posterior is strictly
    concave), with all bootstrap resamples solved at once as one batch.

    Error bars: a parametric bootstrap. Each of `bootstrap` resamples replays
    every pairing's games from the fitted model (win probability sigmoid of the
    rating difference, draws at the pairing's observed rate) and refits; the
    bounds are the `(1 - ci)/2` and `(1 + ci)/2` quantiles of the
    refitted ratings. Ratings, and every resample, are shifted so that `anchor`
    is 0 (its interval is then [0, 0]); several anchors: their mean is 0; when no
    anchor has a game, the mean of all is 0. With `bootstrap=0` the bounds are NaN.
    """
    if prior_sd <= 0:
        raise ValueError(f"prior_sd={prior_sd}: the prior's standard deviation must be > 0")
    if not 0 < ci < 1:
        raise ValueError(f"ci={ci}: the interval's coverage must be in (0, 1)")
    items = history.items()
    ids = tuple(history.policies())
    if not items:
        empty = np.zeros(0)
        return MLElo((), empty, empty, empty, ())
    design = _Design(ids, items)
    counts = np.array([row[2:] for row in items], dtype=float)  # (R, 3): wins, draws, losses
    precision = (ELO_SCALE / prior_sd) ** 2
    scores = counts[None, :, 0] + 0.5 * counts[None, :, 1]
    theta = design.newton(scores, counts.sum(axis=1)[None, :], precision, np.zeros(len(ids)))[0]

    anchors = tuple(a for a in ([anchor] if isinstance(anchor, str) else anchor or ()) if a in ids)
    anchor_index = [ids.index(a) for a in anchors]

    def anchored(t: np.ndarray) -> np.ndarray:
        reference = t[..., anchor_index] if anchors else t
        return (t - reference.mean(axis=-1, keepdims=True)) * ELO_SCALE

    rating = anchored(theta)
    if bootstrap <= 0:
        return MLElo(ids, rating, np.full(len(ids), np.nan), np.full(len(ids), np.nan), anchors)
    rng = np.random.default_rng(seed)
    games = counts.sum(axis=1)
    p = 0.5 * (1.0 + np.tanh(0.5 * design.times(theta[None])[0]))
    # Draws keep each pairing's observed rate, capped so the expected score can still be p.
    draw_rate = np.minimum(counts[:, 1] / games, 2.0 * np.minimum(p, 1.0 - p))
    win_rate = np.clip((p - draw_rate / 2) / np.maximum(1.0 - draw_rate, 1e-12), 0.0, 1.0)
    draws = rng.binomial(games.astype(np.int64), draw_rate, size=(bootstrap, len(games)))
    wins = rng.binomial(games.astype(np.int64) - draws, win_rate)
    # Resamples start from the fit: they end near it, so Newton needs few steps.
    boot_theta = design.newton(
        wins + 0.5 * draws, np.broadcast_to(games, wins.shape), precision, theta
    )
    lo, hi = np.quantile(anchored(boot_theta), [(1 - ci) / 2, (1 + ci) / 2], axis=0)
    return MLElo(ids, rating, lo, hi, anchors)


class _Design:
    """The Bradley-Terry design matrix X of a history, sparse: row r holds +1/|a| for
    the policies of team a and -1/|b| for those of team b.

    Newton steps solve (X' W X + precision I) step = gradient by Jacobi-preconditioned
    conjugate gradients on the whole bootstrap batch at once, so a fit costs
    O(batch x nonzeros) per iteration instead of O(batch x policies^3): the
    history keeps every snapshot ever rated, and there may be hundreds.
    """

    # Largest Newton step per iteration, in natural units (~350 Elo): keeps the
    # first steps on a near-flat likelihood (perfect records) from overshooting.
    MAX_STEP = 2.0

    def __init__(self, ids: tuple[str, ...], items: list[tuple[Team, Team, int, int, int]]) -> None:
        index = {p: i for i, p in enumerate(ids)}
        rows, cols, values = [], [], []
        for r, (a, b, *_) in enumerate(items):
            x: dict[int, float] = {}
            for p in a:
                x[index[p]] = x.get(index[p], 0.0) + 1.0 / len(a)
            for p in b:
                x[index[p]] = x.get(index[p], 0.0) - 1.0 / len(b)
            for c, v in x.items():
                if v != 0.0:
                    rows.append(r)
                    cols.append(c)
                    values.append(v)
        self.n_rows, self.n_cols = len(items), len(ids)
        self.rows, self.cols = np.array(rows), np.array(cols)
        self.values = np.array(values)
        self._offsets: dict[tuple[bool, int], np.ndarray] = {}

    def _scatter(self, to_rows: bool, weights: np.ndarray) -> np.ndarray:
        # Sum the entries' weights into rows (or columns), per batch member at once:
        # batch member b's entries land in [b*size, (b+1)*size) of one bincount.
        batch = weights.shape[0]
        size = self.n_rows if to_rows else self.n_cols
        key = (to_rows, batch)
        if key not in self._offsets:
            index = self.rows if to_rows else self.cols
            self._offsets[key] = (np.arange(batch)[:, None] * size + index[None, :]).reshape(-1)
        flat = self._offsets[key]
        return np.bincount(flat, weights.reshape(-1), minlength=batch * size).reshape(batch, size)

    def times(self, v: np.ndarray) -> np.ndarray:
        """X v for a batch v of shape (B, P)."""
        return self._scatter(True, v[:, self.cols] * self.values)

    def transpose_times(self, u: np.ndarray) -> np.ndarray:
        """X' u for a batch u of shape (B, R)."""
        return self._scatter(False, u[:, self.rows] * self.values)

    def newton(
        self, scores: np.ndarray, games: np.ndarray, precision: float, start: np.ndarray
    ) -> np.ndarray:
        """Posterior modes for a batch of (scores, games) arrays of shape (B, R)."""
        theta = np.array(np.broadcast_to(start, (scores.shape[0], self.n_cols)))
        for _ in range(100):
            p = 0.5 * (1.0 + np.tanh(0.5 * self.times(theta)))
            gradient = self.transpose_times(scores - games * p) - precision * theta
            step = self._solve(games * p * (1.0 - p), gradient, precision)
            largest = np.abs(step).max(axis=1, keepdims=True)
            theta += step * np.minimum(1.0, self.MAX_STEP / np.maximum(largest, 1e-300))
            if largest.max() < 1e-9:
                break
        return theta

    def _solve(self, w: np.ndarray, rhs: np.ndarray, precision: float) -> np.ndarray:
        """(X' diag(w) X + precision I) x = rhs by preconditioned conjugate gradients."""

        def hessian_times(v: np.ndarray) -> np.ndarray:
            return self.transpose_times(w * self.times(v)) + precision * v

        inverse_diagonal = 1.0 / (
            self._scatter(False, w[:, self.rows] * self.values**2) + precision
        )
        x = np.zeros_like(rhs)
        residual = rhs.copy()
        z = inverse_diagonal * residual
        direction = z.copy()
        rz = (residual * z).sum(axis=1, keepdims=True)
        target = 1e-12 * (rhs * rhs).sum(axis=1, keepdims=True)
        for _ in range(10 * self.n_cols + 10):
            h_direction = hessian_times(direction)
            curvature = (direction * h_direction).sum(axis=1, keepdims=True)
            alpha = np.divide(rz, curvature, out=np.zeros_like(rz), where=curvature > 0)
            x += alpha * direction
            residual -= alpha * h_direction
            if ((residual * residual).sum(axis=1, keepdims=True) <= target).all():
                break
            z = inverse_diagonal * residual
            rz_next = (residual * z).sum(axis=1, keepdims=True)
            beta = np.divide(rz_next, rz, out=np.zeros_like(rz), where=rz > 0)
            direction = z + beta * direction
            rz = rz_next
        return x


class Ratings:
    """Online Elo, TrueSkill and ML Elo of every policy, fed by the same match outcomes.

    `update(teams, ranks)` moves online Elo and TrueSkill and adds the match to
    the history; `ml_elo()` fits the history on demand and caches the fit until
    the next update. Parameters are documented on `league.manager.LeagueConfig`.
    """

    def __init__(
        self,
        *,
        elo_k: float = 16.0,
        elo_initial: float = 1500.0,
        trueskill_env: trueskill.TrueSkill | None = None,
        anchor: str | Sequence[str] | None = "random",
        prior_sd: float = 1000.0,
        bootstrap: int = 100,
        ci: float = 0.95,
        seed: int = 0,
    ) -> None:
        self.elo_k = elo_k
        self.elo_initial = elo_initial
        self.env = trueskill_env if trueskill_env is not None else trueskill.TrueSkill()
        self._anchor = anchor
        self.prior_sd = prior_sd
        self.bootstrap = bootstrap
        self.ci = ci
        self.seed = seed
        self.history = MatchHistory()
        self._elo: dict[str, float] = {}
        # (mu, sigma) as plain floats: a trueskill.Rating keeps precision-weighted
        # values, so rebuilding one from a saved (mu, sigma) would not be exact.
        self._trueskill: dict[str, tuple[float, float]] = {}
        self._ml: MLElo | None = None

    @property
    def anchor(self) -> str | Sequence[str] | None:
        """The ML Elo anchor (see `fit_ml_elo`); setting it refits on the next `ml_elo()`."""
        return self._anchor

    @anchor.setter
    def anchor(self, anchor: str | Sequence[str] | None) -> None:
        if anchor != self._anchor:
            self._anchor = anchor
            self._ml = None

    def add(self, policy_id: str, like: str | None = None) -> None:
        """Start rating `policy_id`: at the initial ratings, or a copy of `like`'s."""
        if like is None:
            self._elo[policy_id] = self.elo_initial
            self._trueskill[policy_id] = (float(self.env.mu), float(self.env.sigma))
        else:
            self._elo[policy_id] = self.elo(like)
            self._trueskill[policy_id] = self._trueskill[like]

    def copy(self, policy_id: str, source: str) -> None:
        """Give `policy_id` the online Elo and TrueSkill rating of `source` (PBT's exploit:
        its weights are now the source's, and so is its strength)."""
        self._elo[policy_id] = self._elo[source]
        self._trueskill[policy_id] = self._trueskill[source]

    def __contains__(self, policy_id: str) -> bool:
        return policy_id in self._elo

    def elo(self, policy_id: str) -> float:
        """Online Elo of a policy."""
        return self._elo[policy_id]

    def trueskill(self, policy_id: str) -> tuple[float, float]:
        """TrueSkill (mu, sigma) of a policy."""
        return self._trueskill[policy_id]

    def _rating(self, policy_id: str) -> trueskill.Rating:
        mu, sigma = self._trueskill[policy_id]
        return self.env.create_rating(mu=mu, sigma=sigma)

    def quality(self, team_a: Sequence[str], team_b: Sequence[str]) -> float:
        """TrueSkill's match quality (draw probability) of team a against team b."""
        return self.env.quality(
            [[self._rating(p) for p in team_a], [self._rating(p) for p in team_b]]
        )

    def update(self, teams: Sequence[Sequence[str]], ranks: Sequence[int]) -> None:
        """Rate one match: `teams[i]` holds team i's distinct policy ids, `ranks[i]` its rank."""
        if len(teams) != len(ranks):
            raise ValueError(f"{len(teams)} teams but {len(ranks)} ranks")
        teams = [tuple(dict.fromkeys(t)) for t in teams]
        for team in teams:
            for p in team:
                if p not in self._elo:
                    self.add(p)
        team_elo = [sum(self._elo[p] for p in t) / len(t) for t in teams]
        for team, delta in zip(teams, elo_deltas(team_elo, ranks, self.elo_k), strict=True):
            for p in team:
                self._elo[p] += delta
        self._update_trueskill(teams, ranks)
        for i, j, score in pairwise_scores(ranks):
            self.history.add(teams[i], teams[j], score)
        self._ml = None

    def _update_trueskill(self, teams: list[tuple[str, ...]], ranks: Sequence[int]) -> None:
        members = [p for t in teams for p in t]
        if len(set(members)) == len(members):
            self._rate(teams, ranks)
            return
        # A policy on two teams cannot be one TrueSkill player on both sides:
        # rate each pair of teams that share no policy as its own game.
        for i, j, _ in pairwise_scores(ranks):
            if not set(teams[i]) & set(teams[j]):
                self._rate([teams[i], teams[j]], [ranks[i], ranks[j]])

    def _rate(self, teams: Sequence[tuple[str, ...]], ranks: Sequence[int]) -> None:
        if len(teams) < 2:
            return
        if len(teams) == 2 and len(teams[0]) == len(teams[1]) == 1:
            self._rate_1vs1(teams[0][0], teams[1][0], ranks)
            return
        rated = self.env.rate([[self._rating(p) for p in t] for t in teams], ranks=list(ranks))
        for team, new in zip(teams, rated, strict=True):
            for p, rating in zip(team, new, strict=True):
                self._trueskill[p] = (float(rating.mu), float(rating.sigma))

    def _rate_1vs1(self, a: str, b: str, ranks: Sequence[int]) -> None:
        """TrueSkill for one player against one, in closed form (Herbrich et al. 2007).

        The factor graph of `trueskill.rate` reduces to these equations for two
        single-player teams (same results to ~1e-12), at ~4 µs instead of ~300:
        most matches of board games are this case, and `report` runs per episode.
        The truncation functions v and w are the package's own.
        """
        if ranks[1] < ranks[0]:
            a, b = b, a
        drawn = ranks[0] == ranks[1]
        env = self.env
        (mu_a, sigma_a), (mu_b, sigma_b) = self._trueskill[a], self._trueskill[b]
        tau2 = env.tau**2
        var_a, var_b = sigma_a**2 + tau2, sigma_b**2 + tau2
        c2 = 2 * env.beta**2 + var_a + var_b
        c = math.sqrt(c2)
        eps = trueskill.calc_draw_margin(env.draw_probability, 2, env) / c
        t = (mu_a - mu_b) / c
        v = env.v_draw(t, eps) if drawn else env.v_win(t, eps)
        w = env.w_draw(t, eps) if drawn else env.w_win(t, eps)
        self._trueskill[a] = (mu_a + var_a / c * v, math.sqrt(var_a * (1 - var_a / c2 * w)))
        self._trueskill[b] = (mu_b - var_b / c * v, math.sqrt(var_b * (1 - var_b / c2 * w)))

    def ml_elo(self) -> MLElo:
        """The ML Elo fit of the whole history (cached until the next update)."""
        if self._ml is None:
            self._ml = fit_ml_elo(
                self.history,
                anchor=self.anchor,
                prior_sd=self.prior_sd,
                bootstrap=self.bootstrap,
                ci=self.ci,
                # Reproducible intervals for a given history, independent of matchmaking's RNG.
                seed=self.seed + self.history.games,
            )
        return self._ml

    def table(self, policy_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """All three ratings side by side: policy, elo, rating (ML Elo), err_lo, err_hi,
        trueskill_mu, trueskill_sigma; ML columns are NaN for a policy without games."""
        ids = list(self._elo) if policy_ids is None else list(policy_ids)
        ml = self.ml_elo().as_dict()
        nan = (math.nan, math.nan, math.nan)
        return pd.DataFrame(
            {
                "policy": ids,
                "elo": [self._elo[p] for p in ids],
                "rating": [ml.get(p, nan)[0] for p in ids],
                "err_lo": [ml.get(p, nan)[1] for p in ids],
                "err_hi": [ml.get(p, nan)[2] for p in ids],
                "trueskill_mu": [self._trueskill[p][0] for p in ids],
                "trueskill_sigma": [self._trueskill[p][1] for p in ids],
            }
        )

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: online ratings and the history."""
        return {
            "elo": dict(sorted(self._elo.items())),
            "trueskill": {p: list(r) for p, r in sorted(self._trueskill.items())},
            "history": self.history.to_list(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        self._elo = {p: float(r) for p, r in state["elo"].items()}
        self._trueskill = {p: (float(mu), float(s)) for p, (mu, s) in state["trueskill"].items()}
        self.history = MatchHistory.from_list(state["history"])
        self._ml = None
