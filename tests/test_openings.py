"""Random openings: training games of turn-based envs that start from random legal moves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mpe2 import simple_tag_v3
from pettingzoo.classic import connect_four_v3, tictactoe_v3

import league
import wrappers
from league.errors import ConfigError
from wrappers.errors import EnvError


def _play(env, episodes: int, seed: int) -> list[np.ndarray]:
    """Random play for `episodes` games; the observation of the seat to move after each
    reset (the first one included)."""
    rng = np.random.default_rng(seed)
    obs, infos = env.reset(seed=seed)
    starts = []
    while True:
        (mover,) = [j for j, info in enumerate(infos) if info["is_active"]]
        starts.append((mover, obs[mover].copy()))
        if len(starts) > episodes:
            return starts
        while True:
            (j,) = [j for j, info in enumerate(infos) if info["is_active"]]
            actions = [0] * env.num_agents
            actions[j] = int(rng.choice(np.flatnonzero(infos[j]["action_mask"])))
            obs, rewards, _, _, infos = env.step(actions)
            if env.episode_ended:
                assert sum(rewards) == 0  # zero-sum: the opening's moves earned nothing
                break


def test_every_game_starts_after_the_opening_and_the_same_seed_repeats_it():
    env = wrappers.multiagent(connect_four_v3.env, opening_plies=4)
    starts = _play(env, 100, seed=3)
    # Four stones on the board, two a side, and the first mover to move again.
    assert all(mover == 0 for mover, _ in starts)
    assert all(o[..., 0].sum() == 2 and o[..., 1].sum() == 2 for _, o in starts)
    assert len({o.tobytes() for _, o in starts}) > 50  # many openings, not one
    again = _play(wrappers.multiagent(connect_four_v3.env, opening_plies=4), 100, seed=3)
    assert all((a == b).all() for (_, a), (_, b) in zip(starts, again, strict=True))


def test_a_share_of_games_gets_the_opening():
    env = wrappers.multiagent(connect_four_v3.env, opening_plies=3, opening_share=0.5)
    starts = _play(env, 400, seed=0)
    opened = [o.sum() == 3 for _, o in starts]
    assert all(o.sum() in (0, 3) for _, o in starts)
    assert 150 < sum(opened) < 250  # binomial(401, 0.5): 4.9 sd either side
    # After three random moves the second mover is to move.
    assert all(mover == (1 if o.sum() else 0) for mover, o in starts)


def test_an_opening_that_ends_the_game_is_drawn_again():
    # Eight random moves of tic-tac-toe often finish a game; every game must still start
    # with eight marks on the board and one move left to play.
    env = wrappers.multiagent(tictactoe_v3.env, opening_plies=8)
    starts = _play(env, 200, seed=1)
    assert all(mover == 0 and o.sum() == 8 for mover, o in starts)


def test_openings_that_cannot_work_are_refused():
    with pytest.raises(EnvError, match=r"opening_plies=2.*not a PettingZoo AEC env"):
        wrappers.multiagent(simple_tag_v3.parallel_env, opening_plies=2)
    with pytest.raises(EnvError, match="use fewer opening_plies"):
        wrappers.multiagent(tictactoe_v3.env, opening_plies=9).reset(seed=0)
    for bad in ({"opening_plies": -1}, {"opening_plies": 1.5}, {"opening_share": 2.0}):
        with pytest.raises(ConfigError, match="opening_"):
            league.train("classic/tictactoe-v3", total_steps=100, progress=False, **bad)


def test_training_games_start_from_the_opening_in_the_workers(tmp_path: Path):
    # Tic-tac-toe after eight random moves: one move is left, the first mover's, so the
    # second mover never wins a training game, and every game is one env step.
    run = league.train(
        "classic/tictactoe-v3",
        max_seconds=0,
        total_steps=3_000,
        num_policies=2,
        num_envs=8,
        num_workers=2,
        rollout=32,
        batch_size=256,
        progress=False,
        tensorboard=False,
        opening_plies=8,
        run_dir=tmp_path / "run",
    )
    matches = pd.read_csv(tmp_path / "run" / "matches.csv.gz")
    returns = matches.team_returns.str.split(";", expand=True).astype(float)
    assert len(matches) >= 2_900
    assert (returns[1] <= 0).all() and (returns[0] > 0).any()
    assert run.config.opening_plies == 8


def test_training_a_parallel_env_with_openings_is_refused_before_training(tmp_path: Path):
    with pytest.raises(EnvError, match="not a PettingZoo AEC env"):
        league.train(
            "classic/rps-v2",
            total_steps=1_000,
            opening_plies=2,
            progress=False,
            run_dir=tmp_path / "run",
        )
    assert not (tmp_path / "run" / "checkpoints").exists()
