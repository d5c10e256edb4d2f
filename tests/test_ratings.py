"""Ratings: known numbers, recovery of known strengths, error bars, save/load."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest
import trueskill

from league.ratings import (
    ELO_SCALE,
    MatchHistory,
    Ratings,
    elo_deltas,
    expected_score,
    fit_ml_elo,
    pairwise_scores,
    team_ranks,
)

STRENGTHS = {"random": 0.0, "p1": 150.0, "p2": 300.0, "p3": 450.0, "p4": 600.0, "p5": 750.0}


def play_two_team(rng: np.random.Generator, strengths: dict[str, float], games: int):
    """Bradley-Terry games with draws: E[score] = expected_score, draws likelier when close."""
    ids = list(strengths)
    true = np.array([strengths[p] for p in ids])
    a = rng.integers(0, len(ids), games)
    b = (a + rng.integers(1, len(ids), games)) % len(ids)
    p = 1.0 / (1.0 + 10.0 ** ((true[b] - true[a]) / 400.0))
    draw = 0.3 * 4 * p * (1 - p)
    win = (p - draw / 2) / (1 - draw)
    u, v = rng.random(games), rng.random(games)
    scores = np.where(u < draw, 0.5, np.where(v < win, 1.0, 0.0))
    return [(ids[i], ids[j], float(s)) for i, j, s in zip(a, b, scores, strict=True)]


def play_free_for_all(rng: np.random.Generator, teams_per_match: int, team_size: int, games: int):
    """Matches of several teams ranked by performance = mean strength + Gumbel noise (so any
    two teams of a match compare by Bradley-Terry); returns rounded to make some draws."""
    ids = list(STRENGTHS)
    for _ in range(games):
        players = rng.permutation(len(ids))[: teams_per_match * team_size]
        teams = [
            [ids[k] for k in players[t * team_size : (t + 1) * team_size]]
            for t in range(teams_per_match)
        ]
        perf = [np.mean([STRENGTHS[p] for p in team]) / ELO_SCALE + rng.gumbel() for team in teams]
        yield teams, team_ranks(np.round(np.array(perf) * 4) / 4)


def order(values: dict[str, float]) -> list[str]:
    return sorted(values, key=values.__getitem__)


def test_known_numbers() -> None:
    assert expected_score(1500, 1500) == 0.5
    assert expected_score(1900, 1500) == pytest.approx(10 / 11)
    assert elo_deltas([1500, 1500], [0, 1], k=32) == [16.0, -16.0]
    assert elo_deltas([1500, 1500], [0, 0], k=32) == [0.0, 0.0]
    assert elo_deltas([1900, 1500], [0, 1], k=22) == pytest.approx([2.0, -2.0])
    # Three equal teams: the winner beats two (K/2 each), the middle wins one and loses one.
    assert elo_deltas([1500, 1500, 1500], [0, 1, 2], k=32) == [16.0, 0.0, -16.0]
    assert team_ranks([3.0, 1.0, 3.0, -2.0]) == [0, 2, 0, 3]
    assert pairwise_scores([0, 2, 0]) == [(0, 1, 1.0), (0, 2, 0.5), (1, 2, 0.0)]


def test_trueskill_matches_the_trueskill_package() -> None:
    env = trueskill.TrueSkill(draw_probability=0.1)
    ratings = Ratings(trueskill_env=env)
    ratings.update([["a"], ["b"]], [0, 1])
    # The numbers of trueskill's documentation for a first 1-vs-1 win.
    assert ratings.trueskill("a") == pytest.approx((29.396, 7.171), abs=1e-3)
    assert ratings.trueskill("b") == pytest.approx((20.604, 7.171), abs=1e-3)
    (a, b), (c,), (d,) = env.rate(
        [
            [
                env.create_rating(*ratings.trueskill("a")),
                env.create_rating(*ratings.trueskill("b")),
            ],
            [env.create_rating()],
            [env.create_rating()],
        ],
        ranks=[1, 0, 1],
    )
    ratings.update([["a", "b"], ["c"], ["d"]], [1, 0, 1])
    for policy, expected in zip("abcd", (a, b, c, d), strict=True):
        assert ratings.trueskill(policy) == (expected.mu, expected.sigma)


def test_trueskill_one_vs_one_closed_form_equals_the_package() -> None:
    env = trueskill.TrueSkill(draw_probability=0.1)
    rng = np.random.default_rng(3)
    for _ in range(200):
        ratings = Ratings(trueskill_env=env)
        ratings.update([["a"], ["b"]], [0, 1])  # both players exist
        ratings.update([["b"], ["a"]], [0, int(rng.integers(0, 2))])  # a loss or a draw
        before = {p: env.create_rating(*ratings.trueskill(p)) for p in "ab"}
        ranks = [int(r) for r in rng.integers(0, 2, size=2)]
        ratings.update([["a"], ["b"]], ranks)
        (a,), (b,) = env.rate([[before["a"]], [before["b"]]], ranks=ranks)
        assert ratings.trueskill("a") == pytest.approx((a.mu, a.sigma), abs=1e-9)
        assert ratings.trueskill("b") == pytest.approx((b.mu, b.sigma), abs=1e-9)


def test_trueskill_sigma_shrinks_with_games() -> None:
    rng = np.random.default_rng(0)
    ratings = Ratings()
    sigmas = [ratings.env.sigma]
    for games in (1, 10, 100):
        while ratings.history.games < games:
            a, b, score = play_two_team(rng, STRENGTHS, 1)[0]
            ratings.update([[a], [b]], [0, 0] if score == 0.5 else [0, 1] if score else [1, 0])
        sigmas.append(np.mean([ratings.trueskill(p)[1] for p in ratings.table()["policy"]]))
    assert all(later < earlier for earlier, later in itertools.pairwise(sigmas))


def test_two_team_recovery_every_system_orders_players() -> None:
    rng = np.random.default_rng(1)
    ratings = Ratings(elo_k=16)
    for a, b, score in play_two_team(rng, STRENGTHS, 3000):
        ratings.update([[a], [b]], [0, 0] if score == 0.5 else [0, 1] if score else [1, 0])
    table = ratings.table().set_index("policy")
    true_order = order(STRENGTHS)
    assert order(table["elo"].to_dict()) == true_order
    assert order(table["trueskill_mu"].to_dict()) == true_order
    assert order(table["rating"].to_dict()) == true_order
    assert table.loc["random", "rating"] == 0.0  # the anchor
    # ML Elo lands near the truth (error bars here are ~±40).
    for p, strength in STRENGTHS.items():
        assert table.loc[p, "rating"] == pytest.approx(strength, abs=80)


@pytest.mark.parametrize(("teams_per_match", "team_size"), [(4, 1), (3, 2)])
def test_multi_team_recovery_every_system_orders_players(teams_per_match, team_size) -> None:
    rng = np.random.default_rng(2)
    ratings = Ratings(elo_k=16)
    for teams, ranks in play_free_for_all(rng, teams_per_match, team_size, 1500):
        ratings.update(teams, ranks)
    table = ratings.table().set_index("policy")
    true_order = order(STRENGTHS)
    for column in ("elo", "trueskill_mu", "rating"):
        assert order(table[column].to_dict()) == true_order, column


def test_ml_elo_error_bars_cover_true_ratings() -> None:
    true = {"random": 0.0, "p1": 100.0, "p2": 200.0, "p3": 300.0, "p4": 400.0, "p5": 500.0}
    covered = []
    for seed in range(20):
        history = MatchHistory()
        for a, b, score in play_two_team(np.random.default_rng(seed), true, 600):
            history.add([a], [b], score)
        fit = fit_ml_elo(history, bootstrap=100, seed=seed).as_dict()
        for p in ("p1", "p2", "p3", "p4", "p5"):
            _, lo, hi = fit[p]
            covered.append(lo <= true[p] <= hi)
    # Nominal 95% intervals; the bootstrap percentiles of 100 resamples run a little narrow.
    assert np.mean(covered) >= 0.9


def test_ml_elo_perfect_record_is_finite_with_a_real_interval() -> None:
    history = MatchHistory()
    for _ in range(10):
        history.add(["a"], ["random"], 1.0)
    rating, lo, hi = fit_ml_elo(history).as_dict()["a"]
    assert math.isfinite(rating) and 400 < rating < 2000
    assert lo < rating - 100  # a resample with a loss pulls it well down
    assert hi == pytest.approx(rating, abs=1e-3)  # and none does better than perfect
    assert fit_ml_elo(history).as_dict()["random"] == (0.0, 0.0, 0.0)


def test_ml_elo_anchor_falls_back_to_the_mean() -> None:
    history = MatchHistory()
    for a, b, s in play_two_team(np.random.default_rng(3), STRENGTHS, 500):
        history.add([a.replace("random", "weak")], [b.replace("random", "weak")], s)
    fit = fit_ml_elo(history, bootstrap=0)
    assert fit.anchor == ()
    assert fit.rating.mean() == pytest.approx(0.0, abs=1e-9)
    assert np.isnan(fit.err_lo).all()
    # Several anchors: their mean is 0.
    two = fit_ml_elo(history, anchor=["weak", "p1"], bootstrap=0).as_dict()
    assert two["weak"][0] + two["p1"][0] == pytest.approx(0.0, abs=1e-9)


def test_ml_elo_is_fast_enough() -> None:
    strengths = {f"p{i}": 40.0 * i for i in range(20)}
    history = MatchHistory()
    for a, b, s in play_two_team(np.random.default_rng(4), strengths, 5000):
        history.add([a], [b], s)
    start = time.perf_counter()
    fit = fit_ml_elo(history, bootstrap=100)
    assert time.perf_counter() - start < 1.0
    assert (fit.err_lo <= fit.rating + 1e-6).all() and (fit.rating <= fit.err_hi + 1e-6).all()


def test_ratings_survive_save_and_load_exactly() -> None:
    ratings = Ratings(elo_k=24, seed=5)
    for teams, ranks in play_free_for_all(np.random.default_rng(5), 3, 1, 200):
        ratings.update(teams, ranks)
    restored = Ratings(elo_k=24, seed=5)
    restored.load_state_dict(ratings.state_dict())
    assert restored.state_dict() == ratings.state_dict()
    before = ratings.table().sort_values("policy").reset_index(drop=True)
    after = restored.table().sort_values("policy").reset_index(drop=True)
    assert before.equals(after)
    # And they keep moving identically.
    for r in (ratings, restored):
        r.update([["p1"], ["p2", "p3"]], [1, 0])
    assert restored.state_dict() == ratings.state_dict()


def test_history_ignores_games_of_a_policy_set_against_itself() -> None:
    ratings = Ratings()
    ratings.update([["a"], ["a"]], [0, 1])
    assert ratings.history.games == 0
    assert ratings.elo("a") == ratings.elo_initial
    ratings.update([["a"], ["b"]], [0, 1])
    assert ratings.history.items() == [(("a",), ("b",), 1, 0, 0)]
    ratings.update([["b"], ["a"]], [0, 0])
    assert ratings.history.items() == [(("a",), ("b",), 1, 1, 0)]
