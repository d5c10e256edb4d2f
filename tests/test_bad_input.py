"""Bad input fails early with an error that names the env, seat, action or
option at fault (docs/contract.md, "Errors")."""

from __future__ import annotations

from typing import Any

import numpy as np
import pettingzoo
import pytest
from gymnasium import spaces
from pettingzoo.utils import BaseWrapper

import wrappers

BOX = spaces.Box(-1.0, 1.0, (2,), np.float32)


def _connect_four() -> Any:
    env = wrappers.multiagent("classic/connect_four-v3")
    env.reset(seed=0)
    return env


def test_env_fn_that_is_not_callable() -> None:
    with pytest.raises(wrappers.EnvError, match=r"expected an env, a function that builds one"):
        wrappers.multiagent(42)


def test_callable_that_builds_no_env() -> None:
    def make_board() -> dict:
        return {"board": []}

    with pytest.raises(wrappers.EnvError, match=r"'make_board' returned dict, not a PettingZoo"):
        wrappers.multiagent(make_board)


def test_string_that_names_no_env() -> None:
    with pytest.raises(wrappers.EnvError, match=r"'classic/connect_five-v3' names no env"):
        wrappers.multiagent("classic/connect_five-v3")


def test_import_path_that_names_no_module() -> None:
    with pytest.raises(wrappers.EnvError, match=r"cannot import module 'no_such_pkg.envs'"):
        wrappers.multiagent("no_such_pkg.envs:make")


def test_import_path_that_names_no_function() -> None:
    with pytest.raises(wrappers.EnvError, match=r"'pettingzoo.classic:no_such_env'.*no_such_env"):
        wrappers.multiagent("pettingzoo.classic:no_such_env")


def test_env_kwargs_for_an_env_already_built() -> None:
    env = pettingzoo.make("aec", "classic/tictactoe-v3")
    with pytest.raises(wrappers.EnvError, match=r"env_kwargs= applies to env constructors"):
        wrappers.multiagent(env, env_kwargs={"render_mode": None})


def test_unknown_illegal_actions_option() -> None:
    with pytest.raises(ValueError, match=r"illegal_actions='skip'; expected one of"):
        wrappers.multiagent("classic/tictactoe-v3", illegal_actions="skip")


def test_wrong_number_of_actions() -> None:
    env = _connect_four()
    with pytest.raises(wrappers.ActionError, match=r"'connect_four_v3': step\(\) got 1 actions"):
        env.step([3])
    with pytest.raises(wrappers.ActionError, match=r"takes a list of 2 actions.*got int"):
        env.step(3)


def test_box_action_of_the_wrong_shape() -> None:
    env = wrappers.multiagent(
        "butterfly/pistonball-v6", env_kwargs={"n_pistons": 4, "max_cycles": 5}
    )
    env.reset(seed=0)
    actions = [np.zeros(1, np.float32)] * 4
    actions[2] = np.zeros(2, np.float32)
    with pytest.raises(
        wrappers.ActionError, match=r"'pistonball_v6', seat 'piston_2': action has shape \(2,\)"
    ):
        env.step(actions)


def test_multidiscrete_action_of_the_wrong_shape_or_range(tiny_env: Any) -> None:
    env = wrappers.multiagent(tiny_env(BOX, {"multi_0": spaces.MultiDiscrete([2, 3])}))
    env.reset()
    with pytest.raises(wrappers.ActionError, match=r"seat 'multi_0': action has shape \(3,\)"):
        env.step([[0, 1, 1]])
    with pytest.raises(wrappers.ActionError, match=r"seat 'multi_0': action \[1 3\] is outside"):
        env.step([[1, 3]])


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (np.array([1, 2]), r"must be a scalar"),
        (np.array([1]), r"must be a scalar"),
        (1.5, r"is not an integer"),
        ("3", r"is not an integer"),
        (None, r"is not an integer"),
        (7, r"action 7 is outside Discrete\(7\)"),
    ],
)
def test_discrete_action_that_is_no_valid_integer(action: Any, message: str) -> None:
    env = _connect_four()
    with pytest.raises(wrappers.ActionError, match=rf"seat 'player_0': .*{message}"):
        env.step([action, 0])


