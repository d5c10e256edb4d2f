"""`bench_learners.py`: the round-robin among a run's learners, on players of known strength."""

from __future__ import annotations

from conftest import load_bench
from gymnasium.spaces import Discrete
from pettingzoo.classic import connect_four_v3

from league.bots import ConnectFourLookahead
from league.policies import RandomPolicy
from league.policy_handle import PolicyHandle


def test_the_tournament_ranks_the_lookahead_bot_above_random_players():
    bench = load_bench("bench_learners")
    players = {
        "random_a": PolicyHandle("random_a", RandomPolicy(Discrete(7), seed=1), role="player_0"),
        "lookahead": PolicyHandle("lookahead", ConnectFourLookahead(), role="player_0"),
        "random_b": PolicyHandle("random_b", RandomPolicy(Discrete(7), seed=2), role="player_0"),
    }
    scores = bench.tournament(connect_four_v3.env, players, games=40, seed=0, opening_plies=4)
    assert set(scores) == set(players)
    # Each pair's scores add to 1, so the mean over three players is one half.
    assert abs(sum(scores.values()) / 3 - 0.5) < 1e-9
    assert scores["lookahead"] > 0.85
    assert max(scores["random_a"], scores["random_b"]) < 0.6


def test_ranks_within_a_run_share_ties():
    bench = load_bench("bench_learners")
    assert list(bench.within_run_ranks([0.3, 0.1, 0.3, 0.2])) == [2.5, 0.0, 2.5, 1.0]
