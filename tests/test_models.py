"""Models picked from spaces: masks are obeyed, heads report the log-probabilities
learn() will recompute, images reach a CNN, and unsupported spaces fail clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from league.algos import make_algorithm
from league.errors import ConfigError
from league.models import (
    ActorCritic,
    BoardCNN,
    MaskedCategorical,
    NatureCNN,
    QNetwork,
    UnsupportedSpaceError,
)

torch.set_num_threads(1)


def random_masks(rng: np.random.Generator, rows: int, n: int) -> np.ndarray:
    """Random legal-action masks with at least one legal action per row."""
    masks = rng.random((rows, n)) < 0.4
    masks[np.arange(rows), rng.integers(0, n, rows)] = True
    return masks


def test_masked_categorical_never_samples_illegal_and_gives_them_zero_probability():
    rng = np.random.default_rng(0)
    masks = torch.as_tensor(random_masks(rng, 64, 7))
    logits = torch.randn(64, 7) * 5
    dist = MaskedCategorical(logits, masks)
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        actions = dist.sample(generator)
        assert masks[torch.arange(64), actions].all()
    assert (dist.probs[~masks] == 0).all()
    assert torch.allclose(dist.probs.sum(-1), torch.ones(64))
    # Entropy and log-probabilities are those of the distribution over legal actions only.
    for row in range(64):
        legal = masks[row].nonzero().squeeze(-1)
        legal_logp = torch.log_softmax(logits[row, legal], dim=-1)
        row_dist = MaskedCategorical(logits[row : row + 1], masks[row : row + 1])
        for action, logp in zip(legal, legal_logp, strict=True):
            assert torch.allclose(row_dist.log_prob(action[None]), logp, atol=1e-6)
        expected_entropy = -(legal_logp.exp() * legal_logp).sum()
        assert torch.allclose(row_dist.entropy(), expected_entropy, atol=1e-6)
    assert torch.isfinite(dist.entropy()).all()


@pytest.mark.parametrize("name", ["ppo", "a2c", "dqn"])
def test_act_never_takes_an_illegal_action(name):
    rng = np.random.default_rng(1)
    algo = make_algorithm(name, spaces.Box(-1, 1, (5,)), spaces.Discrete(6), seed=3)
    for deterministic in (False, True):
        obs = rng.normal(size=(2000, 5)).astype(np.float32)
        masks = random_masks(rng, 2000, 6)
        actions, extras = algo.act(obs, masks, deterministic=deterministic)
        assert actions.shape == (2000,)
        assert masks[np.arange(2000), actions].all()
        assert extras["value"].shape == (2000,)
    if name == "dqn":
        # The reported value is the best legal Q, not the best Q.
        q = algo.model(torch.as_tensor(obs)).detach().numpy()
        expected = np.where(masks, q, -np.inf).max(axis=1)
        np.testing.assert_allclose(extras["value"], expected, rtol=1e-6)
        np.testing.assert_allclose(algo.value(obs, masks), expected, rtol=1e-6)


def test_a_row_without_legal_actions_is_treated_as_unmasked():
    algo = make_algorithm("ppo", spaces.Box(-1, 1, (3,)), spaces.Discrete(4))
    masks = np.zeros((3, 4), bool)
    actions, extras = algo.act(np.zeros((3, 3), np.float32), masks)
    assert np.isfinite(extras["logprob"]).all()
    np.testing.assert_allclose(extras["logprob"], np.log(0.25), atol=0.05)
    assert ((actions >= 0) & (actions < 4)).all()


def test_mask_of_the_wrong_width_is_a_clear_error():
    algo = make_algorithm("ppo", spaces.Box(-1, 1, (3,)), spaces.Discrete(4))
    with pytest.raises(ValueError, match="action_mask has 5 columns"):
        algo.act(np.zeros((2, 3), np.float32), np.ones((2, 5), bool))


def recomputed_logprob(algo, obs, actions, masks=None) -> np.ndarray:
    """What learn() computes for (obs, actions): must equal what act() reported."""
    with torch.no_grad():
        _, logprob, _, _ = algo.model.get_action_and_value(
            torch.as_tensor(obs),
            None if masks is None else torch.as_tensor(masks),
            torch.as_tensor(actions),
        )
    return logprob.numpy()


def test_gaussian_head_shapes_bounds_and_logprob():
    action_space = spaces.Box(
        low=-0.5, high=np.array([[0.5, 1.0, 2.0]] * 2, np.float32), dtype=np.float32
    )
    algo = make_algorithm("ppo", spaces.Box(-1, 1, (4,)), action_space, seed=1)
    obs = np.random.default_rng(0).normal(size=(500, 4)).astype(np.float32)
    actions, extras = algo.act(obs)
    assert actions.shape == (500, 2, 3) and actions.dtype == np.float32
    assert (actions >= action_space.low).all() and (actions <= action_space.high).all()
    # log std starts at 0 (std 1), so bounds this tight clip many samples.
    assert (actions == action_space.high).any()

    head = algo.model.actor_head
    with torch.no_grad():
        mean = head.mean(algo.model.actor_body(torch.as_tensor(obs)))
        normal = torch.distributions.Normal(mean, head.log_std.exp())
    expected = normal.log_prob(torch.as_tensor(actions).reshape(500, 6)).sum(-1).detach().numpy()
    np.testing.assert_allclose(extras["logprob"], expected, rtol=1e-5)
    np.testing.assert_allclose(recomputed_logprob(algo, obs, actions), extras["logprob"], rtol=1e-6)

    greedy, _ = algo.act(obs, deterministic=True)
    expected_greedy = np.clip(mean.numpy().reshape(500, 2, 3), action_space.low, action_space.high)
    np.testing.assert_allclose(greedy, expected_greedy, rtol=1e-6)


def test_multidiscrete_head_shapes_masks_and_logprob():
    nvec = np.array([3, 2, 4])
    action_space = spaces.MultiDiscrete(nvec, start=[0, 1, -2])
    algo = make_algorithm("ppo", spaces.Box(-1, 1, (4,)), action_space, seed=2)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(1000, 4)).astype(np.float32)
    masks = np.concatenate([random_masks(rng, 1000, int(n)) for n in nvec], axis=1)
    actions, extras = algo.act(obs, masks)
    assert actions.shape == (1000, 3) and actions.dtype == action_space.dtype
    assert all(action_space.contains(a) for a in actions)
    index = actions - action_space.start
    offsets = np.concatenate([[0], np.cumsum(nvec)[:-1]])
    assert masks[np.arange(1000)[:, None], index + offsets].all()

    with torch.no_grad():
        logits = algo.model.actor_head.logits(algo.model.actor_body(torch.as_tensor(obs)))
    expected = 0
    for dim, part in enumerate(logits.split(list(nvec), dim=-1)):
        part_mask = torch.as_tensor(masks[:, offsets[dim] : offsets[dim] + nvec[dim]])
        logp = torch.log_softmax(part.masked_fill(~part_mask, -1e9), dim=-1)
        expected = expected + logp.gather(1, torch.as_tensor(index[:, dim : dim + 1])).squeeze(1)
    np.testing.assert_allclose(extras["logprob"], expected.numpy(), rtol=1e-5)
    np.testing.assert_allclose(
        recomputed_logprob(algo, obs, actions, masks), extras["logprob"], rtol=1e-6
    )


def test_discrete_start_offset_and_multibinary_actions():
    algo = make_algorithm("ppo", spaces.Box(-1, 1, (2,)), spaces.Discrete(3, start=-1))
    actions, _ = algo.act(np.zeros((300, 2), np.float32))
    assert set(actions.tolist()) == {-1, 0, 1}
    dqn = make_algorithm("dqn", spaces.Box(-1, 1, (2,)), spaces.Discrete(3, start=5))
    actions, _ = dqn.act(np.zeros((300, 2), np.float32))
    assert set(actions.tolist()) == {5, 6, 7}

    binary = spaces.MultiBinary((2, 2))
    algo = make_algorithm("a2c", spaces.Box(-1, 1, (2,)), binary)
    actions, extras = algo.act(np.zeros((10, 2), np.float32))
    assert actions.shape == (10, 2, 2) and all(binary.contains(a) for a in actions)
    np.testing.assert_allclose(extras["logprob"], 4 * np.log(0.5), atol=0.05)


@pytest.mark.parametrize(
    ("observation_space", "encoder"),
    [
        (spaces.Box(0, 255, (64, 64, 3), np.uint8), NatureCNN),
        (spaces.Box(0, 255, (84, 84), np.uint8), NatureCNN),
        (spaces.Box(0, 1, (6, 7, 2), np.int8), None),  # a board: the MLP unless asked
        (spaces.Box(0, 1, (5, 52), np.float32), None),
        (spaces.Discrete(5), None),
        (spaces.MultiDiscrete([3, 4]), None),
    ],
)
def test_observation_spaces_pick_their_encoder(observation_space, encoder):
    for name in ("ppo", "dqn"):
        algo = make_algorithm(name, observation_space, spaces.Discrete(3))
        kinds = {type(m) for m in algo.model.modules()} & {NatureCNN, BoardCNN}
        assert kinds == ({encoder} if encoder else set())
        obs = np.stack([observation_space.sample() for _ in range(4)])
        actions, extras = algo.act(obs)
        assert actions.shape == (4,) and np.isfinite(extras["value"]).all()


def test_board_cnn_sees_a_pattern_anywhere_on_the_board():
    # One weight set per 4x4 window: the same line of four gives the same
    # convolution features wherever it lies, which is what lets a board
    # policy generalise a threat it has seen in one place.
    space = spaces.Box(0, 1, (6, 7, 2), np.float32)
    board = BoardCNN(space, (16,), torch.nn.Tanh)
    left, right = torch.zeros(2, 6, 7, 2), torch.zeros(2, 6, 7, 2)
    left[:, 5, 0:4, 0] = 1.0  # a row of four in the bottom-left corner
    right[:, 3, 3:7, 0] = 1.0  # the same row, moved up and right
    a = board.window_features(left)
    b = board.window_features(right)
    # 3x4 windows, row-major: (2, 0) covers rows 2-5, columns 0-3; (0, 3) rows 0-3, columns 3-6.
    torch.testing.assert_close(a[:, 2 * 4 + 0], b[:, 0 * 4 + 3])
    assert not torch.equal(a[:, 0], a[:, 2 * 4 + 0])  # other windows see other cells
    assert board(left).shape == (2, 16)


def test_board_support_lets_a_window_see_which_of_its_cells_can_be_played():
    # A 4x4 window cannot tell whether an empty cell in its bottom row has a piece
    # under it; with board_support it also reads the row under it, and under the
    # board's bottom row it reads "off the board", which no empty row looks like.
    space = spaces.Box(0, 1, (6, 7, 2), np.int8)
    plain = BoardCNN(space, (16,), torch.nn.Tanh)
    board = BoardCNN(space, (16,), torch.nn.Tanh, support=True)
    assert board.windows.shape == (12, 4 * 4 * 2 + 4 * 3)  # the same 3x4 windows
    supported, hanging = torch.zeros(1, 6, 7, 2, dtype=torch.int8), torch.zeros(1, 6, 7, 2)
    supported[0, 4, 0, 1] = 1  # a piece under column 0 of the window over rows 0-3
    cells, hanging_cells = board.gather(supported.flatten(1)), board.gather(hanging.flatten(1))
    assert cells.dtype == torch.float32
    # Window 0 (rows 0-3, columns 0-3): its own 32 cells are empty either way...
    torch.testing.assert_close(cells[0, 0, :32], hanging_cells[0, 0, :32])
    torch.testing.assert_close(cells[0, 0, :32], plain.gather(supported.flatten(1))[0, 0])
    # ...and the row under it (row 4) tells them apart: (pieces, pieces, on board) per cell.
    assert cells[0, 0, 32:35].tolist() == [0, 1, 1]
    assert hanging_cells[0, 0, 32:35].tolist() == [0, 0, 1]
    # Windows 8-11 sit on the bottom row: under them nothing is on the board.
    assert cells[0, 8:, 32:].abs().sum() == 0 and cells[0, :8, 34::3].eq(1).all()
    # A piece at row 5, column 3 lies under windows 4-7 (rows 1-4), in their cell 3 - j.
    supported[0, 5, 3, 0] = 1
    cells = board.gather(supported.flatten(1))
    for j in range(4):
        assert cells[0, 4 + j, 32 + 3 * (3 - j)] == 1
    assert cells[0, 4:8, 32::3].sum() == 4 and cells[0, :4, 32::3].sum() == 0
    # Without support the windows are the plain 4x4 ones, (H, W, C) order within each.
    expected = [
        [((i + a) * 7 + j + b) * 2 + c for a in range(4) for b in range(4) for c in range(2)]
        for i in range(3)
        for j in range(4)
    ]
    assert plain.windows.tolist() == expected
    model = ActorCritic(space, spaces.Discrete(7), (16,), encoder="board", board_support=True)
    dist, value = model._dist_and_value(supported, None)
    assert dist.logits.shape == (1, 7) and value.shape == (1,)
    with pytest.raises(ConfigError, match="board_support=True needs encoder='board', not 'mlp'"):
        ActorCritic(space, spaces.Discrete(7), board_support=True)


def test_a_column_head_scores_each_column_from_the_windows_over_it():
    # One layer scores every window's columns, so the same cells seen by the window
    # over columns 0-3 and by the one over columns 1-4 give the same scores, one
    # column apart; the hidden layers' logits, which see the whole board, are added.
    space = spaces.Box(0, 1, (6, 7, 2), np.int8)
    model = ActorCritic(space, spaces.Discrete(7), (16,), encoder="board", column_head=True)
    head, board = model.actor_head, model.actor_body
    torch.nn.init.normal_(head.window.weight)  # as if trained: not the near-zero init
    left, right = torch.zeros(1, 6, 7, 2), torch.zeros(1, 6, 7, 2)
    left[0, 5, 0:3, 0] = 1  # three in the bottom row, columns 0-2
    right[0, 5, 1:4, 0] = 1  # the same, one column to the right
    scores_left = head.window(board.window_features(left))[0]  # (windows, 4)
    scores_right = head.window(board.window_features(right))[0]
    # 3x4 windows, row-major: window 8 is rows 2-5, columns 0-3; window 9 columns 1-4.
    torch.testing.assert_close(scores_left[8], scores_right[9])
    # Window w's score for its b-th column goes to board column (w % 4) + b, and only there.
    for w in range(12):
        for b in range(4):
            row = head.scatter[w * 4 + b]
            assert row.sum() == 1 and row[w % 4 + b] == 1
    # The logits are the hidden layers' plus the window scores summed per column.
    windows = board.window_features(left)
    expected = head.logits(board.body(windows.flatten(1))) + scores_left.flatten() @ head.scatter
    dist, _ = model._dist_and_value(left, None)
    torch.testing.assert_close(dist.logits, torch.log_softmax(expected, -1))
    with pytest.raises(ConfigError, match="column_head=True needs encoder='board', not 'mlp'"):
        ActorCritic(space, spaces.Discrete(7), column_head=True)
    with pytest.raises(ConfigError, match=r"one Discrete move per board column \(7\)"):
        ActorCritic(space, spaces.Discrete(42), encoder="board", column_head=True)


@pytest.mark.parametrize("encoder", ["board", "mlp"])
def test_a_shared_body_gives_policy_and_value_one_network(encoder: str):
    # With shared_body the value head reads the actor's body: no critic body, and the
    # value loss moves the weights the policy reads (without it, it cannot).
    space = spaces.Box(0, 1, (6, 7, 2), np.int8)
    board = torch.zeros(4, 6, 7, 2)
    board[:, 5, :3, 0] = 1
    for shared in (False, True):
        model = ActorCritic(space, spaces.Discrete(7), (16,), encoder=encoder, shared_body=shared)
        assert hasattr(model, "critic_body") != shared
        own = ActorCritic(space, spaces.Discrete(7), (16,), encoder=encoder)
        saved = sum(p.numel() for p in own.critic_body.parameters())
        count = sum(p.numel() for p in model.parameters())
        assert count == sum(p.numel() for p in own.parameters()) - (saved if shared else 0)
        model.get_value(board).sum().backward()
        body = list(model.actor_body.parameters())
        moved = [p.grad is not None and p.grad.abs().sum() > 0 for p in body]
        assert all(moved) == shared and any(moved) == shared
        _, value = model._dist_and_value(board, None)
        torch.testing.assert_close(value, model.get_value(board))
        features = model.actor_body(board)
        if shared:  # the value head on the policy's own features
            torch.testing.assert_close(value, model.critic_head(features).squeeze(-1))


def test_cnn_scales_uint8_pixels():
    space = spaces.Box(0, 255, (36, 36, 1), np.uint8)
    model = ActorCritic(space, spaces.Discrete(2))
    pixels = torch.full((1, 36, 36, 1), 255, dtype=torch.uint8)
    scaled = model.torso.image(pixels)
    assert scaled.shape == (1, 1, 36, 36) and torch.all(scaled == 1.0)


@pytest.mark.parametrize(
    ("observation_space", "action_space", "bad"),
    [
        (spaces.Text(5), spaces.Discrete(2), "Text"),
        (spaces.Graph(spaces.Box(0, 1, (2,)), None), spaces.Discrete(2), "Graph"),
        (spaces.Dict({"a": spaces.Discrete(2)}), spaces.Discrete(2), "Dict"),
        (spaces.Box(-1, 1, (3,)), spaces.Tuple([spaces.Discrete(2)]), "Tuple"),
    ],
)
def test_unsupported_spaces_name_the_space_and_the_supported_ones(
    observation_space, action_space, bad
):
    with pytest.raises(UnsupportedSpaceError) as error:
        make_algorithm("ppo", observation_space, action_space, where="seat 'player_0'")
    message = str(error.value)
    assert isinstance(error.value, ValueError)
    assert message.startswith("seat 'player_0': ")
    assert bad in message and "Supported" in message


def test_dqn_rejects_non_discrete_actions():
    with pytest.raises(UnsupportedSpaceError, match=r"seat 'walker_0'.*Box.*Discrete only"):
        make_algorithm(
            "dqn", spaces.Box(-1, 1, (3,)), spaces.Box(-1, 1, (2,)), where="seat 'walker_0'"
        )
    with pytest.raises(UnsupportedSpaceError, match="MultiDiscrete"):
        QNetwork(spaces.Box(-1, 1, (3,)), spaces.MultiDiscrete([2, 2]))


@pytest.mark.parametrize(
    "shape",
    [(6, 7, 2), (3, 3, 2), (8, 8, 111)],  # connect four, tic-tac-toe (one 3x3 window), chess
)
def test_encoder_option_picks_the_board_cnn(shape):
    space = spaces.Box(0, 1, shape, np.int8)
    for name in ("ppo", "a2c", "dqn"):
        algo = make_algorithm(name, space, spaces.Discrete(7), config={"encoder": "board"})
        assert any(isinstance(m, BoardCNN) for m in algo.model.modules())
        actions, extras = algo.act(np.stack([space.sample() for _ in range(4)]))
        assert actions.shape == (4,) and np.isfinite(extras["value"]).all()


def test_encoder_option_refuses_what_does_not_fit():
    with pytest.raises(ValueError, match=r"encoder='board' needs a 3-D \(H, W, C\) Box"):
        make_algorithm(
            "dqn", spaces.Box(-1, 1, (4,)), spaces.Discrete(2), config={"encoder": "board"}
        )
    with pytest.raises(ValueError, match="encoder must be one of"):
        make_algorithm(
            "a2c", spaces.Box(0, 1, (6, 7, 2)), spaces.Discrete(7), config={"encoder": "resnet"}
        )


def test_the_run_wide_encoder_reaches_every_learner_and_is_checked_before_training():
    from league.config import TrainConfig
    from league.errors import ConfigError
    from league.training.plan import EnvInfo, learner_specs

    env = EnvInfo.probe("classic/connect_four-v3", measure=False)
    mixed = ["ppo", "a2c", {"algo": "dqn", "encoder": "mlp"}]  # a learner's own one wins
    specs = learner_specs(TrainConfig(policies=mixed, encoder="board"), env)
    assert [s.config["encoder"] for s in specs] == ["board", "board", "mlp"]
    assert "encoder" not in learner_specs(TrainConfig(num_policies=1), env)[0].config
    # training.md's recipe, spelled either way, builds the same learner.
    short = TrainConfig(num_policies=1, encoder="board", symmetries=True)
    long = TrainConfig(policies=[{"algo": "ppo", "encoder": "board"}], symmetries=True)
    assert learner_specs(short, env)[0].config == learner_specs(long, env)[0].config
    with pytest.raises(ConfigError, match="encoder='resnet' is unknown"):
        TrainConfig(encoder="resnet")
    rps = EnvInfo.probe("classic/rps-v2", measure=False)  # one number per observation
    with pytest.raises(ConfigError, match=r"policy 'p0': encoder='board' needs a 3-D"):
        learner_specs(TrainConfig(encoder="board"), rps)


def test_large_frames_are_downsampled_inside_the_encoder_unless_asked_not_to():
    pistonball = spaces.Box(0, 255, (457, 120, 3), np.uint8)
    small = ActorCritic(pistonball, spaces.Discrete(3))
    assert small.torso.image.size == (164, 43)  # about 84 x 84 pixels, aspect kept
    frames = torch.randint(0, 256, (2, 457, 120, 3), dtype=torch.uint8)
    seen = small.torso.image(frames)
    assert seen.shape == (2, 3, 164, 43)
    # Area averaging: each downsampled pixel is the mean of the pixels it covers.
    flat = torch.full((1, 457, 120, 3), 200, dtype=torch.uint8)
    torch.testing.assert_close(small.torso.image(flat), torch.full((1, 3, 164, 43), 200 / 255))
    full = ActorCritic(pistonball, spaces.Discrete(3), image_pixels=None)
    assert full.torso.image.size == (457, 120)
    params = [sum(p.numel() for p in m.parameters()) for m in (small, full)]
    assert params[0] < params[1] / 20  # 0.6M instead of 19M weights
    atari = ActorCritic(spaces.Box(0, 255, (84, 84, 3), np.uint8), spaces.Discrete(3))
    assert not atari.torso.image.resize  # 84 x 84 frames are left as they are


def test_a_column_head_that_cannot_work_is_refused_before_training():
    from league.config import TrainConfig
    from league.training.plan import EnvInfo, make_plan
    from league.training.population import Population

    connect_four = EnvInfo.probe("classic/connect_four-v3", measure=False)
    columns = {"algo": "ppo", "column_head": True}
    # Connect four's preset gives the learners the board CNN: the column head fits, and the
    # six stack into one population with one trunk, as the preset's learners do.
    plan = make_plan(TrainConfig(policies=[columns] * 6), connect_four, cores=2)
    assert all(s.config["encoder"] == "board" and s.config["column_head"] for s in plan.learners)
    built = Population(plan.learners, connect_four, share_trunk=True, trunk_update="sum")
    assert built.describe().startswith("learners: 6 stacked, one trunk (sum)")
    # Without the preset the encoder is the MLP, which has no windows to score columns.
    with pytest.raises(ConfigError, match="policy 'ppo0': column_head=True needs encoder='board'"):
        make_plan(TrainConfig(policies=[columns], preset=False), connect_four, cores=2)
    # Tic-tac-toe's moves name cells, not columns.
    tictactoe = EnvInfo.probe("classic/tictactoe-v3", measure=False)
    with pytest.raises(ConfigError, match=r"one Discrete move per board column \(3\), not Disc"):
        make_plan(TrainConfig(policies=[{**columns, "encoder": "board"}]), tictactoe, cores=2)


@pytest.mark.parametrize(
    ("name", "label", "other"),
    [("column_head", "the column head", "a2c"), ("board_support", "board support", "dqn")],
)
def test_a_run_wide_board_option_reaches_every_ppo_learner_that_can_have_it(
    name: str, label: str, other: str
):
    from league.config import TrainConfig
    from league.training.plan import EnvInfo, make_plan

    connect_four = EnvInfo.probe("classic/connect_four-v3", measure=False)
    plan = make_plan(TrainConfig(**{name: True}), connect_four, cores=2)
    own = {"algo": "ppo", name: True}
    spelled = make_plan(TrainConfig(policies=[own] * 6), connect_four, cores=2)
    assert [s.config for s in plan.learners] == [s.config for s in spelled.learners]
    assert all(s.config[name] for s in plan.learners)
    # Asked for where it cannot work, it is refused with the reason, before training.
    with pytest.raises(ConfigError, match=f"policy 'p0' cannot have it: {label} needs encoder="):
        make_plan(TrainConfig(**{name: True}, preset=False), connect_four, cores=2)
    with pytest.raises(ConfigError, match=f"policy 'ppo0': {name}=True needs encoder="):
        make_plan(TrainConfig(policies=[own], preset=False), connect_four, cores=2)
    with pytest.raises(ConfigError, match=f"algorithm '{other}' has no {name} option"):
        make_plan(TrainConfig(**{name: True}, policies=["ppo", other]), connect_four, cores=2)


def test_a_run_wide_shared_body_reaches_every_ppo_learner_and_no_other():
    from league.config import TrainConfig
    from league.training.plan import EnvInfo, make_plan

    connect_four = EnvInfo.probe("classic/connect_four-v3", measure=False)
    plan = make_plan(TrainConfig(shared_body=True), connect_four, cores=2)
    assert all(s.config["shared_body"] for s in plan.learners)
    plain = make_plan(TrainConfig(preset=False), connect_four, cores=2)
    assert "shared_body" not in plain.learners[0].config  # off by default, but for presets
    # Any encoder can share its body; an algorithm without the option is refused.
    mlp = make_plan(TrainConfig(shared_body=True, preset=False), connect_four, cores=2)
    assert all(s.config["shared_body"] for s in mlp.learners)
    with pytest.raises(ConfigError, match="algorithm 'a2c' has no shared_body option"):
        make_plan(TrainConfig(shared_body=True, policies=["ppo", "a2c"]), connect_four, cores=2)


@pytest.mark.parametrize(
    ("env_id", "env_name", "encoder", "name"),
    [
        # Tic-tac-toe's moves name cells, not columns: the board CNN, no column head.
        ("classic/tictactoe-v3", "tictactoe_v3", "board", "column_head"),
        # Board support goes only to learners with the board CNN.
        ("classic/connect_four-v3", "connect_four_v3", "mlp", "board_support"),
    ],
)
def test_a_board_option_filled_by_a_preset_goes_only_where_it_fits(
    env_id: str, env_name: str, encoder: str, name: str
):
    from league.config import TrainConfig
    from league.presets import register_preset, unregister_preset
    from league.training.plan import EnvInfo, make_plan

    env = EnvInfo.probe(env_id, measure=False)
    register_preset(env_name, {"encoder": encoder, name: True})
    try:
        quiet = make_plan(TrainConfig(), env, cores=2)
    finally:
        unregister_preset(env_name)
    assert quiet.learners[0].config["encoder"] == encoder
    assert name not in quiet.learners[0].config
