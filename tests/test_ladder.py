"""The reference ladder: exact seat split, rungs, evaluation during training off the clock."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from gymnasium.spaces import Discrete

import league
from league.evaluate import play_games
from league.ladder import evaluate_ladder, ladder_rungs, register_rung, unregister_rung
from league.policies import RandomPolicy
from league.training import Observer

TTT = "classic/tictactoe-v3"


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


class SeatCounter:
    """A random player that counts the games it opened: its first move on an empty board."""

    def __init__(self) -> None:
        self.random = RandomPolicy(Discrete(9), seed=1)
        self.first_moves = 0

    def act(self, obs, action_mask=None):
        self.first_moves += int((np.asarray(obs).reshape(len(obs), -1).sum(axis=1) == 0).sum())
        return self.random.act(obs, action_mask)


@pytest.mark.parametrize("num_envs", [16, 7, 1])
def test_half_the_games_in_each_seat_whatever_finishes_first(num_envs: int):
    counter = SeatCounter()
    result = play_games(
        TTT, counter, RandomPolicy(Discrete(9), seed=2), games=120, num_envs=num_envs
    )
    assert result.games == 120
    assert counter.first_moves == 60
    assert [sum(seat) for seat in result.by_seat] == [60, 60]
    totals = [sum(n) for n in zip(*result.by_seat, strict=True)]
    assert totals == [result.wins, result.draws, result.losses]


class Column:
    """Connect four: always drop in one column (legal for its first six moves)."""

    def __init__(self, column: int) -> None:
        self.column = column

    def act(self, obs, action_mask=None):
        return np.full(len(obs), self.column)


def test_results_by_seat_credit_the_seat_that_won():
    """Column 0 against column 1: whoever moves first stacks four first and wins, so the
    policy wins every game from seat 0 and loses every game from seat 1."""
    result = play_games("classic/connect_four-v3", Column(0), Column(1), games=10, num_envs=3)
    assert result.by_seat == ((5, 0, 0), (0, 0, 5))
    assert (result.wins, result.draws, result.losses) == (5, 0, 5)
    assert "(W/D/L seat 0: 5/0/0, seat 1: 0/0/5)" in str(result)


def test_rungs_of_an_env_weakest_first_with_registered_ones():
    rungs = ladder_rungs("connect_four_v3", Discrete(7))
    assert list(rungs) == ["random", "lookahead", "negamax2", "negamax4"]
    register_rung("tictactoe_v3", "first_legal", lambda: _FirstLegal())
    try:
        rungs = ladder_rungs("tictactoe_v3", Discrete(9))
        assert list(rungs) == ["random", "perfect", "first_legal"]
    finally:
        unregister_rung("tictactoe_v3", "first_legal")
    assert "first_legal" not in ladder_rungs("tictactoe_v3", Discrete(9))
    assert list(ladder_rungs("rps_v2", Discrete(3))) == ["random"]


class _FirstLegal:
    def act(self, obs, action_mask):
        return np.argmax(action_mask, axis=-1)


def test_perfect_play_climbs_the_tictactoe_ladder_without_a_loss():
    from league.bots import TicTacToePerfect

    results = evaluate_ladder(
        TTT, {"perfect": TicTacToePerfect()}, ladder_rungs("tictactoe_v3", Discrete(9)), 40
    )
    by_rung = {r.opponent: r for r in results}
    assert by_rung["random"].losses == 0 and by_rung["random"].wins > 30
    assert by_rung["perfect"].draws == 40  # perfect against perfect: always a draw


class _Clock(Observer):
    def on_start(self, trainer):
        self.started = time.monotonic()

    def on_stop(self, trainer, reason):
        self.stopped = time.monotonic()


def test_the_ladder_plays_during_training_off_the_clock(tmp_path: Path, monkeypatch):
    clock = _Clock()
    evaluating = []  # (start, end) of each ladder evaluation, timed around the real one
    real = league.ladder.evaluate_ladder

    def timed(*args, **kwargs):
        started = time.monotonic()
        try:
            return real(*args, **kwargs)
        finally:
            evaluating.append((started, time.monotonic()))

    monkeypatch.setattr(league.ladder, "evaluate_ladder", timed)
    league.train(
        TTT,
        num_policies=2,
        num_envs=8,
        rollout=32,
        batch_size=256,
        max_seconds=6,
        total_steps=0,
        ladder_seconds=2,
        ladder_games=60,
        run_dir=str(tmp_path),
        progress=False,
        tensorboard=False,
        observers=[clock],
    )
    ladder = pd.read_csv(tmp_path / "ladder.csv")
    assert set(ladder["rung"]) == {"random", "perfect"}
    assert (ladder["games"] == 60).all() and len(ladder) >= 4  # twice at least, one learner
    assert ladder["policy"].isin(["p0", "p1"]).all()
    assert ((ladder["wins"] + ladder["draws"] + ladder["losses"]) == 60).all()
    assert (ladder["win_lo"] <= ladder["win_rate"]).all()
    elapsed = json.loads((tmp_path / "trainer.json").read_text())["elapsed"]
    # 6 s of training; the evaluations during it came on top of them, not out of them
    # (had they been counted, the wall clock would barely exceed the training time).
    during = [end - start for start, end in evaluating if end <= clock.stopped]
    assert 5.5 < elapsed < 7.0 and len(during) >= 2
    assert clock.stopped - clock.started >= elapsed + 0.8 * sum(during)


class FirstBoards:
    """A deterministic bot that writes down the first board it sees in each game."""

    def __init__(self, bot) -> None:
        self.bot = bot
        self.boards: set[bytes] = set()

    def act(self, obs, action_mask=None):
        for board in np.asarray(obs):
            if board.sum() <= 5:  # early in a game: right after the opening
                self.boards.add(board.tobytes())
        return self.bot.act(obs, action_mask)


def test_random_openings_make_games_between_deterministic_players_differ():
    from league.bots import ConnectFourLookahead

    c4 = "classic/connect_four-v3"
    alone = FirstBoards(ConnectFourLookahead())
    play_games(c4, alone, ConnectFourLookahead(), games=40, num_envs=8)
    assert len(alone.boards) <= 6  # one game per seat, replayed: its first three positions
    varied = FirstBoards(ConnectFourLookahead())
    result = play_games(c4, varied, ConnectFourLookahead(), games=40, num_envs=8, opening_plies=4)
    assert len(varied.boards) > 20 and result.games == 40