def test_action_the_mask_forbids() -> None:
    env = _connect_four()
    for _ in range(6):  # fill column 0
        env.step([0, 0])
    with pytest.raises(
        wrappers.ActionError,
        match=r"env 'connect_four_v3', seat 'player_0': action 0 is illegal here \(legal: "
        r"\[1, 2, 3, 4, 5, 6\]\)",
    ):
        env.step([0, 0])
    # Nothing happened: the same seat still moves, and a legal move is taken.
    _, rewards, terminated, _, infos = env.step([1, 0])
    assert rewards == [0.0, 0.0] and terminated == [False, False] and infos[1]["is_active"]


@pytest.mark.parametrize(
    ("env_id", "moves"),
    [("classic/connect_four-v3", [0] * 7), ("classic/tictactoe-v3", [4, 0, 4])],
)
def test_illegal_actions_env_lets_the_env_apply_its_rule(env_id: str, moves: list[int]) -> None:
    env = wrappers.multiagent(env_id, illegal_actions="env")
    env.reset(seed=0)
    *legal, illegal = moves
    for move in legal:
        env.step([move, move])
    mover = len(legal) % 2
    obs, rewards, terminated, truncated, infos = env.step([illegal, illegal])
    assert rewards[mover] == -1.0 and rewards[1 - mover] == 0.0
    assert terminated == [True, True] and truncated == [False, False]
    assert infos[mover]["episode"]["return"] == -1.0
    assert infos[0]["is_active"] and not obs[0].any()  # a fresh game


class _CorruptReward(BaseWrapper):
    """Tic-tac-toe whose end-of-game rewards come out as NaN."""

    def last(self, observe: bool = True) -> tuple:
        obs, reward, termination, truncation, info = super().last(observe)
        return obs, float("nan") if reward else reward, termination, truncation, info


def test_nan_reward() -> None:
    env = wrappers.multiagent(_CorruptReward(pettingzoo.make("aec", "classic/tictactoe-v3")))
    env.reset(seed=0)
    # player_1 takes the left column; the game's end pays player_2 first (its dead step).
    moves = [0, 1, 3, 4, 6]
    for move in moves[:-1]:
        env.step([move, move])
    with pytest.raises(
        wrappers.RewardError, match=r"env 'tictactoe_v3', seat 'player_2': reward nan is not finite"
    ):
        env.step([moves[-1], moves[-1]])


def test_infinite_reward(tiny_env: Any) -> None:
    env = wrappers.multiagent(tiny_env(BOX, {"a_0": spaces.Discrete(2)}, reward=float("inf")))
    env.reset()
    with pytest.raises(wrappers.RewardError, match=r"'tiny_v0', seat 'a_0': reward inf"):
        env.step([0])


@pytest.mark.parametrize(
    "space",
    [spaces.Text(8), spaces.Graph(BOX, None), spaces.Sequence(BOX)],
    ids=["text", "graph", "sequence"],
)
def test_unsupported_observation_space(tiny_env: Any, space: spaces.Space) -> None:
    with pytest.raises(wrappers.SpaceError, match=r"env 'tiny_v0', seat 'a_0': observation space"):
        wrappers.multiagent(tiny_env(space, {"a_0": spaces.Discrete(2)}))


def test_unsupported_action_space(tiny_env: Any) -> None:
    with pytest.raises(wrappers.SpaceError, match=r"seat 'a_0': action space MultiBinary"):
        wrappers.multiagent(tiny_env(BOX, {"a_0": spaces.MultiBinary(3)}))


def test_padding_seats_of_different_ranks(tiny_env: Any) -> None:
    class TwoRanks(tiny_env):
        def observation_space(self, agent: str) -> spaces.Space:
            return BOX if agent == "a_0" else spaces.Box(0, 1, (2, 2))

    with pytest.raises(wrappers.SpaceError, match=r"pad=True needs observations of one rank"):
        wrappers.multiagent(
            TwoRanks(BOX, dict.fromkeys(["a_0", "b_0"], spaces.Discrete(2))), pad=True
        )


def test_roles_that_miss_a_seat() -> None:
    with pytest.raises(wrappers.SpaceError, match=r"roles= gives no role for seats \['player_1'\]"):
        wrappers.multiagent("classic/connect_four-v3", roles={"player_0": "first"})
