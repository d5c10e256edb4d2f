"""Rewards follow decisions and are conserved: for the same seed and the same
actions, each seat's wrapper rewards summed over an episode equal the return a
plain PettingZoo loop reports, and `infos[i]["episode"]["return"]` equals that sum."""

from __future__ import annotations

from typing import Any

import numpy as np
import pettingzoo
import pytest
from mpe2 import simple_tag_v3

import wrappers

SEED = 11
EPISODES = 3


def _play_wrapped(env: Any, random_legal: Any, episodes: int) -> tuple[list, list[list[float]]]:
    """Random legal play; returns the actions of the active seats per step and
    each episode's summed rewards per seat, checked against `episode["return"]`."""
    rng = np.random.default_rng(SEED)
    _, infos = env.reset(seed=SEED)
    taken: list[dict[int, Any]] = []
    totals: list[list[float]] = []
    sums = [0.0] * env.num_agents
    ended: set[int] = set()
    while len(totals) < episodes:
        actions = random_legal(env, infos, rng)
        taken.append({i: a for i, a in enumerate(actions) if infos[i]["is_active"]})
        _, rewards, terminated, truncated, infos = env.step(actions)
        for i, r in enumerate(rewards):
            sums[i] += r
            if terminated[i] or truncated[i]:
                assert infos[i]["episode"]["return"] == pytest.approx(sums[i])
                ended.add(i)
        if len(ended) == env.num_agents:
            totals.append(sums)
            sums = [0.0] * env.num_agents
            ended = set()
    return taken, totals


# The board and card games, and two games whose seats die mid-episode (their
# rewards then arrive on dead steps while the others play on).
AEC_GAMES: dict[str, dict[str, Any]] = {
    "classic/connect_four-v3": {},
    "classic/tictactoe-v3": {},
    "classic/leduc_holdem-v4": {},
    "classic/texas_holdem-v4": {},
    "classic/texas_holdem_no_limit-v6": {},
    "butterfly/knights_archers_zombies-v11": {"max_cycles": 100, "spawn_delay": 2},
    "sisl/multiwalker-v9": {"max_cycles": 100, "terminate_on_fall": False, "remove_on_fall": True},
}


@pytest.mark.parametrize("env_id", sorted(AEC_GAMES))
def test_aec_rewards_sum_to_the_plain_loop_returns(env_id: str, random_legal: Any) -> None:
    wrapped = wrappers.multiagent(pettingzoo.make("aec", env_id, **AEC_GAMES[env_id]))
    assert isinstance(wrapped, wrappers.AECMultiAgentEnv)
    taken, totals = _play_wrapped(wrapped, random_legal, EPISODES)
    seats = wrapped.possible_agents

    env = pettingzoo.make("aec", env_id, **AEC_GAMES[env_id])
    env.reset(seed=SEED)
    moves = iter(taken)
    expected = []
    for _ in range(EPISODES):
        returns = dict.fromkeys(seats, 0.0)
        for agent in env.agent_iter():
            _, reward, termination, truncation, _ = env.last()
            returns[agent] += reward
            if termination or truncation:
                env.step(None)  # the dead step, where the loser of a board game learns its -1
                continue
            (seat, action), *_ = next(moves).items()
            assert seats[seat] == agent
            env.step(action)
        expected.append([returns[s] for s in seats])
        env.reset()
    assert next(moves, None) is None
    np.testing.assert_allclose(totals, expected)
    assert any(any(r) for r in expected), "no episode paid out: the test would prove nothing"


PARALLEL_GAMES = {
    "butterfly/pistonball-v6": {"max_cycles": 15, "n_pistons": 8},
    "butterfly/knights_archers_zombies-v11": {"max_cycles": 150, "spawn_delay": 2},
    "mpe2.simple_tag_v3": {"max_cycles": 25},
}


def _make_parallel(env_id: str, kwargs: dict) -> Any:
    if env_id == "mpe2.simple_tag_v3":
        return simple_tag_v3.parallel_env(**kwargs)
    return pettingzoo.make("parallel", env_id, **kwargs)


@pytest.mark.parametrize("env_id", sorted(PARALLEL_GAMES))
def test_parallel_rewards_sum_to_the_plain_loop_returns(env_id: str, random_legal: Any) -> None:
    kwargs = PARALLEL_GAMES[env_id]
    wrapped = wrappers.multiagent(_make_parallel(env_id, kwargs))
    taken, totals = _play_wrapped(wrapped, random_legal, EPISODES)
    seats = wrapped.possible_agents

    env = _make_parallel(env_id, kwargs)
    env.reset(seed=SEED)
    steps = iter(taken)
    expected = []
    for _ in range(EPISODES):
        returns = dict.fromkeys(seats, 0.0)
        while env.agents:
            joint = {seats[i]: a for i, a in next(steps).items()}
            assert set(joint) == set(env.agents)
            _, rewards, _, _, _ = env.step(joint)
            for agent, r in rewards.items():
                returns[agent] += r
        expected.append([returns[s] for s in seats])
        env.reset()
    assert next(steps, None) is None
    np.testing.assert_allclose(totals, expected)
    assert any(any(r) for r in expected)


def test_connect_four_loser_is_paid_in_the_step_that_ended_the_game() -> None:
    env = wrappers.multiagent("classic/connect_four-v3")
    assert env.possible_agents == ["player_0", "player_1"]
    obs, infos = env.reset(seed=0)
    # player_0 stacks column 0, player_1 column 1; player_0's fourth disc wins.
    for column in [0, 1, 0, 1, 0, 1]:
        obs, rewards, terminated, truncated, infos = env.step([column, column])
        assert rewards == [0.0, 0.0] and terminated == [False, False]
    assert infos[0]["is_active"] and not infos[1]["is_active"]
    obs, rewards, terminated, truncated, infos = env.step([0, 1])
    assert rewards == [1.0, -1.0]
    assert terminated == [True, True] and truncated == [False, False]
    assert [info["episode"]["return"] for info in infos] == [1.0, -1.0]
    assert [info["episode"]["length"] for info in infos] == [4, 3]
    # Each seat's last view of the board: channel 0 its own discs, 1 the other's.
    assert infos[0]["final_obs"].sum(axis=(0, 1)).tolist() == [4, 3]
    assert infos[1]["final_obs"].sum(axis=(0, 1)).tolist() == [3, 4]
    # Already the next game: the empty board, player_0 to move.
    assert infos[0]["is_active"] and not infos[1]["is_active"]
    assert not obs[0].any() and not obs[1].any()
    assert infos[0]["action_mask"].all()
