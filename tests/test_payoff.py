"""Payoff: decayed records per ordered pair, win rates, the matrix, save/load."""

from __future__ import annotations

import pytest

from league.payoff import PairRecord, Payoff


def test_counts_decay_before_each_new_result() -> None:
    payoff = Payoff(decay=0.5, min_games=0)
    payoff.update("a", "b", 1.0)
    payoff.update("a", "b", 0.0)
    payoff.update("a", "b", 0.5)
    # win: 1 -> 0.5 -> 0.25; loss: 1 -> 0.5; draw: 1
    assert payoff.record("a", "b") == PairRecord(wins=0.25, draws=1.0, losses=0.5)
    assert payoff.win_rate("a", "b") == pytest.approx((0.25 + 0.5) / 1.75)


def test_both_orders_of_a_pair_are_mirrored() -> None:
    payoff = Payoff(decay=1.0, min_games=0)
    for score in (1.0, 1.0, 0.5, 0.0):
        payoff.update("a", "b", score)
    assert payoff.record("a", "b") == PairRecord(2.0, 1.0, 1.0)
    assert payoff.record("b", "a") == PairRecord(1.0, 1.0, 2.0)
    assert payoff.win_rate("a", "b") == 2.5 / 4
    assert payoff.win_rate("a", "b") + payoff.win_rate("b", "a") == 1.0
    # A pair updated does not touch other pairs.
    assert payoff.record("a", "c") == PairRecord()


def test_win_rate_is_one_half_until_min_games() -> None:
    payoff = Payoff(decay=1.0, min_games=3)
    assert payoff.win_rate("a", "b") == 0.5
    payoff.update("a", "b", 1.0)
    payoff.update("a", "b", 1.0)
    assert payoff.win_rate("a", "b") == 0.5
    payoff.update("a", "b", 1.0)
    assert payoff.win_rate("a", "b") == 1.0


def test_decayed_games_can_fall_below_min_games() -> None:
    payoff = Payoff(decay=0.5, min_games=1.5)
    payoff.update("a", "b", 1.0)
    payoff.update("a", "b", 1.0)  # 1.5 decayed games
    assert payoff.win_rate("a", "b") == 1.0
    payoff = Payoff(decay=0.4, min_games=1.5)
    payoff.update("a", "b", 1.0)
    payoff.update("a", "b", 1.0)  # 1.4 decayed games
    assert payoff.win_rate("a", "b") == 0.5


def test_matrix_holds_win_rates_and_games() -> None:
    payoff = Payoff(decay=1.0, min_games=1)
    payoff.update("a", "b", 1.0)
    payoff.update("c", "a", 0.5)
    rates = payoff.matrix(["a", "b", "c"])
    assert list(rates.index) == ["a", "b", "c"] and list(rates.columns) == ["a", "b", "c"]
    assert rates.loc["a", "b"] == 1.0 and rates.loc["b", "a"] == 0.0
    assert rates.loc["a", "c"] == 0.5 and rates.loc["b", "c"] == 0.5  # never met: 0.5
    games = payoff.matrix(["a", "b", "c"], values="games")
    assert games.loc["a", "b"] == 1.0 and games.loc["b", "c"] == 0.0
    with pytest.raises(ValueError, match="'win_rate' or 'games'"):
        payoff.matrix(["a"], values="score")


def test_forget_drops_every_pair_of_a_policy() -> None:
    payoff = Payoff(decay=1.0, min_games=0)
    payoff.update("a", "b", 1.0)
    payoff.update("a", "c", 1.0)
    payoff.forget("b")
    assert payoff.record("a", "b") == PairRecord() and payoff.record("b", "a") == PairRecord()
    assert payoff.record("a", "c").wins == 1.0


def test_state_round_trips_exactly() -> None:
    payoff = Payoff(decay=0.97, min_games=2)
    for score in (1.0, 0.0, 0.5, 1.0, 1.0):
        payoff.update("x", "y", score)
    payoff.update("y", "z", 0.5)
    restored = Payoff(decay=0.97, min_games=2)
    restored.load_state_dict(payoff.state_dict())
    assert restored.state_dict() == payoff.state_dict()
    assert restored.win_rate("x", "y") == payoff.win_rate("x", "y")


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="decay"):
        Payoff(decay=0.0)
    with pytest.raises(ValueError, match="decay"):
        Payoff(decay=1.5)
    with pytest.raises(ValueError, match="min_games"):
        Payoff(min_games=-1)
    with pytest.raises(ValueError, match="score"):
        Payoff().update("a", "b", 0.7)
