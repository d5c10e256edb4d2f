"""The league manager: policies, results, teams, snapshots, eviction, leaderboard."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.spaces import Box, Discrete, MultiBinary, MultiDiscrete
from pettingzoo.classic import tictactoe_v3

from league.manager import LEADERBOARD_COLUMNS, League, LeagueConfig, MatchResult
from league.policies import CallablePolicy, RandomPolicy

SEATS = ["player_0", "player_1"]
TAG_SEATS = ["adversary_0", "adversary_1", "adversary_2", "agent_0"]
TAG_ROLES = ["adversary", "adversary", "adversary", "agent"]


def tag_team(seat: str) -> str:
    return "adversaries" if seat.startswith("adversary") else "prey"


def two_player(**config) -> League:
    return League(SEATS, ["player", "player"], config=LeagueConfig(**config))


def random_policy() -> RandomPolicy:
    return RandomPolicy(Discrete(3), seed=0)


def play(league: League, policies: list[str], returns: list[float], env_id: int = 0) -> None:
    league.report(env_id, MatchResult(policies, returns, step=0, env_id=env_id))


# -- fixed policies -------------------------------------------------------------


def test_random_policy_picks_legal_actions_for_one_obs_and_a_batch() -> None:
    policy = RandomPolicy(Discrete(5, start=1), seed=0, observation_space=Box(0, 1, (3,)))
    mask = np.array([0, 1, 0, 1, 0], dtype=bool)
    singles = {int(policy.act(np.zeros(3), mask)) for _ in range(200)}
    assert singles == {2, 4}  # legal indices 1 and 3, shifted by start=1
    batch_mask = np.array([[1, 0, 0, 0, 0], [0, 0, 0, 0, 1], [1, 1, 1, 1, 1]], dtype=bool)
    actions = policy.act(np.zeros((3, 3)), batch_mask)
    assert actions.shape == (3,) and actions[0] == 1 and actions[1] == 5
    # Without a mask the observation space tells a batch from one observation.
    assert np.shape(policy.act(np.zeros(3))) == ()
    batch = policy.act(np.zeros((64, 3)))
    assert batch.shape == (64,) and set(batch) == {1, 2, 3, 4, 5}
    with pytest.raises(ValueError, match="row 1 allows no action"):
        policy.act(np.zeros((2, 3)), np.array([[1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=bool))


def test_random_policy_multidiscrete_and_box() -> None:
    multi = RandomPolicy(MultiDiscrete([2, 3]), seed=1)
    mask = np.array([[0, 1, 1, 0, 0], [1, 0, 0, 0, 1]], dtype=bool)  # per-component, concatenated
    assert multi.act(None, mask).tolist() == [[1, 0], [0, 2]]
    assert multi.act(None).shape == (2,)
    low, high = np.array([-1.0, 0.0], np.float32), np.array([1.0, np.inf], np.float32)
    box = RandomPolicy(Box(low=low, high=high), seed=2)
    samples = np.array([box.act(None) for _ in range(200)])
    assert samples.shape == (200, 2) and samples.dtype == np.float32
    assert (samples[:, 0] >= -1).all() and (samples[:, 0] <= 1).all() and (samples[:, 1] >= 0).all()
    with pytest.raises(ValueError, match="Box action space takes no action mask"):
        box.act(None, np.ones(2, dtype=bool))
    with pytest.raises(TypeError, match="CallablePolicy"):
        RandomPolicy(MultiBinary(3))


def test_callable_policy_passes_obs_and_mask_through() -> None:
    calls = []
    policy = CallablePolicy(lambda obs, mask: calls.append((obs, mask)) or 7)
    assert policy.act("obs", "mask") == 7 and policy.act("o") == 7
    assert calls == [("obs", "mask"), ("o", None)]


def test_fixed_policies_play_real_tictactoe() -> None:
    # PFSP never seats a policy against itself: every game is random vs first_legal.
    league = League(["player_1", "player_2"], ["p", "p"], config=LeagueConfig(strategy="pfsp"))
    league.add_fixed("random", "p", RandomPolicy(Discrete(9), seed=0))
    league.add_fixed("first_legal", "p", CallablePolicy(lambda obs, mask: int(np.argmax(mask))))
    env = tictactoe_v3.env()
    for episode in range(40):
        ids = league.assign(episode % 2)
        env.reset(seed=episode)
        returns = dict.fromkeys(env.possible_agents, 0.0)
        for agent in env.agent_iter():
            obs, reward, terminated, truncated, _ = env.last()
            returns[agent] += reward
            if terminated or truncated:
                env.step(None)
                continue
            policy = league.policy(ids[env.possible_agents.index(agent)])
            action = int(policy.act(obs["observation"], obs["action_mask"]))
            assert obs["action_mask"][action] == 1
            env.step(action)
        result = [returns[a] for a in env.possible_agents]
        league.report(episode % 2, MatchResult(ids, result, step=episode, env_id=episode % 2))
    board = league.leaderboard().set_index("policy")
    assert (board["games"] == 40).all()
    assert (board["wins"] + board["draws"] + board["losses"] == 40).all()
    assert board.loc["random", "rating"] == 0.0
    assert board.loc["first_legal", "wins"] == board.loc["random", "losses"]


# -- policies -------------------------------------------------------------------


def test_adding_policies_checks_ids_roles_and_kinds() -> None:
    league = League(TAG_SEATS, TAG_ROLES, teams=tag_team)
    assert league.add_learner("adv", "adversary", algo="dqn") == "adv"
    league.add_fixed("random_agent", "agent", random_policy())
    assert league.policies["adv"].algo == "dqn"
    assert league.policies["random_agent"].algo == "random"
    assert league.learners() == ["adv"] and league.learners("agent") == []
    with pytest.raises(ValueError, match="'adv' is already in the league"):
        league.add_learner("adv", "adversary")
    with pytest.raises(ValueError, match=r"role 'prey'.*\['adversary', 'agent'\]"):
        league.add_learner("p", "prey")
    with pytest.raises(ValueError, match="policy id 'a;b' is not allowed"):
        league.add_learner("a;b", "agent")
    with pytest.raises(TypeError, match=r"'scripted': .* has no act"):
        league.add_fixed("scripted", "agent", lambda obs, mask: 0)
    with pytest.raises(ValueError, match="'random_agent' is a fixed, not a learner"):
        league.add_snapshot("random_agent", 10, None)
    with pytest.raises(KeyError, match="no policy 'nobody'"):
        league.should_snapshot("nobody", 10)


def test_policy_returns_the_payload() -> None:
    league = two_player()
    policy = random_policy()
    league.add_fixed("random", "player", policy)
    league.add_learner("L", "player")
    assert league.policy("random") is policy
    with pytest.raises(ValueError, match="'L' has no acting object"):
        league.policy("L")
    with pytest.raises(KeyError, match="'ghost'"):
        league.policy("ghost")


def test_layout_mistakes_are_named() -> None:
    with pytest.raises(ValueError, match="3 roles for 2 seats"):
        League(SEATS, ["a", "b", "c"])
    with pytest.raises(ValueError, match="missing \\['player_1'\\]"):
        League(SEATS, ["p", "p"], teams={"player_0": "x"})
    with pytest.raises(ValueError, match="unique"):
        League(["a", "a"], ["p", "p"])


def test_config_rejects_unknown_and_out_of_range_options() -> None:
    with pytest.raises(ValueError, match="unknown league option 'k'; valid: strategy"):
        LeagueConfig.from_dict({"k": 3})
    with pytest.raises(ValueError, match="payoff_decay=0"):
        LeagueConfig(payoff_decay=0)
    with pytest.raises(ValueError, match="max_snapshots=0"):
        LeagueConfig(max_snapshots=0)
    config = LeagueConfig(strategy="pfsp", elo_k=8.0)
    assert LeagueConfig.from_dict(config.to_dict()) == config


# -- results ----------------------------------------------------------------------


def test_team_returns_are_summed_and_ranked() -> None:
    config = LeagueConfig(min_games=0, payoff_decay=1.0)
    league = League(TAG_SEATS, TAG_ROLES, teams=tag_team, config=config)
    league.add_learner("adv", "adversary")
    league.add_learner("prey", "agent")
    ids = ["adv", "adv", "adv", "prey"]
    play(league, ids, [1.0, 1.0, 1.0, -2.0])  # adversaries 3 vs prey -2
    play(league, ids, [-1.0, 0.0, 0.0, -0.5])  # -1 vs -0.5: the prey wins
    play(league, ids, [0.5, 0.5, 0.0, 1.0])  # 1 vs 1: a draw
    record = league.payoff.record("adv", "prey")
    assert (record.wins, record.draws, record.losses) == (1.0, 1.0, 1.0)


def test_free_for_all_is_rated_pairwise() -> None:
    league = League(["a", "b", "c"], ["p", "p", "p"], config=LeagueConfig(min_games=0))
    for pid in ("x", "y", "z"):
        league.add_learner(pid, "p")
    play(league, ["x", "y", "z"], [1.0, 1.0, 0.0])
    assert league.payoff.win_rate("x", "y") == 0.5
    assert league.payoff.win_rate("x", "z") == 1.0
    assert league.payoff.win_rate("y", "z") == 1.0
    board = league.leaderboard().set_index("policy")
    assert board.loc["x", "games"] == 2 and board.loc["z", "losses"] == 2


def test_bad_results_are_named() -> None:
    league = League(TAG_SEATS, TAG_ROLES, teams=tag_team)
    league.add_learner("adv", "adversary")
    league.add_learner("prey", "agent")
    ids = ["adv", "adv", "adv", "prey"]
    cases = {
        "has 2 returns, expected 4: one per seat": MatchResult(ids, [1.0, 0.0], env_id=3),
        "has 3 policies, expected 4": MatchResult(ids[:3], [0.0] * 4, env_id=3),
        "has 3 team returns, expected 2: one per team \\['adversaries', 'prey'\\]": MatchResult(
            ids, [0.0] * 4, env_id=3, team_returns=[1.0, 0.0, 0.0]
        ),
        "unknown policy 'ghost' in seat 'adversary_1'": MatchResult(
            ["adv", "ghost", "adv", "prey"], [0.0] * 4, env_id=3
        ),
        "policy 'prey' \\(role 'agent'\\) sat in seat 'adversary_0'": MatchResult(
            ["prey", "adv", "adv", "prey"], [0.0] * 4, env_id=3
        ),
        "report for env 3 carries a result of env 4": MatchResult(ids, [0.0] * 4, env_id=4),
        "non-finite": MatchResult(ids, [float("nan"), 0.0, 0.0, 0.0], env_id=3),
    }
    for message, result in cases.items():
        with pytest.raises(ValueError, match=message):
            league.report(3, result)
    assert league.ratings.history.games == 0  # nothing half-recorded


def test_team_returns_override_the_seat_sum() -> None:
    league = League(TAG_SEATS, TAG_ROLES, teams=tag_team, config=LeagueConfig(min_games=0))
    league.add_learner("adv", "adversary")
    league.add_learner("prey", "agent")
    result = MatchResult(["adv"] * 3 + ["prey"], [5.0, 5.0, 5.0, 0.0], team_returns=[0.0, 1.0])
    league.report(0, result)
    assert league.payoff.win_rate("prey", "adv") == 1.0


# -- snapshots --------------------------------------------------------------------


def test_snapshot_every_n_learner_steps() -> None:
    league = two_player(snapshot_every=100, snapshot_win_rate=None, snapshot_min_steps=0)
    league.add_learner("L", "player")
    assert not league.should_snapshot("L", 99)
    assert league.should_snapshot("L", 100)
    assert league.add_snapshot("L", 100, None) == "L@100"
    assert not league.should_snapshot("L", 150)
    assert league.should_snapshot("L", 200)
    assert league.policies["L"].step == 200
    record = league.policies["L@100"]
    assert (record.kind, record.parent, record.step) == ("snapshot", "L", 100)
    assert record.role == "player"


def test_snapshot_when_the_learner_beats_its_targets() -> None:
    league = two_player(
        snapshot_every=0, snapshot_win_rate=0.7, snapshot_min_games=10, snapshot_min_steps=4
    )
    league.add_learner("L", "player")
    league.add_learner("M", "player")
    league.add_fixed("random", "player", random_policy())
    for _ in range(20):
        play(league, ["L", "random"], [1.0, -1.0])
    assert not league.should_snapshot("L", 5)  # wins against a fixed policy do not count
    for _ in range(9):
        play(league, ["L", "M"], [1.0, -1.0])
    assert not league.should_snapshot("L", 5)  # 9 games: not enough yet
    play(league, ["M", "L"], [1.0, -1.0])  # 10 games, 9 wins
    assert not league.should_snapshot("L", 3)  # within snapshot_min_steps of the start
    assert league.should_snapshot("L", 5)
    league.add_snapshot("L", 5, None)
    assert not league.should_snapshot("L", 10)  # counting starts again
    for game in range(10):
        play(league, ["L", "M"], [0.0, 0.0] if game < 7 else [1.0, -1.0])
    assert not league.should_snapshot("L", 10)  # (3 + 7/2) / 10 = 0.65
    play(league, ["L", "L"], [1.0, -1.0])  # self-play tells nothing
    assert not league.should_snapshot("L", 11)


def test_snapshot_payload_is_an_independent_copy() -> None:
    league = two_player()
    league.add_learner("L", "player")
    weights = {"layer": np.zeros(3)}
    sid = league.add_snapshot("L", 10, weights)
    weights["layer"] += 1.0
    np.testing.assert_array_equal(league.policy(sid)["layer"], np.zeros(3))
    frozen = {"layer": np.ones(3)}
    assert league.policy(league.add_snapshot("L", 20, frozen, copy_payload=False)) is frozen


def test_snapshot_starts_from_its_parents_ratings() -> None:
    league = two_player()
    league.add_learner("L", "player")
    league.add_fixed("random", "player", random_policy())
    for _ in range(5):
        play(league, ["L", "random"], [1.0, 0.0])
    sid = league.add_snapshot("L", 10, None)
    assert league.ratings.trueskill(sid) == league.ratings.trueskill("L")
    assert league.ratings.elo(sid) == league.ratings.elo("L")


def test_eviction_drops_the_older_of_the_closest_pair() -> None:
    league = two_player(max_snapshots=2, min_games=0)
    league.add_learner("L", "player")
    league.add_fixed("random", "player", random_policy())
    league.add_snapshot("L", 1, None)
    for _ in range(6):
        play(league, ["L", "random"], [1.0, 0.0])
    league.add_snapshot("L", 2, None)
    play(league, ["L", "L@2"], [1.0, 0.0])
    play(league, ["L@2", "random"], [1.0, 0.0])
    league.add_snapshot("L", 3, None)  # nearly L@2's strength: L@2 goes
    assert league.snapshots() == ["L@1", "L@3"]
    assert "L@2" not in league.leaderboard()["policy"].tolist()
    assert league.payoff.record("L", "L@2").games == 0
    assert all("L@2" not in league.assign(e) for e in range(50))
    play(league, ["L@2", "L"], [0.0, 1.0])  # a late result of an evicted snapshot still counts
    with pytest.raises(ValueError, match="'L@2' is already in the league \\(a snapshot\\)"):
        league.add_snapshot("L", 2, None)
    for step in range(4, 10):
        league.add_snapshot("L", step, None)
        assert len(league.snapshots()) == 2 and league.snapshots()[-1] == f"L@{step}"


# -- leaderboard -------------------------------------------------------------------


def test_leaderboard_columns_order_and_counts() -> None:
    league = two_player()
    league.add_learner("A", "player")
    league.add_fixed("random", "player", random_policy())
    league.add_learner("unplayed", "player")
    for returns in ([1, 0], [1, 0], [0, 1], [0, 0], [1, 0]):
        play(league, ["A", "random"], returns)
    league.add_snapshot("A", 30, None)
    league.should_snapshot("A", 40)
    board = league.leaderboard()
    assert tuple(board.columns) == LEADERBOARD_COLUMNS
    assert board["policy"].tolist() == ["A", "random", "unplayed", "A@30"]
    assert board["rank"].tolist() == [1, 2, 3, 4]
    a = board.set_index("policy").loc["A"]
    assert (a.games, a.wins, a.draws, a.losses) == (5, 3, 1, 1)
    assert (a.score, a.draw_rate, a.step, a.kind, a.algo) == (0.7, 0.2, 40, "learner", "ppo")
    assert a.err_lo < a.rating < a.err_hi and a.rating > 0
    random = board.set_index("policy").loc["random"]
    assert random.rating == 0.0 and random.opp_avg == pytest.approx(a.rating)
    snapshot = board.set_index("policy").loc["A@30"]
    assert (snapshot.parent, snapshot.step, snapshot.games) == ("A", 30, 0)
    assert np.isnan(snapshot.rating) and np.isnan(snapshot.score)


def test_random_policies_of_each_role_anchor_ml_elo() -> None:
    league = League(TAG_SEATS, TAG_ROLES, teams=tag_team, config=LeagueConfig(min_games=0))
    league.add_learner("adv", "adversary")
    league.add_fixed("random_adversary", "adversary", random_policy())
    league.add_learner("prey", "agent")
    league.add_fixed("random_agent", "agent", random_policy())
    rng = np.random.default_rng(0)
    for _ in range(60):
        ids = league.assign(0)
        play(league, ids, [float(r) for r in rng.normal(size=4)])
    board = league.leaderboard().set_index("policy")
    anchors = board.loc[["random_adversary", "random_agent"], "rating"]
    assert anchors.sum() == pytest.approx(0.0, abs=1e-9) and anchors.abs().max() > 0
