"""Matchmaking: every strategy's sampling, teams and roles, custom mappings, bad names."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from gymnasium.spaces import Discrete
from scipy import stats

from league.manager import League, LeagueConfig, MatchResult
from league.matchmaking import WEIGHTINGS, pfsp_weights
from league.policies import RandomPolicy

SEATS = ["player_0", "player_1"]
TAG_SEATS = ["adversary_0", "adversary_1", "adversary_2", "agent_0"]
TAG_ROLES = ["adversary", "adversary", "adversary", "agent"]


def tag_team(seat: str) -> str:
    return "adversaries" if seat.startswith("adversary") else "prey"


def two_player(**config) -> League:
    return League(SEATS, ["player", "player"], config=LeagueConfig(**config))


def fixed(league: League, policy_id: str, role: str = "player") -> None:
    league.add_fixed(policy_id, role, RandomPolicy(Discrete(3), seed=0))


def play(league: League, policies: list[str], returns: list[float], env_id: int = 0) -> None:
    league.report(env_id, MatchResult(policies, returns, step=0, env_id=env_id))


def opponents(league: League, focal: str, n: int) -> Counter:
    """Who sits across from `focal` over n assignments (two-player leagues)."""
    seen = Counter()
    for env_id in range(n):
        ids = league.assign(env_id % 4)
        assert focal in ids
        seen[ids[1] if ids[0] == focal else ids[0]] += 1
    return seen


def test_weighting_formulas() -> None:
    x = np.array([0.0, 0.25, 0.5, 0.9, 1.0])
    np.testing.assert_allclose(pfsp_weights(x, "squared"), (1 - x) ** 2)
    np.testing.assert_allclose(pfsp_weights(x, "variance"), x * (1 - x))
    np.testing.assert_allclose(pfsp_weights(x, "linear"), 1 - x)
    np.testing.assert_allclose(pfsp_weights(x, "linear_capped"), [0.5, 0.5, 0.5, 0.1, 0.0])


@pytest.mark.parametrize("weighting", list(WEIGHTINGS))
def test_pfsp_frequencies_follow_the_weighting(weighting: str) -> None:
    league = two_player(strategy="pfsp", pfsp_weighting=weighting, payoff_decay=1.0, min_games=1)
    league.add_learner("L", "player")
    win_rates = {"f1": 0.2, "f2": 0.4, "f3": 0.6, "f4": 0.8}
    for opponent, x in win_rates.items():
        fixed(league, opponent)
        for game in range(10):
            won = game < round(10 * x)
            play(league, ["L", opponent], [1.0, -1.0] if won else [-1.0, 1.0])
    assert league.payoff.win_rate("L", "f2") == pytest.approx(0.4)

    n = 4000
    seen = opponents(league, "L", n)
    observed = [seen[p] for p in win_rates]
    assert sum(observed) == n  # the learner never plays itself under PFSP
    weights = pfsp_weights(np.array(list(win_rates.values())), weighting)
    expected = n * weights / weights.sum()
    assert stats.chisquare(observed, expected).pvalue > 0.01
    # The test can tell the weighting from uniform sampling.
    assert stats.chisquare(observed, [n / 4] * 4).pvalue < 1e-6


def test_pfsp_falls_back_to_uniform_when_all_weights_vanish() -> None:
    league = two_player(strategy="pfsp", pfsp_weighting="squared", payoff_decay=1.0, min_games=1)
    league.add_learner("L", "player")
    for opponent in ("f1", "f2", "f3"):
        fixed(league, opponent)
        play(league, ["L", opponent], [1.0, 0.0])
    seen = opponents(league, "L", 1500)
    assert stats.chisquare([seen["f1"], seen["f2"], seen["f3"]]).pvalue > 0.01


def test_rating_strategy_weights_by_match_quality() -> None:
    league = two_player(strategy="rating")
    league.add_learner("L", "player")
    fixed(league, "close")
    fixed(league, "weak")
    for _ in range(6):
        play(league, ["L", "close"], [0.0, 0.0])
        play(league, ["L", "weak"], [1.0, -1.0])
    quality = [league.ratings.quality(["L"], [p]) for p in ("close", "weak")]
    n = 2000
    seen = opponents(league, "L", n)
    expected = n * np.array(quality) / sum(quality)
    assert seen["close"] > 2 * seen["weak"]
    assert stats.chisquare([seen["close"], seen["weak"]], expected).pvalue > 0.01


def test_self_play_seats_copies_of_the_learner() -> None:
    league = two_player(strategy="self_play")
    league.add_learner("A", "player")
    league.add_learner("B", "player")
    fixed(league, "random")
    assignments = [league.assign(e) for e in range(6)]
    assert assignments == [["A", "A"], ["B", "B"]] * 3


def test_snapshots_strategy_uses_the_focal_learners_own_snapshots() -> None:
    league = two_player(strategy="snapshots")
    league.add_learner("A", "player")
    league.add_learner("B", "player")
    assert league.assign(0) == ["A", "A"]  # no snapshot yet: self-play
    league.add_snapshot("A", 10, None)
    league.add_snapshot("A", 20, None)
    league.add_snapshot("B", 10, None)
    for env_id in range(40):
        ids = league.assign(env_id)
        focal = ["A", "B"][(env_id + 1) % 2]  # learners take turns; "A" had assignment 0
        other = ids[1] if ids[0] == focal else ids[0]
        assert league.policies[other].parent == focal


def test_mix_draws_strategies_with_their_probabilities() -> None:
    league = two_player(strategy="mix", mix={"self_play": 0.3, "snapshots": 0.7})
    league.add_learner("L", "player")
    league.add_snapshot("L", 5, None)
    n = 2000
    self_play = sum(league.assign(e) == ["L", "L"] for e in range(n))
    assert stats.binomtest(self_play, n, 0.3).pvalue > 0.01
    assert stats.binomtest(self_play, n, 0.5).pvalue < 1e-6


def test_focal_learner_sits_on_either_team() -> None:
    league = two_player(strategy="pfsp")
    league.add_learner("L", "player")
    fixed(league, "random")
    n = 1000
    first = sum(league.assign(e)[0] == "L" for e in range(n))
    assert stats.binomtest(first, n, 0.5).pvalue > 0.01


def test_round_robin_gives_learners_equal_seats() -> None:
    league = two_player(strategy="round_robin")
    for learner in ("A", "B", "C"):
        league.add_learner(learner, "player")
    fixed(league, "random")
    cycle = 3 * 4  # learners x policies of the role
    for _ in range(3):
        seats = Counter(p for e in range(cycle) for p in league.assign(e))
        assert seats["A"] == seats["B"] == seats["C"] == 4 + 3
        assert seats["random"] == 3


def test_round_robin_is_deterministic_and_balanced_across_roles() -> None:
    def schedule() -> list[list[str]]:
        league = League(
            TAG_SEATS, TAG_ROLES, teams=tag_team, config=LeagueConfig(strategy="round_robin")
        )
        league.add_learner("A1", "adversary")
        league.add_learner("A2", "adversary")
        league.add_learner("G", "agent")
        fixed(league, "random_adversary", "adversary")
        fixed(league, "random_agent", "agent")
        return [league.assign(e) for e in range(3 * 3 * 2)]

    first = schedule()
    assert first == schedule()
    seats = Counter(p for ids in first for p in ids)
    assert seats["A1"] == seats["A2"] == 6 * 3 + 2 * 3


def test_team_seats_of_one_role_share_a_policy() -> None:
    for strategy in ("uniform", "self_play", "pfsp", "rating", "round_robin", "snapshots"):
        league = League(
            TAG_SEATS, TAG_ROLES, teams=tag_team, config=LeagueConfig(strategy=strategy)
        )
        league.add_learner("adv", "adversary")
        league.add_learner("prey", "agent")
        fixed(league, "random_adversary", "adversary")
        fixed(league, "random_agent", "agent")
        for env_id in range(20):
            ids = league.assign(env_id)
            assert len(set(ids[:3])) == 1, (strategy, ids)
            assert league.policies[ids[0]].role == "adversary"
            assert league.policies[ids[3]].role == "agent"


def test_uniform_keeps_an_assignment_for_resample_interval_episodes() -> None:
    league = two_player(strategy="uniform", resample_interval=3)
    for learner in ("A", "B", "C"):
        league.add_learner(learner, "player")
    fixed(league, "random")
    blocks = []
    for _ in range(10):
        block = [league.assign(0) for _ in range(3)]
        assert block[0] == block[1] == block[2]
        league.assign(1)  # other envs do not disturb env 0's count
        blocks.append(tuple(block[0]))
    assert len(set(blocks)) > 1


class Recorder:
    """A user mapping: a fixed assignment, and a log of every call."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.assigned: list[int] = []
        self.reports: list[tuple[int, MatchResult]] = []

    def assign(self, env_id: int) -> list[str]:
        self.assigned.append(env_id)
        return self.ids

    def report(self, env_id: int, result: MatchResult) -> None:
        self.reports.append((env_id, result))


