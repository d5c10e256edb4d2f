"""Reference bots: the board layout they assume, their play on hand-made and random
positions of the real envs (checked against a plain minimax written here), and
their results against random players and themselves."""

from __future__ import annotations

import time

import numpy as np
import pytest
from gymnasium.spaces import Discrete

import wrappers
from league.bots import (
    ConnectFourLookahead,
    ConnectFourNegamax,
    TicTacToePerfect,
    reference_bots,
)
from league.evaluate import play_games
from league.policies import RandomPolicy

CONNECT_FOUR = "classic/connect_four-v3"
TICTACTOE = "classic/tictactoe-v3"


def position(env_id: str, moves: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Observation and action mask of the seat to move after `moves` (seat 0 first)."""
    env = wrappers.multiagent(env_id)
    obs, infos = env.reset(seed=0)
    for move in moves:
        obs, _, terminated, _, infos = env.step([move, move])
        assert not any(terminated), f"moves {moves} end the game"
    seat = 0 if infos[0]["is_active"] else 1
    return obs[seat], infos[seat]["action_mask"].astype(bool)


def random_positions(games: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every position the seat to move sees in `games` random connect four games."""
    rng = np.random.default_rng(seed)
    env = wrappers.multiagent(CONNECT_FOUR)
    seen = []
    for game in range(games):
        obs, infos = env.reset(seed=game)
        terminated = [False]
        while not any(terminated):
            seat = 0 if infos[0]["is_active"] else 1
            mask = infos[seat]["action_mask"].astype(bool)
            seen.append((obs[seat], mask))
            move = int(rng.choice(np.flatnonzero(mask)))
            obs, _, terminated, _, infos = env.step([move, move])
    return seen


# A plain connect four minimax on lists, independent of the bots' bitboards: board[r][c]
# is 1 for the mover's piece, 2 for the opponent's, 0 for empty; row 0 is the top.


def to_board(obs: np.ndarray) -> list[list[int]]:
    return (obs[..., 0] + 2 * obs[..., 1]).tolist()


def landing_row(board: list[list[int]], col: int) -> int | None:
    rows = [r for r in range(6) if board[r][col] == 0]
    return max(rows) if rows else None


def wins_with(board: list[list[int]], row: int, col: int, piece: int) -> bool:
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        count = 1
        for sign in (1, -1):
            r, c = row + sign * dr, col + sign * dc
            while 0 <= r < 6 and 0 <= c < 7 and board[r][c] == piece:
                count += 1
                r, c = r + sign * dr, c + sign * dc
        if count >= 4:
            return True
    return False


def move_scores(board: list[list[int]], depth: int, me: int = 1) -> dict[int, int]:
    """Each legal move's minimax score with `depth` plies: a win on the move made with
    d plies left scores +d for the side that makes it, anything else 0."""
    scores = {}
    for col in range(7):
        row = landing_row(board, col)
        if row is None:
            continue
        board[row][col] = me
        if wins_with(board, row, col, me):
            scores[col] = depth
        elif depth > 1:
            replies = move_scores(board, depth - 1, 3 - me)
            scores[col] = -max(replies.values()) if replies else 0
        else:
            scores[col] = 0
        board[row][col] = 0
    return scores


def immediate_wins(board: list[list[int]], piece: int) -> set[int]:
    wins = set()
    for col in range(7):
        row = landing_row(board, col)
        if row is not None:
            board[row][col] = piece
            if wins_with(board, row, col, piece):
                wins.add(col)
            board[row][col] = 0
    return wins


# Hand-made positions (column sequences, seat 0 first) and the moves that answer them.
WIN_IN_1 = [3, 0, 3, 0, 3, 1]  # three of ours stacked in column 3
BLOCK = [3, 0, 3, 0, 6, 0]  # three of theirs stacked in column 0; every other move loses
WIN_OVER_BLOCK = [3, 0, 3, 0, 3, 0]  # both sides threaten: winning comes first
ROW_THREAT = [1, 1, 2, 2, 3, 6]  # bottom row: ours in 1, 2, 3 and both ends open
WIN_IN_3 = [2, 2, 3, 3]  # ours in 2 and 3 of the bottom row: 1 or 4 makes two threats
UNDER_THREAT = [0, 1, 2, 0, 5, 1, 6, 2]  # they threaten the second cell of column 3


def test_connect_four_layout_row_0_is_top_and_action_is_column() -> None:
    env = wrappers.multiagent(CONNECT_FOUR)
    assert env.name == "connect_four_v3"
    obs, infos = env.reset(seed=0)
    assert obs[0].shape == (6, 7, 2) and obs[0].dtype == np.int8
    assert infos[0]["is_active"] and not infos[1]["is_active"]
    obs, _, _, _, infos = env.step([2, 0])  # seat 0 drops into column 2
    assert infos[1]["is_active"]
    assert obs[1][..., 0].sum() == 0
    assert np.argwhere(obs[1][..., 1]).tolist() == [[5, 2]]  # the opponent's plane, bottom row
    obs, _, _, _, infos = env.step([0, 2])  # seat 1 stacks on it
    assert infos[0]["is_active"]
    assert np.argwhere(obs[0][..., 0]).tolist() == [[5, 2]]  # plane 0: the mover's own
    assert np.argwhere(obs[0][..., 1]).tolist() == [[4, 2]]
    # The bots read the board the same way: three stacked from the bottom make a win.
    obs, mask = position(CONNECT_FOUR, WIN_IN_1)
    assert np.argwhere(obs[..., 0]).tolist() == [[3, 3], [4, 3], [5, 3]]
    assert ConnectFourLookahead().act(obs, mask) == 3
    assert ConnectFourNegamax(1).act(obs, mask) == 3


def test_tictactoe_layout_action_a_marks_row_a_div_3_col_a_mod_3() -> None:
    env = wrappers.multiagent(TICTACTOE)
    assert env.name == "tictactoe_v3"
    for action in range(9):
        obs, infos = env.reset(seed=0)
        assert obs[0].shape == (3, 3, 2) and obs[0].dtype == np.int8
        obs, _, _, _, infos = env.step([action, 0])
        assert infos[1]["is_active"]
        assert np.argwhere(obs[1][..., 1]).tolist() == [[action // 3, action % 3]]
        assert obs[1][..., 0].sum() == 0
        assert np.flatnonzero(~infos[1]["action_mask"].astype(bool)).tolist() == [action]
    # Ours on 0 and 1, theirs on 3 and 4: only 2 completes our line (it is row 0 of obs).
    obs, mask = position(TICTACTOE, [0, 3, 1, 4])
    assert TicTacToePerfect().act(obs, mask) == 2


def test_act_takes_a_batch_or_one_observation_and_respects_the_mask() -> None:
    bots = [TicTacToePerfect(), ConnectFourLookahead(), ConnectFourNegamax(2)]
    for bot in bots:
        height, width = bot.board_shape
        n = 9 if height == 3 else 7
        empty = np.zeros((height, width, 2), dtype=np.int8)
        mask = np.zeros(n, dtype=bool)
        mask[[0, n - 1]] = True  # the centre, otherwise preferred, is not allowed
        single = bot.act(empty, mask)
        assert isinstance(single, int) and single in (0, n - 1)
        batch = bot.act(np.stack([empty] * 3), np.stack([mask] * 3))
        assert batch.dtype == np.int64 and batch.shape == (3,)
        assert set(batch.tolist()) <= {0, n - 1}
        assert bot.act(empty) == (4 if n == 9 else 3)  # no mask: the centre


def test_reference_bots_rungs() -> None:
    tictactoe = reference_bots(wrappers.multiagent(TICTACTOE).name)
    assert list(tictactoe) == ["perfect"]
    connect_four = reference_bots(wrappers.multiagent(CONNECT_FOUR).name)
    assert list(connect_four) == ["lookahead", "negamax2", "negamax4"]
    assert [bot.name for bot in connect_four.values()] == list(connect_four)
    assert reference_bots("rps_v2") == {}


def test_tictactoe_perfect_never_loses_to_random_and_draws_itself() -> None:
    perfect = TicTacToePerfect()
    random = RandomPolicy(Discrete(9), seed=0)
    result = play_games(TICTACTOE, perfect, random, games=1000, num_envs=50, seed=0)
    assert result.games == 1000 and result.losses == 0
    assert result.wins > 900  # random blunders into most lines
    # Seeded bots break ties at random, so the self-play games differ from one another.
    mirror = play_games(
        TICTACTOE, TicTacToePerfect(seed=1), TicTacToePerfect(seed=2), games=100, num_envs=50
    )
    assert mirror.draws == 100
    assert play_games(TICTACTOE, perfect, TicTacToePerfect(), games=2, num_envs=2).draws == 2


@pytest.mark.parametrize(
    ("moves", "answers"),
    [
        (WIN_IN_1, {3}),
        (BLOCK, {0}),
        (WIN_OVER_BLOCK, {3}),
        (ROW_THREAT, {0, 4}),
    ],
    ids=["win_in_1", "block", "win_over_block", "row_threat"],
)
def test_lookahead_wins_and_blocks_on_hand_made_positions(moves: list[int], answers: set) -> None:
    obs, mask = position(CONNECT_FOUR, moves)
    assert ConnectFourLookahead().act(obs, mask) in answers
    assert ConnectFourLookahead(seed=0).act(obs, mask) in answers


def test_lookahead_follows_its_rules_on_random_positions() -> None:
    bot = ConnectFourLookahead()
    for obs, mask in random_positions(40, seed=1):
        move = bot.act(obs, mask)
        board = to_board(obs)
        ours, theirs = immediate_wins(board, 1), immediate_wins(board, 2)
        if ours:
            assert move in ours
        elif len(theirs) == 1:
            assert move in theirs
        elif not theirs:
            assert move == next(c for c in (3, 2, 4, 1, 5, 0, 6) if mask[c])
    # It does not look under its moves: it fills the cell below their threat.
    assert bot.act(*position(CONNECT_FOUR, UNDER_THREAT)) == 3


def test_lookahead_beats_random() -> None:
    random = RandomPolicy(Discrete(7), seed=0)
    result = play_games(CONNECT_FOUR, ConnectFourLookahead(), random, games=200, num_envs=50)
    assert result.win_rate >= 0.9, result


@pytest.mark.parametrize(
    ("moves", "answers"),
    [
        (WIN_IN_1, {2: {3}, 4: {3}}),
        (BLOCK, {2: {0}, 4: {0}}),
        (WIN_OVER_BLOCK, {2: {3}, 4: {3}}),
        (ROW_THREAT, {2: {0, 4}, 4: {0, 4}}),
        (WIN_IN_3, {4: {1, 4}}),
        (UNDER_THREAT, {2: {0, 1, 2, 4, 5, 6}, 4: {0, 1, 2, 4, 5, 6}}),
    ],
    ids=["win_in_1", "block", "win_over_block", "row_threat", "win_in_3", "under_threat"],
)
def test_negamax_finds_forced_wins_and_blocks(moves: list[int], answers: dict) -> None:
    obs, mask = position(CONNECT_FOUR, moves)
    board = to_board(obs)
    chosen = {}
    for depth in (2, 4):
        chosen[depth] = ConnectFourNegamax(depth).act(obs, mask)
        if depth in answers:
            assert chosen[depth] in answers[depth], (depth, chosen[depth])
        scores = move_scores(board, depth)
        assert scores[chosen[depth]] == max(scores.values())
    deep = move_scores(board, 4)
    assert deep[chosen[4]] >= deep[chosen[2]]  # searching deeper never picks a worse move


def test_negamax_matches_plain_minimax_on_random_positions() -> None:
    positions = random_positions(12, seed=2)
    wins_in_3 = 0
    # From depth 5 on, one search meets positions again, through its transposition table.
    for depth, sample in ((2, positions), (4, positions), (5, positions[::10])):
        bot = ConnectFourNegamax(depth)
        for obs, mask in sample:
            scores = move_scores(to_board(obs), depth)
            move = bot.act(obs, mask)
            assert scores[move] == max(scores.values()), (depth, obs, scores, move)
            # Of the best moves, the first in centre-first order.
            best = [c for c in (3, 2, 4, 1, 5, 0, 6) if scores.get(c) == max(scores.values())]
            assert move == best[0]
            wins_in_3 += depth == 4 and max(scores.values()) == 2
    assert wins_in_3 > 0  # the sample holds forced wins beyond the next move


def test_connect_four_rungs_are_ordered() -> None:
    # Seeded bots break ties at random, so the games differ; the seeds fix the outcome.
    games = {"games": 100, "num_envs": 50, "seed": 0}
    lower = play_games(
        CONNECT_FOUR, ConnectFourNegamax(2, seed=0), ConnectFourLookahead(seed=1), **games
    )
    assert lower.score > 0.55, lower
    upper = play_games(
        CONNECT_FOUR, ConnectFourNegamax(4, seed=0), ConnectFourNegamax(2, seed=1), **games
    )
    assert upper.score > 0.65, upper


def test_negamax_is_fast_at_depth_4() -> None:
    positions = random_positions(3, seed=3)
    bot = ConnectFourNegamax(4)
    start = time.perf_counter()
    for obs, mask in positions:
        bot.table.clear()  # time a cold search each time
        bot.act(obs, mask)
    assert (time.perf_counter() - start) / len(positions) < 0.05
