"""The contract's shape on real envs: heterogeneous seats and padding, nested
spaces flattened to a documented layout, the action kinds, gymnasium envs as
one seat, pass-through, and seeding (docs/contract.md)."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import pettingzoo
import pytest
from gymnasium import spaces
from mpe2 import simple_speaker_listener_v4, simple_spread_v3, simple_tag_v3

import wrappers


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        ("classic/connect_four-v3", wrappers.AECMultiAgentEnv),
        ("pettingzoo.classic.connect_four_v3", wrappers.AECMultiAgentEnv),
        ("classic/rps-v2", wrappers.ParallelMultiAgentEnv),  # parallel preferred when both exist
        (lambda: pettingzoo.make("aec", "classic/rps-v2"), wrappers.AECMultiAgentEnv),
        (simple_tag_v3, wrappers.ParallelMultiAgentEnv),  # a module: its parallel_env()
        ("mpe2.simple_tag_v3:env", wrappers.AECMultiAgentEnv),
        ("gymnasium.envs.classic_control:CartPoleEnv", wrappers.GymMultiAgentEnv),
    ],
    ids=[
        "registry-id",
        "import-path",
        "both-kinds",
        "callable",
        "module",
        "path-attr",
        "gym-class",
    ],
)
def test_every_way_to_name_an_env(make: Any, kind: type) -> None:
    env = wrappers.multiagent(make)
    assert type(env) is kind
    obs, infos = env.reset(seed=0)
    assert len(obs) == len(infos) == env.num_agents


def test_simple_tag_keeps_each_seats_own_spaces() -> None:
    env = wrappers.multiagent(simple_tag_v3.parallel_env, env_kwargs={"max_cycles": 5})
    assert env.possible_agents == ["adversary_0", "adversary_1", "adversary_2", "agent_0"]
    assert [s.shape for s in env.observation_spaces] == [(16,), (16,), (16,), (14,)]
    assert env.roles == ["adversary"] * 3 + ["agent"]
    assert env.observation_space is None and env.action_space is None
    obs, _ = env.reset(seed=0)
    assert [o.shape for o in obs] == [(16,), (16,), (16,), (14,)]


def test_simple_tag_padded_to_one_space() -> None:
    plain = wrappers.multiagent(simple_tag_v3.parallel_env, env_kwargs={"max_cycles": 5})
    padded = wrappers.multiagent(simple_tag_v3.parallel_env, pad=True, env_kwargs={"max_cycles": 5})
    assert padded.observation_space is not None
    assert padded.observation_space.shape == (16,)
    assert padded.observation_spaces == [padded.observation_space] * 4
    assert len(set(padded.roles)) == 1
    unpadded, _ = plain.reset(seed=5)
    obs, _ = padded.reset(seed=5)
    for step in range(3):
        for o, u in zip(obs[:3], unpadded[:3], strict=True):
            np.testing.assert_array_equal(o, u)
        np.testing.assert_array_equal(obs[3][:14], unpadded[3])
        assert not obs[3][14:].any()
        unpadded, *_ = plain.step([step, 1, 2, 3])
        obs, *_ = padded.step([step, 1, 2, 3])


def test_speaker_listener_padded_actions_are_masked() -> None:
    plain = wrappers.multiagent(simple_speaker_listener_v4.parallel_env)
    assert plain.possible_agents == ["speaker_0", "listener_0"]
    assert plain.action_spaces == [spaces.Discrete(3), spaces.Discrete(5)]
    env = wrappers.multiagent(
        simple_speaker_listener_v4.parallel_env, pad=True, env_kwargs={"max_cycles": 5}
    )
    assert env.action_space == spaces.Discrete(5)
    assert env.observation_space.shape == (11,)
    obs, infos = env.reset(seed=0)
    assert obs[0].shape == (11,) and obs[0][:3].any() and not obs[0][3:].any()
    assert infos[0]["action_mask"].tolist() == [True, True, True, False, False]
    assert infos[1]["action_mask"].all()
    with pytest.raises(wrappers.ActionError, match=r"seat 'speaker_0': action 4 is illegal"):
        env.step([4, 4])
    *_, infos = env.step([2, 4])
    assert infos[0]["action_mask"].tolist() == [True, True, True, False, False]


def test_padded_actions_are_refused_even_when_the_env_rules_on_illegal_ones() -> None:
    env = wrappers.multiagent(
        simple_speaker_listener_v4.parallel_env, pad=True, illegal_actions="env"
    )
    env.reset(seed=0)
    with pytest.raises(wrappers.ActionError, match=r"seat 'speaker_0': action 3 is illegal"):
        env.step([3, 0])


def test_action_mask_given_in_info_is_used_and_padded(tiny_env: Any) -> None:
    masks = {"small_0": np.array([1, 0, 1]), "big_0": np.array([0, 1, 1, 1, 0])}
    actions = {"small_0": spaces.Discrete(3), "big_0": spaces.Discrete(5)}
    box = spaces.Box(0.0, 1.0, (2,), np.float32)

    def make() -> Any:
        return tiny_env(box, actions, np.zeros(2, np.float32), action_masks=masks)

    env = wrappers.multiagent(make)
    _, infos = env.reset()
    assert infos[0]["action_mask"].tolist() == [True, False, True]
    with pytest.raises(wrappers.ActionError, match=r"seat 'small_0': action 1 is illegal"):
        env.step([1, 1])
    padded = wrappers.multiagent(make, pad=True)
    _, infos = padded.reset()
    assert infos[0]["action_mask"].tolist() == [True, False, True, False, False]
    assert infos[1]["action_mask"].tolist() == [False, True, True, True, False]
    with pytest.raises(wrappers.ActionError, match=r"seat 'small_0': action 3 is illegal"):
        padded.step([3, 1])


NESTED = spaces.Dict(
    {
        "pos": spaces.Box(-1.0, 1.0, (2,), np.float32),
        "cell": spaces.Discrete(3),
        "pair": spaces.Tuple((spaces.Discrete(2, start=1), spaces.MultiBinary(2))),
        "dice": spaces.MultiDiscrete([2, 3]),
    }
)
NESTED_VALUE = {
    "pos": np.array([0.5, -0.25], np.float32),
    "cell": 2,
    "pair": (2, np.array([1, 0], np.int8)),
    "dice": np.array([1, 0]),
}
ACTIONS = {
    "discrete_0": spaces.Discrete(4),
    "multi_0": spaces.MultiDiscrete([2, 3]),
    "box_0": spaces.Box(-1.0, 1.0, (2,), np.float32),
}


def test_nested_observation_flattens_to_the_documented_layout(tiny_env: Any) -> None:
    env = wrappers.multiagent(tiny_env(NESTED, ACTIONS, NESTED_VALUE))
    # Dict keys sorted (cell, dice, pair, pos); Discrete and MultiDiscrete one-hot
    # (counted from `start`), MultiBinary as is, Box raveled.
    cell, dice, pair, pos = [0, 0, 1], [0, 1, 1, 0, 0], [0, 1, 1, 0], [0.5, -0.25]
    expected = [*cell, *dice, *pair, *pos]
    box = spaces.Box(np.array([0.0] * 12 + [-1.0, -1.0]), np.ones(14), (14,), np.float64)
    assert env.observation_spaces == [box] * 3
    obs, _ = env.reset()
    for o in obs:
        assert o.dtype == np.float64
        assert o.tolist() == expected
    assert env.roles == ["discrete", "multi", "box"]


def test_discrete_multidiscrete_and_box_actions_reach_the_env(tiny_env: Any) -> None:
    raw = tiny_env(NESTED, ACTIONS, NESTED_VALUE)
    env = wrappers.multiagent(raw)
    env.reset()
    env.step([np.int64(3), [1, 2], np.array([0.5, -1.0])])
    (given,) = raw.received
    assert type(given["discrete_0"]) is int and given["discrete_0"] == 3
    assert given["multi_0"].tolist() == [1, 2] and given["multi_0"].dtype == np.int64
    assert given["box_0"].tolist() == [0.5, -1.0] and given["box_0"].dtype == np.float32


def test_cartpole_is_one_seat() -> None:
    env = wrappers.multiagent("CartPole-v1")
    assert isinstance(env, wrappers.GymMultiAgentEnv)
    assert env.num_agents == 1 and env.possible_agents == ["agent_0"]
    assert env.observation_space == gymnasium.make("CartPole-v1").observation_space
    assert env.action_space == spaces.Discrete(2)
    obs, infos = env.reset(seed=0)
    assert infos[0]["is_active"] and infos[0]["action_mask"].all()
    steps = 0
    while True:
        obs, rewards, terminated, truncated, infos = env.step([1])  # push right: falls fast
        steps += 1
        assert rewards == [1.0] and infos[0]["is_active"] and truncated == [False]
        if terminated[0]:
            break
        assert "final_obs" not in infos[0]
    assert infos[0]["episode"] == {"return": float(steps), "length": steps}
    assert abs(infos[0]["final_obs"][2]) > 0.2  # the pole fell past CartPole's limit
    assert abs(obs[0][2]) < 0.05  # the next episode starts upright


def test_gymnasium_env_instance_is_one_seat() -> None:
    env = wrappers.multiagent(gymnasium.make("CartPole-v1"))
    assert env.num_agents == 1
    obs, _ = env.reset(seed=0)
    assert obs[0].shape == (4,)


def test_list_based_env_passes_through_unchanged() -> None:
    env = wrappers.multiagent("classic/tictactoe-v3")
    assert wrappers.multiagent(env) is env
    assert wrappers.multiagent(lambda: env) is env

    class OwnMultiAgentEnv:
        is_multiagent = True
        num_agents = 2

    own = OwnMultiAgentEnv()
    assert wrappers.multiagent(own) is own


def test_roles_can_be_given() -> None:
    env = wrappers.multiagent(
        "classic/connect_four-v3", roles={"player_0": "first", "player_1": "second"}
    )
    assert env.roles == ["first", "second"]


def _rollout(env: Any, seed: int, steps: int) -> tuple[list, list]:
    """Observations and rewards of `steps` steps, with the same actions on every call."""
    obs, _ = env.reset(seed=seed)
    seen, paid = [obs], []
    rng = np.random.default_rng(0)
    for _ in range(steps):
        actions = [
            rng.uniform(-1, 1, s.shape).astype(s.dtype)
            if isinstance(s, spaces.Box)
            else int(rng.integers(s.n))
            for s in env.action_spaces
        ]
        obs, rewards, *_ = env.step(actions)
        seen.append(obs)
        paid.append(rewards)
    return seen, paid


SEEDED = {
    "butterfly/pistonball-v6": lambda: wrappers.multiagent(
        "butterfly/pistonball-v6", env_kwargs={"max_cycles": 6, "n_pistons": 4}
    ),
    "mpe2.simple_spread_v3": lambda: wrappers.multiagent(
        simple_spread_v3.parallel_env, env_kwargs={"max_cycles": 6}
    ),
}


def _differ(obs_a: list[np.ndarray], obs_b: list[np.ndarray]) -> bool:
    return any(not np.array_equal(a, b) for a, b in zip(obs_a, obs_b, strict=True))


@pytest.mark.parametrize("name", sorted(SEEDED))
def test_same_seed_same_episodes_other_seed_other_episodes(name: str) -> None:
    # 14 steps cross two auto-resets (6-step episodes): the seed carries over.
    env = SEEDED[name]()
    seen, paid = _rollout(env, seed=3, steps=14)
    for again in (env, SEEDED[name]()):  # the same env reset again, and a new one
        seen_again, paid_again = _rollout(again, seed=3, steps=14)
        assert not any(map(_differ, seen, seen_again))
        assert paid_again == paid
    # Auto-reset draws a new start rather than replaying the seeded one.
    assert _differ(seen[0], seen[6]) and _differ(seen[6], seen[12])
    other, _ = _rollout(env, seed=4, steps=0)
    assert _differ(seen[0], other[0])


def test_a_list_based_env_class_is_built_not_returned():
    class Listed:
        is_multiagent = True
        num_agents = 1

    env = wrappers.multiagent(Listed)
    assert isinstance(env, Listed)


def test_aec_seats_removed_without_a_dead_step_are_closed_as_truncated():
    from pettingzoo.classic import tictactoe_v3
    from pettingzoo.utils import BaseWrapper

    class EndsAbruptly(BaseWrapper):
        """Ends the whole game after the third move by emptying `agents` at once."""

        def reset(self, seed=None, options=None):
            super().reset(seed=seed, options=options)
            self.moves = 0

        def step(self, action):
            super().step(action)
            self.moves += 1
            if self.moves == 3:
                self.env.unwrapped.agents = []

    env = wrappers.multiagent(lambda: EndsAbruptly(tictactoe_v3.env()))
    env.reset(seed=0)
    for move in (0, 1):
        *_, infos = env.step([move, move])
        assert not env.episode_ended
    _, _, terminated, truncated, infos = env.step([2, 2])
    assert env.episode_ended
    assert truncated == [True, True] and terminated == [False, False]
    assert all("final_obs" in i and "episode" in i for i in infos)
