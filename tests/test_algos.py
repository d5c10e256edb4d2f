"""PPO, A2C and DQN against real gymnasium envs: they learn, checkpoints resume
exactly, frozen copies stay frozen, NaN losses roll back, and the registry and
configs fail clearly."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import CountingPool

from league.algos import (
    A2CConfig,
    Algorithm,
    DQNConfig,
    NonFiniteLossError,
    PPOConfig,
    compute_gae,
    make_algorithm,
)

torch.set_num_threads(1)


def frozen_lake_mask(state: int) -> np.ndarray:
    """Moves that do not bump into the wall of the 4x4 FrozenLake grid
    (actions: left, down, right, up)."""
    row, col = divmod(int(state), 4)
    return np.array([col > 0, row < 3, col < 3, row > 0])


class Collector:
    """A tiny single-agent collector: steps `num_envs` copies of a gymnasium env
    with an algorithm and returns learn() batches, one time-ordered segment per env."""

    def __init__(self, env_id: str, num_envs: int, seed: int, mask_fn=None, **env_kwargs):
        self.envs = [gym.make(env_id, **env_kwargs) for _ in range(num_envs)]
        self.obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(self.envs)]
        self.mask_fn = mask_fn
        self.running_returns = np.zeros(num_envs)
        self.episode_returns: list[float] = []

    def masks(self, observations) -> np.ndarray | None:
        return None if self.mask_fn is None else np.stack([self.mask_fn(o) for o in observations])

    def collect(self, algo: Algorithm, steps: int) -> dict[str, np.ndarray]:
        num_envs = len(self.envs)
        columns: dict[str, list] = {}

        def record(**values):
            for key, value in values.items():
                if value is not None:
                    columns.setdefault(key, []).append(np.asarray(value))

        for _ in range(steps):
            obs, mask = np.stack(self.obs), self.masks(self.obs)
            actions, extras = algo.act(obs, mask)
            steps_out = [env.step(a) for env, a in zip(self.envs, actions, strict=True)]
            next_obs, rewards, terminated, truncated, _ = map(list, zip(*steps_out, strict=True))
            record(
                obs=obs,
                action_mask=mask,
                actions=actions,
                logprobs=extras.get("logprob", np.zeros(num_envs, np.float32)),
                values=extras["value"],
                rewards=np.float32(rewards),
                terminated=terminated,
                truncated=truncated,
                # The env's last observation of an episode (its final_obs) before reset.
                next_obs=np.stack(next_obs),
                next_action_mask=self.masks(next_obs),
            )
            for i, env in enumerate(self.envs):
                self.running_returns[i] += rewards[i]
                self.obs[i] = next_obs[i]
                if terminated[i] or truncated[i]:
                    self.episode_returns.append(self.running_returns[i])
                    self.running_returns[i] = 0.0
                    self.obs[i] = env.reset()[0]

        # (steps, envs, ...) -> (envs * steps, ...): each env's segment in time order.
        batch = {
            key: np.stack(rows).swapaxes(0, 1).reshape(num_envs * steps, *rows[0].shape[1:])
            for key, rows in columns.items()
        }
        segment_end = (batch["terminated"] | batch["truncated"]).reshape(num_envs, steps)
        segment_end[:, -1] = True  # the rollout cut
        batch["segment_end"] = segment_end.reshape(-1)
        batch["next_values"] = algo.value(batch["next_obs"])
        batch["versions"] = np.full(num_envs * steps, algo.version)
        return batch


def evaluate(algo, env_id: str, episodes: int, mask_fn=None, **env_kwargs) -> float:
    """Mean return of the deterministic policy."""
    env = gym.make(env_id, **env_kwargs)
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=10_000 + episode)
        done, total = False, 0.0
        while not done:
            mask = None if mask_fn is None else mask_fn(obs)[None]
            action, _ = algo.act(np.asarray(obs)[None], mask, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action[0])
            total += reward
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def make(name: str, env_id: str, config=None, seed: int = 0, **env_kwargs) -> Algorithm:
    env = gym.make(env_id, **env_kwargs)
    return make_algorithm(name, env.observation_space, env.action_space, config, seed=seed)


# ---------------------------------------------------------------------------
# Learning (random CartPole scores about 22; random FrozenLake reaches the goal
# in about 1.5% of episodes)


def test_ppo_learns_cartpole():
    algo = make("ppo", "CartPole-v1", {"learning_rate": 2.5e-3})
    collector = Collector("CartPole-v1", num_envs=4, seed=0)
    for _ in range(30):
        stats = algo.learn(collector.collect(algo, steps=128))
    assert algo.version == 30
    assert {"policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac"} <= stats.keys()
    assert {"explained_variance", "grad_norm"} <= stats.keys()
    assert evaluate(algo, "CartPole-v1", episodes=5) > 120


def test_a2c_learns_cartpole():
    algo = make("a2c", "CartPole-v1", {"learning_rate": 1e-3})
    collector = Collector("CartPole-v1", num_envs=8, seed=0)
    for _ in range(700):
        stats = algo.learn(collector.collect(algo, steps=5))
    assert {"policy_loss", "value_loss", "entropy", "explained_variance"} <= stats.keys()
    assert np.mean(collector.episode_returns[-20:]) > 80
    assert evaluate(algo, "CartPole-v1", episodes=5) > 100


@pytest.mark.parametrize("double_dqn", [False, True])
def test_dqn_learns_frozen_lake_with_action_masks(double_dqn):
    config = DQNConfig(
        double_dqn=double_dqn,
        learning_rate=1e-3,
        buffer_size=5_000,
        batch_size=64,
        gamma=0.9,
        learning_starts=200,
        exploration_steps=2_000,
        target_update_interval=50,
    )
    env_kwargs = {"is_slippery": False}
    algo = make("dqn", "FrozenLake-v1", config, **env_kwargs)
    collector = Collector("FrozenLake-v1", 4, seed=0, mask_fn=frozen_lake_mask, **env_kwargs)
    for _ in range(25):
        batch = collector.collect(algo, steps=32)
        assert batch["action_mask"][np.arange(len(batch["actions"])), batch["actions"]].all()
        stats = algo.learn(batch)
    assert stats["epsilon"] == pytest.approx(0.05)
    assert {"td_loss", "q_values"} <= stats.keys()
    assert np.mean(collector.episode_returns[-20:]) > 0.5
    assert evaluate(algo, "FrozenLake-v1", 3, frozen_lake_mask, **env_kwargs) == 1.0


def test_dqn_polyak_target_update():
    config = {"learning_starts": 0, "gradient_steps": 1, "target_update_interval": 1, "tau": 0.25}
    algo = make("dqn", "FrozenLake-v1", config, is_slippery=False)
    collector = Collector("FrozenLake-v1", 2, seed=0, is_slippery=False)
    batch = collector.collect(algo, steps=8)
    target_before = [p.clone() for p in algo.target_model.parameters()]
    algo.learn(batch)
    for target, old, online in zip(
        algo.target_model.parameters(), target_before, algo.model.parameters(), strict=True
    ):
        torch.testing.assert_close(target, 0.25 * online + 0.75 * old)


# ---------------------------------------------------------------------------
# GAE


def test_compute_gae_matches_a_hand_computed_example():
    # Two segments: rows 0-1 (the episode terminates at row 1), rows 2-3 (cut
    # after row 3, so row 3 bootstraps from its next value).
    rewards = np.array([1.0, 0.0, 2.0, 1.0])
    values = np.array([0.5, 0.4, 0.3, 0.2])
    next_values = np.array([0.4, 0.9, 0.2, 0.7])  # 0.9 is ignored: row 1 terminated
    terminated = np.array([False, True, False, False])
    segment_end = np.array([False, True, False, True])
    gamma, lam = 0.9, 0.8
    # delta_3 = 1 + 0.9 * 0.7 - 0.2 = 1.43                 A_3 = 1.43
    # delta_2 = 2 + 0.9 * 0.2 - 0.3 = 1.88                 A_2 = 1.88 + 0.72 * 1.43 = 2.9096
    # delta_1 = 0 + 0 - 0.4 = -0.4                         A_1 = -0.4
    # delta_0 = 1 + 0.9 * 0.4 - 0.5 = 0.86                 A_0 = 0.86 + 0.72 * -0.4 = 0.572
    expected = np.array([0.572, -0.4, 2.9096, 1.43])
    advantages, returns = compute_gae(
        rewards, values, next_values, terminated, segment_end, gamma, lam
    )
    np.testing.assert_allclose(advantages, expected, rtol=1e-6)
    np.testing.assert_allclose(returns, expected + values, rtol=1e-6)
    assert advantages.dtype == np.float32

    # The last row ends its segment even when the flag says otherwise.
    segment_end[-1] = False
    again, _ = compute_gae(rewards, values, next_values, terminated, segment_end, gamma, lam)
    np.testing.assert_allclose(again, expected, rtol=1e-6)


# ---------------------------------------------------------------------------
# Checkpoints and frozen copies

SETUPS = {
    "ppo": ("CartPole-v1", {"update_epochs": 2}, {}, None),
    "a2c": ("CartPole-v1", None, {}, None),
    "dqn": (
        "FrozenLake-v1",
        {"learning_starts": 32, "batch_size": 16, "gradient_steps": 4, "target_update_interval": 3},
        {"is_slippery": False},
        frozen_lake_mask,
    ),
}


def setup(name: str, seed: int = 0):
    env_id, config, env_kwargs, mask_fn = SETUPS[name]
    algo = make(name, env_id, config, seed=seed, **env_kwargs)
    collector = Collector(env_id, 2, seed=0, mask_fn=mask_fn, **env_kwargs)
    return algo, collector


def parameters(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.state_dict().values()]


def assert_same(left: list[torch.Tensor], right: list[torch.Tensor]) -> None:
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["ppo", "a2c", "dqn"])
def test_state_dict_round_trip_resumes_exactly(name, tmp_path):
    algo, collector = setup(name)
    for _ in range(3):
        algo.learn(collector.collect(algo, steps=24))
    batch = collector.collect(algo, steps=24)
    torch.save(algo.state_dict(), tmp_path / "algo.pt")
    resumed, _ = setup(name, seed=123)
    resumed.load_state_dict(torch.load(tmp_path / "algo.pt", weights_only=True))
    assert resumed.version == algo.version == 3

    obs, mask = batch["obs"], batch.get("action_mask")
    actions, extras = algo.act(obs, mask)
    resumed_actions, resumed_extras = resumed.act(obs, mask)
    np.testing.assert_array_equal(actions, resumed_actions)
    for key in extras:
        np.testing.assert_array_equal(extras[key], resumed_extras[key])

    assert algo.learn(batch) == resumed.learn(batch)
    assert_same(parameters(algo.model), parameters(resumed.model))
    np.testing.assert_array_equal(algo.act(obs, mask)[0], resumed.act(obs, mask)[0])


@pytest.mark.parametrize("name", ["ppo", "a2c", "dqn"])
def test_an_update_is_bitwise_the_same_with_or_without_a_second_thread(name):
    """Sync mode hands an update a second thread when timing finds it faster: each
    minibatch's gradient comes from the same two halves either way, so a seed repeats
    its run whatever the timing picks."""
    pool = CountingPool()
    runs = []
    for second in (None, pool):
        algo, collector = setup(name)
        stats = [algo.learn(collector.collect(algo, steps=24), pool=second) for _ in range(3)]
        moments = [v for s in algo.optimizer.state.values() for v in s.values()]
        runs.append((stats, parameters(algo.model), moments))
    pool.shutdown()
    assert pool.submitted > 0
    assert runs[0][0] == runs[1][0]  # every statistic, exactly
    assert_same(runs[0][1], runs[1][1])
    assert_same(runs[0][2], runs[1][2])


@pytest.mark.parametrize("name", ["ppo", "a2c", "dqn"])
def test_frozen_copy_does_not_change_when_the_parent_learns(name, tmp_path):
    algo, collector = setup(name)
    algo.learn(collector.collect(algo, steps=24))
    frozen = algo.frozen()
    assert frozen.version == 1 and not frozen.model.training
    assert not hasattr(frozen, "optimizer")
    before = parameters(frozen.model)
    batch = collector.collect(algo, steps=24)
    greedy_before, _ = frozen.act(batch["obs"], batch.get("action_mask"), deterministic=True)
    for _ in range(3):
        algo.learn(collector.collect(algo, steps=24))
    assert_same(parameters(frozen.model), before)
    greedy_after, _ = frozen.act(batch["obs"], batch.get("action_mask"), deterministic=True)
    np.testing.assert_array_equal(greedy_before, greedy_after)
    assert not all(torch.equal(a, b) for a, b in zip(before, parameters(algo.model), strict=True))

    values = frozen.value(batch["obs"])
    assert values.shape == (len(batch["obs"]),)
    torch.save(frozen.state_dict(), tmp_path / "frozen.pt")
    other = algo.frozen()
    other.load_state_dict(torch.load(tmp_path / "frozen.pt", weights_only=True))
    assert other.version == 1
    np.testing.assert_array_equal(other.value(batch["obs"]), values)
    np.testing.assert_array_equal(
        other.act(batch["obs"], batch.get("action_mask"))[0],
        frozen.act(batch["obs"], batch.get("action_mask"))[0],
    )


# ---------------------------------------------------------------------------
# Non-finite losses


@pytest.mark.parametrize("name", ["ppo", "a2c", "dqn"])
def test_nan_in_batch_raises_and_restores_model_and_optimizer(name):
    algo, collector = setup(name)
    algo.learn(collector.collect(algo, steps=24))
    batch = collector.collect(algo, steps=24)
    if name == "ppo":
        # A NaN observation in the last minibatch of the first epoch: the three
        # optimizer steps taken before it is met must be undone.
        shuffle = torch.Generator().set_state(algo.learn_generator.get_state())
        batch["obs"][torch.randperm(len(batch["obs"]), generator=shuffle)[-1]] = np.nan
    else:
        # DQN: the NaN transitions must also leave the replay buffer.
        batch["rewards"][:] = np.nan
    model_before = parameters(algo.model)
    optimizer_before = [
        v.clone() for s in algo.optimizer.state.values() for v in s.values() if torch.is_tensor(v)
    ]
    size_before = algo.replay.size if name == "dqn" else None

    with pytest.raises(NonFiniteLossError, match=rf"{name.upper()}: non-finite \w+"):
        algo.learn(batch)

    assert algo.version == 1
    assert_same(parameters(algo.model), model_before)
    optimizer_after = [
        v for s in algo.optimizer.state.values() for v in s.values() if torch.is_tensor(v)
    ]
    assert_same(optimizer_after, optimizer_before)
    if name == "dqn":
        assert algo.replay.size == size_before
        assert np.isfinite(algo.replay.data["rewards"]).all()
    # Training goes on with clean data.
    algo.learn(collector.collect(algo, steps=24))
    assert algo.version == 2


def test_nan_weights_raise_with_the_loss_term():
    algo, collector = setup("ppo")
    batch = collector.collect(algo, steps=8)
    with torch.no_grad():
        algo.model.critic_head.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match="value_loss"):
        algo.learn(batch)


# ---------------------------------------------------------------------------
# Registry and configs


def test_unknown_algorithm_lists_valid_names():
    env = gym.make("CartPole-v1")
    with pytest.raises(ValueError, match=r"unknown algorithm 'sac'.*ppo, a2c, dqn"):
        make_algorithm("sac", env.observation_space, env.action_space)


def test_unknown_config_key_is_named():
    env = gym.make("CartPole-v1")
    with pytest.raises(ValueError, match=r"unknown PPO config key 'lr'.*learning_rate"):
        make_algorithm("ppo", env.observation_space, env.action_space, {"lr": 1e-3})
    with pytest.raises(TypeError, match="PPOConfig"):
        make_algorithm("ppo", env.observation_space, env.action_space, DQNConfig())
    with pytest.raises(ValueError, match="gamma"):
        make_algorithm("a2c", env.observation_space, env.action_space, {"gamma": 2.0})


@pytest.mark.parametrize(
    ("name", "config_class"), [("ppo", PPOConfig), ("a2c", A2CConfig), ("dqn", DQNConfig)]
)
def test_configs_are_plain_data(name, config_class):
    env = gym.make("CartPole-v1")
    algo = make_algorithm(name, env.observation_space, env.action_space)
    assert algo.name == name and algo.version == 0
    assert algo.on_policy == (name != "dqn")
    assert isinstance(algo.config, config_class)
    as_dict = dataclasses.asdict(algo.config)
    # A config read back from JSON (tuples become lists) is the same config.
    as_dict["hidden_sizes"] = list(as_dict["hidden_sizes"])
    again = make_algorithm(name, env.observation_space, env.action_space, as_dict)
    assert again.config == algo.config
