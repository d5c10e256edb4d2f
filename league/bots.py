"""Reference bots: fixed opponents of known strength for the classic board games.

A bot is a fixed policy (it acts like `league.policies.RandomPolicy`) that plays
one game by rule or by search. Bots are the rungs of a reference ladder that
anchors ratings: `TicTacToePerfect` for tic-tac-toe, and `ConnectFourLookahead`,
`ConnectFourNegamax(2)` and `ConnectFourNegamax(4)`, in rising strength, for
connect four. `reference_bots(env_name)` hands out the rungs of an env.

Bots read the observations the env wrappers give for PettingZoo's
`classic/tictactoe-v3` and `classic/connect_four-v3`: int8 arrays (H, W, 2),
plane 0 the pieces of the seat to move and plane 1 the opponent's. In connect
four row 0 is the top of the board and action c drops a piece into column c;
in tic-tac-toe action a marks cell `obs[a // 3, a % 3]`. Bots are deterministic
unless given a `seed`; among equally good moves they prefer the centre.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

import numpy as np


class Bot:
    """A reference bot: acts like a fixed policy, on one board or a batch of them.

    A subclass says how to pick one move for one board, and which moves of a
    board are legal when no action mask is given.
    """

    name: str
    board_shape: tuple[int, int]

    def __init__(self, seed: int | None = None) -> None:
        # No seed: the first of the best moves in preference order, so results reproduce.
        self.rng = None if seed is None else np.random.default_rng(seed)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def act(self, obs: np.ndarray, action_mask: np.ndarray | None = None) -> np.ndarray | int:
        """Actions (int64, shape (B,)) for a batch (B, H, W, 2), or one int for one (H, W, 2).

        `action_mask` (True = legal) has shape (B, n) for a batch and (n,) for one
        observation; without it the legal moves are read off the board.
        """
        obs = np.asarray(obs)
        single = obs.ndim == 3
        boards = obs[None] if single else obs
        if boards.shape[1:] != (*self.board_shape, 2):
            raise ValueError(
                f"bot {self.name!r} plays boards of shape {(*self.board_shape, 2)}, "
                f"got observations of shape {obs.shape}"
            )
        if action_mask is None:
            legal = self._legal(boards)
        else:
            legal = np.asarray(action_mask, dtype=bool).reshape(len(boards), -1)
        if not legal.any(axis=1).all():
            raise ValueError(f"bot {self.name!r}: an action mask row allows no action")
        actions = np.array(
            [self._choose(board, row) for board, row in zip(boards, legal, strict=True)],
            dtype=np.int64,
        )
        return int(actions[0]) if single else actions

    def _pick(self, best: list[int]) -> int:
        """One of `best` (equally good moves in preference order)."""
        return best[0] if self.rng is None else int(self.rng.choice(best))

    def _legal(self, boards: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _choose(self, board: np.ndarray, legal: np.ndarray) -> int:
        raise NotImplementedError


# Tic-tac-toe cells are bits 0-8 in action order; a position is (mover's bits, opponent's bits).
# The eight winning lines as bit masks (public: tests/benchmarks/bench_holes.py reads them).
TICTACTOE_LINES = tuple(
    sum(1 << cell for cell in line)
    for line in (
        (0, 1, 2),
        (3, 4, 5),
        (6, 7, 8),
        (0, 3, 6),
        (1, 4, 7),
        (2, 5, 8),
        (0, 4, 8),
        (2, 4, 6),
    )
)
_TICTACTOE_PREFERENCE = (4, 0, 2, 6, 8, 1, 3, 5, 7)  # centre, corners, edges
_TICTACTOE_WEIGHTS = 1 << np.arange(9, dtype=np.int64)


@cache
def _tictactoe_value(mine: int, theirs: int) -> int:
    """Minimax value for the player to move, the opponent having just moved.

    A win scores 1 + the cells still empty, so faster wins score higher and a
    loss that comes later costs less; a draw scores 0.
    """
    empty = 9 - (mine | theirs).bit_count()
    if any(theirs & line == line for line in TICTACTOE_LINES):
        return -(1 + empty)
    if empty == 0:
        return 0
    taken = mine | theirs
    return max(
        -_tictactoe_value(theirs, mine | 1 << cell) for cell in range(9) if not taken >> cell & 1
    )


class TicTacToePerfect(Bot):
    """Perfect tic-tac-toe by full minimax (memoised; there are under 3^9 positions).

    Never loses; wins as fast as it can and, if the opponent could force a win
    (it cannot from the start), loses as late as it can. Ties: centre, corners, edges.
    """

    name = "perfect"
    board_shape = (3, 3)

    def _legal(self, boards: np.ndarray) -> np.ndarray:
        return ~boards.any(axis=3).reshape(len(boards), 9)

    def move_scores(self, board: np.ndarray, legal: np.ndarray) -> dict[int, int]:
        """Minimax score of each legal move of one board (3, 3, 2), in preference order:
        above 0 wins, 0 draws, below 0 loses (faster wins and later losses score higher)."""
        mine = int(board[..., 0].reshape(9) @ _TICTACTOE_WEIGHTS)
        theirs = int(board[..., 1].reshape(9) @ _TICTACTOE_WEIGHTS)
        moves = [cell for cell in _TICTACTOE_PREFERENCE if legal[cell]]
        return {cell: -_tictactoe_value(theirs, mine | 1 << cell) for cell in moves}

    def _choose(self, board: np.ndarray, legal: np.ndarray) -> int:
        scores = self.move_scores(board, legal)
        best = max(scores.values())
        return self._pick([cell for cell, score in scores.items() if score == best])


# Connect four bitboards: column c holds bits c*7 .. c*7+5, bottom row first; bit
# c*7+6 is a sentinel that stays empty so that no line of four wraps between columns.
# A position is (current, mask): the stones of the player to move, and all stones.
_ROWS, _COLS, _BITS_PER_COL = 6, 7, 7
_CENTRE_FIRST = (3, 2, 4, 1, 5, 0, 6)
_BOTTOM = tuple(1 << (col * _BITS_PER_COL) for col in range(_COLS))
_COLUMN = tuple(((1 << _ROWS) - 1) << (col * _BITS_PER_COL) for col in range(_COLS))
_TOP = tuple(1 << (col * _BITS_PER_COL + _ROWS - 1) for col in range(_COLS))
_FULL = sum(_COLUMN)
# Observation row r counts from the top, so it is bitboard row 5 - r.
_CONNECT_FOUR_WEIGHTS = np.array(
    [
        [1 << (col * _BITS_PER_COL + _ROWS - 1 - row) for col in range(_COLS)]
        for row in range(_ROWS)
    ],
    dtype=np.int64,
)


def _bitboards(board: np.ndarray) -> tuple[int, int]:
    current = int((board[..., 0] * _CONNECT_FOUR_WEIGHTS).sum())
    return current, current | int((board[..., 1] * _CONNECT_FOUR_WEIGHTS).sum())


def _drop(mask: int, col: int) -> int:
    """The bit a piece dropped into `col` lands on (adding the bottom bit carries up the column)."""
    return (mask + _BOTTOM[col]) & _COLUMN[col]


def _four(stones: int) -> bool:
    """Whether `stones` hold four in a line: vertical, horizontal, or either diagonal."""
    for shift in (1, _BITS_PER_COL, _BITS_PER_COL - 1, _BITS_PER_COL + 1):
        pairs = stones & (stones >> shift)
        if pairs & (pairs >> 2 * shift):
            return True
    return False


def immediate_wins(board: np.ndarray, columns: Iterable[int]) -> tuple[list[int], list[int]]:
    """Connect four, the side to move's board (H, W, 2): of `columns`, those where it
    wins at once, and those where the opponent would win at once (the blocks)."""
    current, mask = _bitboards(board)
    columns = list(columns)
    wins = [col for col in columns if _four(current | _drop(mask, col))]
    blocks = [col for col in columns if _four((current ^ mask) | _drop(mask, col))]
    return wins, blocks


class _ConnectFourBot(Bot):
    board_shape = (_ROWS, _COLS)

    def _legal(self, boards: np.ndarray) -> np.ndarray:
        return ~boards[:, 0].any(axis=2)


class ConnectFourLookahead(_ConnectFourBot):
    """One-move lookahead connect four, by three rules taken in order:

    1. play a column that wins at once;
    2. else block a column where the opponent would win at once if it moved there;
    3. else play the first legal column of 3, 2, 4, 1, 5, 0, 6.

    Within a rule the first column in that centre-first order is played, or a
    random one with a `seed` (so a seeded bot's third rule is a random move).
    It does not look under its moves: it may fill the cell below an opponent's
    threat, and it cannot stop two threats at once.
    """

    name = "lookahead"

    def _choose(self, board: np.ndarray, legal: np.ndarray) -> int:
        moves = [col for col in _CENTRE_FIRST if legal[col]]
        wins, blocks = immediate_wins(board, moves)
        return self._pick(wins or blocks or moves)


_EXACT, _LOWER, _UPPER = 0, 1, 2
_MAX_TABLE = 1 << 20


class ConnectFourNegamax(_ConnectFourBot):
    """Connect four by negamax search `depth` plies deep, with alpha-beta pruning.

    Scores are from the mover's side: a win on a move made with d plies of the
    search left scores +d (so faster wins score higher and later losses cost
    less), a full board 0, and a position still open at the horizon 0 (no
    heuristic: the bot is exactly "perfect within `depth` plies, centre-first
    otherwise", which keeps its strength easy to state). It therefore plays
    every forced win of at most `depth` plies, the fastest first, and avoids
    every loss the opponent can force within `depth` plies if it can.

    Moves are tried centre-first, which both prunes well and breaks ties: of
    the best-scoring moves the first of 3, 2, 4, 1, 5, 0, 6 is played, or a
    random one with a `seed`. A transposition table keyed by (position, plies
    left) is kept between calls: its entries hold for that key alone, so moves
    never depend on earlier searches, and it pays off where positions recur (one
    search from depth 5 on; evaluation games that replay the same openings).
    """

    def __init__(self, depth: int, seed: int | None = None) -> None:
        if depth < 1:
            raise ValueError(f"ConnectFourNegamax: depth must be at least 1 ply, got {depth}")
        super().__init__(seed)
        self.depth = depth
        self.name = f"negamax{depth}"
        self.table: dict[tuple[int, int, int], tuple[int, int]] = {}

    def __repr__(self) -> str:
        return f"ConnectFourNegamax(depth={self.depth})"

    def _choose(self, board: np.ndarray, legal: np.ndarray) -> int:
        if len(self.table) > _MAX_TABLE:
            self.table.clear()
        current, mask = _bitboards(board)
        moves = [col for col in _CENTRE_FIRST if legal[col]]
        scores: dict[int, int] = {}
        best = -self.depth - 1
        for col in moves:
            move = _drop(mask, col)
            if _four(current | move):
                scores[col] = self.depth
            else:
                # A window from just below the best so far: a move that cannot reach it
                # fails low, while one that ties or beats it gets its exact score.
                scores[col] = -self._negamax(
                    current ^ mask, mask | move, self.depth - 1, -self.depth - 1, -(best - 1)
                )
            best = max(best, scores[col])
        return self._pick([col for col in moves if scores[col] == best])

    def _negamax(self, current: int, mask: int, depth: int, alpha: int, beta: int) -> int:
        """Score of the position for the player to move, `depth` plies left; the
        caller has checked that the move leading here did not win."""
        if depth == 0 or mask == _FULL:
            return 0
        moves = [col for col in _CENTRE_FIRST if not mask & _TOP[col]]
        if any(_four(current | _drop(mask, col)) for col in moves):
            return depth
        if depth == 1:
            return 0
        # Without a win now, the best this side can still get is a win on its next move.
        beta = min(beta, depth - 2)
        if alpha >= beta:
            return beta
        key = (current, mask, depth)
        entry = self.table.get(key)
        if entry is not None:
            value, bound = entry
            if bound == _EXACT:
                return value
            if bound == _LOWER:
                alpha = max(alpha, value)
            else:
                beta = min(beta, value)
            if alpha >= beta:
                return value
        alpha_in = alpha
        best = -depth
        for col in moves:
            score = -self._negamax(
                current ^ mask, mask | _drop(mask, col), depth - 1, -beta, -alpha
            )
            best = max(best, score)
            alpha = max(alpha, score)
            if alpha >= beta:
                break
        bound = _UPPER if best <= alpha_in else _LOWER if best >= beta else _EXACT
        self.table[key] = (best, bound)
        return best


def reference_bots(env_name: str, seed: int = 0) -> dict[str, Bot]:
    """Fresh reference rungs for an env, by the name the wrappers give it
    (`wrappers.multiagent(...).name`, e.g. "connect_four_v3"); {} for an env without bots.

    The perfect tic-tac-toe player breaks ties between equally good moves at
    random (`seed`): it stays perfect, and games against a greedy policy differ.
    Connect four's bots keep their centre-first order, which a random tie-break
    would weaken; their games differ through random openings (league.ladder).
    """
    if env_name == "tictactoe_v3":
        return {"perfect": TicTacToePerfect(seed=seed)}
    if env_name == "connect_four_v3":
        return {
            "lookahead": ConnectFourLookahead(),
            "negamax2": ConnectFourNegamax(2),
            "negamax4": ConnectFourNegamax(4),
        }
    return {}
