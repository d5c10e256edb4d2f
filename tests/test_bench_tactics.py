"""`bench_tactics.py`: the tactics probe's rates, checked on bots whose tactics are known."""

from __future__ import annotations

from conftest import load_bench
from gymnasium.spaces import Discrete

from league.bots import ConnectFourLookahead, immediate_wins
from league.policies import RandomPolicy
from league.policy_handle import PolicyHandle


class BlocksFirst(ConnectFourLookahead):
    """The lookahead bot with its first two rules swapped: it blocks (in a column that
    does not also win) before it wins."""

    def _choose(self, board, legal):
        moves = [col for col in range(7) if legal[col]]
        wins, blocks = immediate_wins(board, moves)
        return self._pick([col for col in blocks if col not in wins] or wins or moves)


def test_the_probe_scores_a_bot_that_wins_first_and_one_that_blocks_first():
    bench = load_bench("bench_tactics")
    wins, blocks = bench.positions(60, seed=0)
    assert len(wins) == len(blocks) == 60
    threatened, instead = bench.under_threat(wins)
    assert 0 < len(threatened) < len(wins)  # random play leaves some with both threats
    # Handles, as `run.policy` gives the probe a run's learner.
    lookahead = PolicyHandle("lookahead", ConnectFourLookahead(), role="player_0")
    blocker = PolicyHandle("blocks_first", BlocksFirst(), role="player_0")
    assert bench.hit_rate(lookahead, wins) == bench.hit_rate(lookahead, blocks) == 1.0
    assert bench.hit_rate(lookahead, threatened) == 1.0
    assert bench.hit_rate(lookahead, instead) == 0.0
    # Blocking first: every threatened win is missed for a block; the rest still won.
    assert bench.hit_rate(blocker, threatened) == 0.0
    assert bench.hit_rate(blocker, instead) == 1.0
    assert bench.hit_rate(blocker, wins) == 1 - len(threatened) / len(wins)


def test_losses_to_random_are_sorted_by_the_last_move():
    bench = load_bench("bench_tactics")
    games = 150
    lookahead = PolicyHandle("lookahead", ConnectFourLookahead(), role="player_0")
    random = PolicyHandle("random", RandomPolicy(Discrete(7), seed=0), role="player_0")
    for seat in (0, 1):
        # The lookahead bot never misses a win or a single block: it loses to random
        # play only to two threats or by giving a square.
        results, kinds = bench.losses_to_random(lookahead, games, seat, seed=0)
        assert sum(results.values()) == games
        assert sum(kinds.values()) == results[-1]
        assert kinds["missed win"] == kinds["missed block"] == 0
        assert results[1] > 0.9 * games
        # Random play against itself loses often, mostly by missing what was there.
        results, kinds = bench.losses_to_random(random, games, seat, seed=0)
        assert sum(kinds.values()) == results[-1] > games / 4
        assert kinds["missed block"] + kinds["missed win"] > results[-1] / 2
    # From the empty board (no random opening) the same holds for the lookahead bot.
    results, kinds = bench.losses_to_random(lookahead, games, 1, seed=0, opening=0)
    assert sum(results.values()) == games and sum(kinds.values()) == results[-1]
    assert kinds["missed win"] == kinds["missed block"] == 0
