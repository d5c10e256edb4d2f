"""Stacked PPO learns exactly as separate PPO learners do, and its bank acts as they do."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import CountingPool
from gymnasium import spaces

from league.algos import PPO, make_algorithm
from league.algos.stacked import PolicyBank, StackedPPO
from league.symmetry import as_config, env_symmetries

BOARD = spaces.Box(0, 1, (6, 7, 2), np.int8)  # connect four
ACTIONS = spaces.Discrete(7)
B = 256


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _batch(rng: np.random.Generator, space: spaces.Space = BOARD, n: int = B) -> dict:
    mask = rng.random((n, 7)) < 0.7
    mask[np.arange(n), rng.integers(0, 7, n)] = True
    actions = np.array([rng.choice(np.flatnonzero(m)) for m in mask])
    segment_end = rng.random(n) < 0.1
    segment_end[-1] = True
    return {
        "obs": rng.integers(0, 2, (n, *space.shape)).astype(space.dtype),
        "action_mask": mask,
        "actions": actions,
        "logprobs": np.log(1 / mask.sum(1)).astype(np.float32) + rng.normal(0, 0.05, n),
        "values": rng.normal(0, 0.5, n).astype(np.float32),
        "rewards": rng.choice([-1.0, 0.0, 1.0], n).astype(np.float32),
        "terminated": segment_end & (rng.random(n) < 0.5),
        "next_values": rng.normal(0, 0.5, n).astype(np.float32),
        "segment_end": segment_end,
    }


CONFIGS = [
    {"hidden_sizes": [64, 64], "learning_rate": 1e-3, "ent_coef": 0.1},
    {"hidden_sizes": [64, 64], "learning_rate": 3e-4, "ent_coef": 0.01, "clip_coef": 0.1},
    {"hidden_sizes": [64, 64], "learning_rate": 2e-3, "gamma": 0.9, "max_grad_norm": 0.1},
]
SEEDS = [3, 11, 42]


def _assert_same_learner(stack: StackedPPO, member: int, alone: PPO) -> None:
    mine, theirs = stack.member_state_dict(member), alone.state_dict()
    assert mine["version"] == theirs["version"]
    for name, tensor in theirs["model"].items():
        torch.testing.assert_close(mine["model"][name], tensor, rtol=1e-4, atol=1e-6)
    for key, moments in theirs["optimizer"]["state"].items():
        for name, value in moments.items():
            got = mine["optimizer"]["state"][key][name]
            torch.testing.assert_close(got, value, rtol=1e-4, atol=1e-8, msg=f"{key} {name}")
    assert torch.equal(mine["learn_generator"], theirs["learn_generator"])


def test_a_stacked_update_equals_separate_updates():
    space = BOARD
    rng = np.random.default_rng(0)
    stack = StackedPPO(space, ACTIONS, CONFIGS, seeds=SEEDS)
    alone = [PPO(space, ACTIONS, c, seed=s) for c, s in zip(CONFIGS, SEEDS, strict=True)]
    for m in range(3):  # the same starting point, seed for seed
        _assert_same_learner(stack, m, alone[m])
    for _ in range(2):
        batches = {m: _batch(rng, space) for m in range(3)}
        results = stack.learn(batches)
        for m in range(3):
            stats = alone[m].learn(batches[m])
            _assert_same_learner(stack, m, alone[m])
            for key, value in stats.items():
                assert results[m][key] == pytest.approx(value, rel=1e-3, abs=1e-6), key
    # Only some members have a batch: the others do not move (Adam state included).
    before = stack.member_state_dict(1)
    batches = {0: _batch(rng, space), 2: _batch(rng, space)}
    stack.learn(batches)
    for m in (0, 2):
        alone[m].learn(batches[m])
        _assert_same_learner(stack, m, alone[m])
    after = stack.member_state_dict(1)
    for name, tensor in before["model"].items():
        assert torch.equal(after["model"][name], tensor)
    assert after["optimizer"]["state"][0]["step"] == before["optimizer"]["state"][0]["step"]


def test_board_encoders_symmetries_and_continuous_actions_stack_exactly_too():
    rng = np.random.default_rng(4)
    board = [{**c, "encoder": "board"} for c in CONFIGS]
    continuous = spaces.Box(-1.0, 1.0, (2,), np.float32)
    vector = spaces.Box(-5.0, 5.0, (10,), np.float32)
    mirror = as_config(env_symmetries("connect_four_v3", BOARD, ACTIONS))
    columns = [{**c, "column_head": True} for c in board]
    support = [{**c, "board_support": True} for c in board]
    one_body = [{**c, "shared_body": True} for c in board]
    one_body_columns = [{**c, "shared_body": True} for c in columns]
    cases = [(BOARD, ACTIONS, board), (vector, continuous, CONFIGS), (BOARD, ACTIONS, columns)]
    cases.append((vector, continuous, [{**c, "shared_body": True} for c in CONFIGS]))
    for mode in ("canonical", "average"):
        for configs in (board, columns, support, one_body, one_body_columns):
            symmetric = [{**c, "symmetries": mirror, "symmetry_mode": mode} for c in configs]
            cases.append((BOARD, ACTIONS, symmetric))
    for obs_space, action_space, configs in cases:
        stack = StackedPPO(obs_space, action_space, configs, seeds=SEEDS)
        alone = [
            PPO(obs_space, action_space, c, seed=s) for c, s in zip(configs, SEEDS, strict=True)
        ]
        batches = {m: _batch(rng, obs_space) for m in range(3)}
        if isinstance(action_space, spaces.Box):
            for batch in batches.values():
                del batch["action_mask"]
                batch["actions"] = rng.uniform(-1, 1, (B, 2)).astype(np.float32)
                batch["obs"] = rng.normal(0, 1, (B, 10)).astype(np.float32)
                batch["logprobs"] = rng.normal(-2, 0.1, B).astype(np.float32)
        stack.learn(batches)
        for m in range(3):
            alone[m].learn(batches[m])
            _assert_same_learner(stack, m, alone[m])


@pytest.mark.parametrize("share_trunk", [False, True])
def test_an_update_is_bitwise_the_same_with_or_without_a_second_thread(share_trunk: bool):
    """Sync mode's updates use a second thread when timing finds it faster: a seed
    repeats its run only if that choice changes no number."""
    mirror = as_config(env_symmetries("connect_four_v3", BOARD, ACTIONS))
    # Connect four's preset (board CNN, the mirror averaged, one body, one trunk).
    configs = [
        {**c, "encoder": "board", "symmetries": mirror, "shared_body": True} for c in CONFIGS
    ]
    kwargs = {"share_trunk": share_trunk, "trunk_update": "sum"} if share_trunk else {}
    stacks = [StackedPPO(BOARD, ACTIONS, configs, seeds=SEEDS, **kwargs) for _ in range(2)]
    rng = np.random.default_rng(6)
    pool = CountingPool()
    for members in ([0, 1, 2], [0, 2]):  # every member, then some (rows gathered)
        batches = {m: _batch(rng) for m in members}
        alone, threaded = stacks[0].learn(batches), stacks[1].learn(batches, pool=pool)
        assert alone == threaded  # every statistic, exactly
    assert pool.submitted == 2 * 4 * 4  # two updates of 4 epochs of 4 minibatches
    pool.shutdown()
    for store in ("params", "exp_avg", "exp_avg_sq"):
        for name, tensor in getattr(stacks[0], store).items():
            assert torch.equal(getattr(stacks[1], store)[name], tensor), (store, name)


def test_a_member_whose_loss_is_not_finite_is_rolled_back_alone():
    rng = np.random.default_rng(1)
    stack = StackedPPO(BOARD, ACTIONS, CONFIGS, seeds=SEEDS)
    batches = {m: _batch(rng) for m in range(3)}
    batches[1]["rewards"] = batches[1]["rewards"] * np.float32(1e30)  # values overflow
    before = stack.member_state_dict(1)
    results = stack.learn(batches)
    assert "non-finite" in str(results[1])
    assert isinstance(results[0], dict) and isinstance(results[2], dict)
    after = stack.member_state_dict(1)
    assert after["version"] == before["version"]
    for name, tensor in before["model"].items():
        assert torch.equal(after["model"][name], tensor)
    assert stack.versions == [1, 0, 1]


def test_member_state_round_trips_through_a_separate_ppo():
    rng = np.random.default_rng(2)
    stack = StackedPPO(BOARD, ACTIONS, CONFIGS, seeds=SEEDS)
    stack.learn({m: _batch(rng) for m in range(3)})
    alone = make_algorithm("ppo", BOARD, ACTIONS, config=CONFIGS[1], seed=99)
    alone.load_state_dict(stack.member_state_dict(1))
    _assert_same_learner(stack, 1, alone)
    other = StackedPPO(BOARD, ACTIONS, CONFIGS, seeds=[5, 6, 7])
    other.load_member_state_dict(2, alone.state_dict())
    _assert_same_learner(other, 2, alone)
    assert other.hyperparameters(2)["learning_rate"] == CONFIGS[1]["learning_rate"]


COLUMNS = [{**c, "encoder": "board", "column_head": True} for c in CONFIGS]
SUPPORT = [{**c, "encoder": "board", "board_support": True} for c in CONFIGS]
ONE_BODY = [{**c, "encoder": "board", "shared_body": True} for c in CONFIGS]


@pytest.mark.parametrize(
    "configs",
    [CONFIGS, COLUMNS, SUPPORT, ONE_BODY],
    ids=["mlp", "column_head", "board_support", "shared_body"],
)
def test_the_bank_acts_as_each_policy_would_alone(configs: list[dict]):
    rng = np.random.default_rng(3)
    stack = StackedPPO(BOARD, ACTIONS, configs, seeds=SEEDS)
    stack.learn({m: _batch(rng) for m in range(3)})
    alone = [PPO(BOARD, ACTIONS, c, seed=s) for c, s in zip(configs, SEEDS, strict=True)]
    for m in range(3):
        alone[m].load_state_dict(stack.member_state_dict(m))
    bank = PolicyBank(stack, capacity=2)
    snapshot_row = bank.add_snapshot(2)
    frozen = alone[2].frozen()
    rows = rng.choice([0, 1, 2, snapshot_row], 40)
    rows[:4] = [0, 1, 2, snapshot_row]
    data = _batch(rng, n=40)
    obs, mask = data["obs"], data["action_mask"]
    actions, extras = bank.act(obs, mask, rows)
    for row, policy in [(0, alone[0]), (1, alone[1]), (2, alone[2]), (snapshot_row, frozen)]:
        sel = rows == row
        expected, theirs = policy.act(obs[sel], mask[sel])
        np.testing.assert_array_equal(actions[sel], expected)
        np.testing.assert_allclose(extras["logprob"][sel], theirs["logprob"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(extras["value"][sel], theirs["value"], rtol=1e-4, atol=1e-5)
        assert mask[sel][np.arange(sel.sum()), actions[sel]].all()  # legal moves only
    assert (extras["version"] == 1).all()
    bank_state = bank.snapshot_state_dict(snapshot_row)
    for name, tensor in frozen.state_dict()["model"].items():
        torch.testing.assert_close(bank_state["model"][name], tensor)


def test_greedy_snapshot_rows_take_their_most_likely_action_and_learners_still_sample():
    rng = np.random.default_rng(5)
    stack = StackedPPO(BOARD, ACTIONS, CONFIGS, seeds=SEEDS)
    stack.learn({m: _batch(rng) for m in range(3)})
    bank = PolicyBank(stack, capacity=2, greedy_snapshots=True)
    snapshot_row = bank.add_snapshot(1)
    frozen = PPO(BOARD, ACTIONS, CONFIGS[1], seed=SEEDS[1])
    frozen.load_state_dict(stack.member_state_dict(1))
    frozen = frozen.frozen()
    data = _batch(rng, n=64)
    obs = np.repeat(data["obs"][:1], 64, axis=0)  # one position, asked 64 times
    mask = np.repeat(data["action_mask"][:1], 64, axis=0)
    rows = np.r_[np.full(32, 1), np.full(32, snapshot_row)]
    actions, extras = bank.act(obs, mask, rows)
    greedy, _ = frozen.act(obs[:1], mask[:1], deterministic=True)
    np.testing.assert_array_equal(actions[32:], np.repeat(greedy, 32))
    assert len(np.unique(actions[:32])) > 1  # the learner's row still samples
    assert extras["logprob"][32:].max() < 0  # a distribution, not a point mass
    assert len(np.unique(frozen.act(obs, mask)[0])) > 1  # the snapshot itself samples...
    frozen.greedy = True  # ... until it is marked greedy, as Population marks it
    np.testing.assert_array_equal(frozen.act(obs, mask)[0], np.repeat(greedy, 64))


# -- a shared trunk ------------------------------------------------------------------

ONE_STEP = [{**c, "encoder": "board", "update_epochs": 1, "num_minibatches": 1} for c in CONFIGS]


def _parts(stack: StackedPPO) -> tuple[list[str], list[str]]:
    heads = [k for k in stack.params if k not in stack.trunk]
    return stack.trunk, heads


def _trunks_equal(stack: StackedPPO) -> bool:
    return all(torch.equal(p, p[:1].expand_as(p)) for p in map(stack.params.get, stack.trunk))


@pytest.mark.parametrize("update", ["mean", "sum"])
def test_a_shared_trunk_moves_every_member_by_the_mean_or_sum_of_the_updates(update: str):
    rng = np.random.default_rng(4)
    shared = StackedPPO(
        BOARD, ACTIONS, ONE_STEP, seeds=SEEDS, share_trunk=True, trunk_update=update
    )
    trunk, heads = _parts(shared)
    assert trunk and heads and all(k.startswith(("actor_body.", "critic_body.")) for k in trunk)
    assert _trunks_equal(shared)  # everyone starts from member 0's trunk
    assert not torch.equal(*shared.params[heads[0]][:2])  # heads stay each member's own
    alone = StackedPPO(BOARD, ACTIONS, ONE_STEP, seeds=SEEDS)
    with torch.no_grad():
        for name, p in alone.params.items():
            p.copy_(shared.params[name])
    batches = {0: _batch(rng), 2: _batch(rng)}  # member 1 has no batch this time
    shared.learn(batches)
    alone.learn(batches)
    assert _trunks_equal(shared)
    for name in trunk:  # one step each from the same trunk: the mean or sum of the steps
        start = alone.params[name][1]  # member 1 did not step: the trunk before
        steps = alone.params[name][[0, 2]] - start
        want = start + (steps.mean(0) if update == "mean" else steps.sum(0))
        torch.testing.assert_close(shared.params[name][1], want, rtol=1e-5, atol=1e-6)
        assert not torch.equal(shared.params[name][1], alone.params[name][1])
    for name in heads:
        torch.testing.assert_close(shared.params[name], alone.params[name], rtol=0, atol=0)
    for store in ("exp_avg", "exp_avg_sq"):  # each member's own optimizer state
        for name in shared.params:
            torch.testing.assert_close(getattr(shared, store)[name], getattr(alone, store)[name])
    assert shared.versions == [1, 0, 1]


def test_a_joint_trunk_takes_one_adam_step_on_the_sum_of_the_members_gradients():
    """trunk_update="joint": the trunk trains as one network with a head per member
    would. Two members with one starting network, each stepping on its own batch,
    move the trunk as a lone learner does on both batches at once: their summed
    gradient is twice its mean one, and Adam (with eps out of the way) is blind to
    the scale. Advantages unnormalised and no clipping, so the losses add up."""
    cfg = {**ONE_STEP[0], "norm_adv": False, "max_grad_norm": 1e9, "adam_eps": 1e-12}
    rng = np.random.default_rng(6)
    first, second = _batch(rng), _batch(rng)
    joint = StackedPPO(
        BOARD, ACTIONS, [cfg, cfg], seeds=[3, 3], share_trunk=True, trunk_update="joint"
    )
    lone = StackedPPO(BOARD, ACTIONS, [cfg], seeds=[3])
    joint.learn({0: first, 1: second})
    lone.learn({0: {k: np.concatenate([first[k], second[k]]) for k in first}})
    trunk, heads = _parts(joint)
    assert _trunks_equal(joint)
    for name in trunk:
        for store, power in (("exp_avg", 1), ("exp_avg_sq", 2)):  # one optimizer's moments
            mine, its = getattr(joint, store)[name], getattr(lone, store)[name][0]
            assert torch.equal(mine[0], mine[1])
            want = its * 2**power
            atol = 1e-5 * float(want.abs().max())  # the two sums' rounding, where ~0
            torch.testing.assert_close(mine[0], want, rtol=1e-4, atol=atol)
        # Adam's first step is the gradient's sign: the same wherever it is not ~0.
        moved, want = joint.params[name][0], lone.params[name][0]
        close = torch.isclose(moved, want, rtol=0, atol=1e-6)
        assert close.float().mean() > 0.999, name
    for name in heads:  # each member's own gradient
        assert not torch.equal(joint.exp_avg[name][0], joint.exp_avg[name][1])


def test_a_shared_trunk_survives_reset_load_and_a_rolled_back_member():
    rng = np.random.default_rng(5)
    stack = StackedPPO(BOARD, ACTIONS, ONE_STEP, seeds=SEEDS, share_trunk=True)
    trunk, heads = _parts(stack)
    stack.learn({m: _batch(rng) for m in range(3)})
    # A reset (an exploiter's) gives back the member's own first output layers; the
    # trunk stays the one the others train.
    before = {k: v.detach().clone() for k, v in stack.params.items()}
    stack.reset_member(1)
    fresh = PPO(BOARD, ACTIONS, ONE_STEP[1], seed=SEEDS[1]).model.state_dict()
    for name in heads:
        assert torch.equal(stack.params[name][1], fresh[name])
        assert torch.equal(stack.params[name][0], before[name][0])
    for name in trunk:
        assert torch.equal(stack.params[name], before[name])
    assert stack.steps[1] == 0 and float(stack.exp_avg[heads[0]][1].abs().sum()) == 0
    # Loading one member (a resume loads them in turn) makes its trunk everyone's.
    other = PPO(BOARD, ACTIONS, ONE_STEP[0], seed=99)
    stack.load_member_state_dict(2, other.state_dict())
    assert _trunks_equal(stack)
    for name in trunk:
        assert torch.equal(stack.params[name][0], other.model.state_dict()[name])
    # A member whose loss is not finite takes the trunk the others trained, its own
    # output layers are rolled back; when every member fails, the trunk rolls back too.
    batches = {m: _batch(rng) for m in range(3)}
    batches[1]["rewards"] = batches[1]["rewards"] * np.float32(1e30)
    before = {k: v.detach().clone() for k, v in stack.params.items()}
    results = stack.learn(batches)
    assert "non-finite" in str(results[1]) and isinstance(results[0], dict)
    assert _trunks_equal(stack)
    assert not torch.equal(stack.params[trunk[0]], before[trunk[0]])
    for name in heads:
        assert torch.equal(stack.params[name][1], before[name][1])
    # A learning rate that blows the weights up: member 1 steps once, then fails.
    two = [{**c, "num_minibatches": 2} for c in ONE_STEP]
    stack = StackedPPO(BOARD, ACTIONS, two, seeds=SEEDS, share_trunk=True)
    stack.set_hyperparameters(1, learning_rate=1e30)
    before = {k: v.detach().clone() for k, v in stack.params.items()}
    results = stack.learn({1: _batch(rng)})
    assert "non-finite" in str(results[1])
    for name, tensor in before.items():
        assert torch.equal(stack.params[name], tensor), name