def test_custom_mapping_object_is_used_unchanged() -> None:
    mapping = Recorder(["B", "A"])
    league = League(SEATS, ["player", "player"], mapping=mapping)
    league.add_learner("A", "player")
    league.add_learner("B", "player")
    assert [league.assign(e) for e in (3, 1, 3)] == [["B", "A"]] * 3
    assert mapping.assigned == [3, 1, 3]
    result = MatchResult(["B", "A"], [1.0, -1.0], step=42, env_id=3)
    league.report(3, result)
    assert mapping.reports == [(3, result)] and mapping.reports[0][1] is result
    assert league.payoff.record("B", "A").wins == 1.0  # the league still keeps score


def test_custom_mapping_function_gets_env_id_and_seat_names() -> None:
    calls = []

    def mapping(env_id: int, seat_names: list[str]) -> list[str]:
        calls.append((env_id, seat_names))
        return ["A", "random"] if env_id % 2 else ["random", "A"]

    league = League(SEATS, ["player", "player"], mapping=mapping)
    league.add_learner("A", "player")
    fixed(league, "random")
    assert league.assign(5) == ["A", "random"]
    assert league.assign(2) == ["random", "A"]
    assert calls == [(5, SEATS), (2, SEATS)]
    play(league, ["A", "random"], [1.0, 0.0])  # reports need no method on a function


