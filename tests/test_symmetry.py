"""Board symmetries: the built-in ones are true symmetries of the real games, models
that use them are exactly invariant, and the trainer fills them in (or refuses)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from pettingzoo.classic import connect_four_v3, tictactoe_v3

import league
from league.algos.ppo import PPOConfig
from league.config import TrainConfig
from league.errors import ConfigError
from league.models import ActorCritic, QNetwork
from league.symmetry import (
    SYMMETRY_MODES,
    as_config,
    env_symmetries,
    register_symmetries,
    unregister_symmetries,
)
from league.training.plan import EnvInfo, learner_specs

GAMES = {
    "connect_four_v3": (connect_four_v3, (6, 7, 2), 7),
    "tictactoe_v3": (tictactoe_v3, (3, 3, 2), 9),
}


def _spaces(name: str) -> tuple[spaces.Box, spaces.Discrete]:
    _, shape, n = GAMES[name]
    return spaces.Box(0, 1, shape, np.int8), spaces.Discrete(n)


@pytest.mark.parametrize("name", sorted(GAMES))
def test_built_in_symmetries_are_symmetries_of_the_real_game(name: str):
    module, shape, _ = GAMES[name]
    symmetries = env_symmetries(name, *_spaces(name))
    assert len(symmetries) == {"connect_four_v3": 1, "tictactoe_v3": 7}[name]
    rng = np.random.default_rng(0)
    for symmetry in symmetries:
        view = np.asarray(symmetry.obs)
        for game in range(10):
            # The same game twice: once as played, once with every move transformed.
            original, mirrored = module.env(), module.env()
            original.reset(seed=game)
            mirrored.reset(seed=game)
            while original.agents:
                obs, reward, term, trunc, _ = original.last()
                obs_m, reward_m, term_m, trunc_m, _ = mirrored.last()
                board = obs["observation"].reshape(-1)[view].reshape(shape)
                np.testing.assert_array_equal(obs_m["observation"], board)
                mask, mask_m = obs["action_mask"], obs_m["action_mask"]
                np.testing.assert_array_equal(mask_m[list(symmetry.action)], mask)
                assert (reward, term, trunc) == (reward_m, term_m, trunc_m)
                if term or trunc:
                    original.step(None)
                    mirrored.step(None)
                    continue
                move = int(rng.choice(np.flatnonzero(mask)))
                original.step(move)
                mirrored.step(symmetry.action[move])
            assert not mirrored.agents


@pytest.mark.parametrize("name", sorted(GAMES))
@pytest.mark.parametrize("kind", ["mlp", "board", "dqn"])
@pytest.mark.parametrize("mode", SYMMETRY_MODES)
def test_models_with_symmetries_are_exactly_invariant(name: str, kind: str, mode: str):
    obs_space, action_space = _spaces(name)
    symmetries = as_config(env_symmetries(name, obs_space, action_space))
    torch.manual_seed(0)
    if kind == "dqn":
        model = QNetwork(
            obs_space, action_space, (32, 32), symmetries=symmetries, symmetry_mode=mode
        )
    else:
        model = ActorCritic(
            obs_space,
            action_space,
            (32, 32),
            encoder=kind,
            symmetries=symmetries,
            symmetry_mode=mode,
        )
    for p in model.parameters():  # weights far from the near-uniform initial policy
        p.data.normal_(0, 0.5)
    obs = torch.randint(0, 2, (16, *obs_space.shape), dtype=torch.int8)

    def outputs(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if kind == "dqn":
            q = model(x)
            return q, q.max(-1).values
        dist, value = model._dist_and_value(x, None)
        return dist.logits.log_softmax(-1), value

    policy, value = outputs(obs)
    assert policy.std(-1).mean() > 0.1  # the test has something to compare
    for symmetry in env_symmetries(name, obs_space, action_space):
        moved = obs.reshape(16, -1)[:, list(symmetry.obs)].reshape(obs.shape)
        policy_m, value_m = outputs(moved)
        torch.testing.assert_close(policy_m[:, list(symmetry.action)], policy)
        torch.testing.assert_close(value_m, value)


def test_the_trainer_gives_learners_the_env_symmetries_when_asked():
    env = EnvInfo.probe("classic/connect_four-v3", measure=False)
    mixed = ["ppo", "a2c", "dqn"]
    on = learner_specs(TrainConfig(policies=mixed, symmetries=True), env)
    assert all(len(spec.config["symmetries"]) == 1 for spec in on)
    assert on[0].config["symmetries"][0][1] == [6, 5, 4, 3, 2, 1, 0]
    assert "symmetry_mode" not in on[0].config  # the algorithms' default: average
    average = learner_specs(TrainConfig(num_policies=1, symmetries="average"), env)
    assert average[0].config["symmetry_mode"] == "average"
    # Unset, learner_specs adds none: an env's preset fills it in make_plan (test_presets).
    assert "symmetries" not in learner_specs(TrainConfig(num_policies=1), env)[0].config
    with pytest.raises(ConfigError, match="use True, False, or one of"):
        TrainConfig(symmetries="mirror")
    off = learner_specs(TrainConfig(policies=mixed, symmetries=False), env)
    assert all("symmetries" not in spec.config for spec in off)
    # A policy's own setting wins over the run's.
    own = learner_specs(
        TrainConfig(policies=[{"algo": "ppo", "symmetries": None}], symmetries=True), env
    )
    assert own[0].config["symmetries"] is None
    # An env without symmetries: none unless asked, refused when asked.
    rps = EnvInfo.probe("classic/rps-v2", measure=False)
    assert "symmetries" not in learner_specs(TrainConfig(), rps)[0].config
    with pytest.raises(ConfigError, match="register_symmetries"):
        learner_specs(TrainConfig(num_policies=1, symmetries=True), rps)


def test_registered_symmetries_replace_the_built_in_ones():
    env = EnvInfo.probe("classic/tictactoe-v3", measure=False)
    mirror = env_symmetries("tictactoe_v3", *_spaces("tictactoe_v3"))[3]  # one of the seven
    register_symmetries("tictactoe_v3", lambda obs_space, action_space: [mirror])
    try:
        spec = learner_specs(TrainConfig(symmetries=True), env)[0]
        assert spec.config["symmetries"] == as_config([mirror])
        register_symmetries("tictactoe_v3", lambda obs_space, action_space: None)
        with pytest.raises(ConfigError, match="has no symmetries for its"):
            learner_specs(TrainConfig(symmetries=True), env)
    finally:
        unregister_symmetries("tictactoe_v3")
    assert len(learner_specs(TrainConfig(symmetries=True), env)[0].config["symmetries"]) == 7


def test_a_symmetry_that_is_no_permutation_is_refused_before_training(tmp_path):
    bad = {"algo": "ppo", "symmetries": [[list(range(84)), [0, 1, 2, 3, 4, 5, 5]]]}
    with pytest.raises(ConfigError, match=r"action indices must be a permutation of 0\.\.6"):
        league.train(
            "classic/connect_four-v3", policies=[bad], total_steps=1000, run_dir=str(tmp_path)
        )
    assert not (tmp_path / "checkpoints").exists()
    with pytest.raises(ConfigError, match="pairs of integers"):
        PPOConfig(symmetries=[1, 2])
