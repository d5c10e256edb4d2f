"""`bench_tactics.py`: the tactics probe's rates, checked on bots whose tactics are known."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from league.bots import ConnectFourLookahead, immediate_wins
from league.policy_handle import PolicyHandle

BENCH = Path(__file__).parent / "benchmarks" / "bench_tactics.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_tactics", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BlocksFirst(ConnectFourLookahead):
    """The lookahead bot with its first two rules swapped: it blocks (in a column that
    does not also win) before it wins."""

    def _choose(self, board, legal):
        moves = [col for col in range(7) if legal[col]]
        wins, blocks = immediate_wins(board, moves)
        return self._pick([col for col in blocks if col not in wins] or wins or moves)


def test_the_probe_scores_a_bot_that_wins_first_and_one_that_blocks_first():
    bench = load_bench()
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