def test_custom_mapping_mistakes_are_named() -> None:
    recorder = Recorder([])
    league = League(TAG_SEATS, TAG_ROLES, teams=tag_team, mapping=recorder)
    league.add_learner("adv", "adversary")
    league.add_learner("prey", "agent")
    bad = {
        "returned 1 policy ids for env 7, expected 4": ["adv"],
        "unknown policy 'ghost' to seat 'adversary_2' of env 7": ["adv", "adv", "ghost", "prey"],
        "policy 'prey' \\(role 'agent'\\) to seat 'adversary_0'": ["prey", "adv", "adv", "prey"],
    }
    for message, ids in bad.items():
        recorder.ids = ids
        with pytest.raises(ValueError, match=message):
            league.assign(7)
    with pytest.raises(TypeError, match="neither an object with assign"):
        League(SEATS, ["player", "player"], mapping=42)


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"strategy 'elo_ladder' is unknown; valid: \['uniform'"):
        LeagueConfig(strategy="elo_ladder")
    with pytest.raises(ValueError, match=r"weighting 'cubic' is unknown; valid: \['squared'"):
        LeagueConfig(pfsp_weighting="cubic")
    with pytest.raises(ValueError, match=r"\['exploiters'\] are unknown; valid: \['uniform'"):
        LeagueConfig(strategy="mix", mix={"pfsp": 0.5, "exploiters": 0.5})


def test_mix_probabilities_must_sum_to_one() -> None:
    with pytest.raises(ValueError, match=r"sum to 0\.9; they must sum to 1"):
        LeagueConfig(strategy="mix", mix={"pfsp": 0.5, "self_play": 0.4})
    with pytest.raises(ValueError, match=">= 0"):
        LeagueConfig(strategy="mix", mix={"pfsp": 1.5, "self_play": -0.5})


def test_a_role_without_policies_is_named() -> None:
    league = League(TAG_SEATS, TAG_ROLES, teams=tag_team, config=LeagueConfig(strategy="pfsp"))
    league.add_learner("adv", "adversary")
    with pytest.raises(ValueError, match="no policy of role 'agent'"):
        league.assign(0)
