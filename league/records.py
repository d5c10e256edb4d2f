"""The league's files in a run directory: matches.csv.gz, league.json (+ .bak), and readers.

- `matches.csv.gz`: one row per reported match, appended when the league is
  saved, as one more gzip member per save (a gzip file of several members is
  one stream to `gzip`, pandas and zcat: ``pd.read_csv("matches.csv.gz")``
  reads it whole), so a long run's records stay a few MB an hour. List fields
  are ';'-joined. `league.json` counts the rows that belong to its state
  (`matches_written`); rows beyond that count (a crash between the append and
  the state write) are dropped at the next save into that directory. Runs
  made before compression keep appending to their plain `matches.csv`.
- `league.json`: the full league state. Written atomically; before each write
  the current file, if it parses, is copied to `league.json.bak`, so a
  corrupted or truncated `league.json` never replaces the last good state.
- `leaderboard.csv`, `payoff.csv`: exports written by `League.save`.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from league._io import atomic_write_bytes, atomic_write_text
from league.errors import LeagueError

STATE_FILE = "league.json"
BACKUP_FILE = "league.json.bak"
MATCHES_FILE = "matches.csv.gz"
PLAIN_MATCHES_FILE = "matches.csv"  # runs made before compression
LEADERBOARD_FILE = "leaderboard.csv"
PAYOFF_FILE = "payoff.csv"
STATE_FORMAT = 1

MATCH_COLUMNS = ("step", "env_id", "seats", "policies", "team_returns", "ranks", "league_roles")
# The sections of league.json (written by `League.state_dict`).
STATE_SECTIONS = (
    "format",
    "config",
    "layout",
    "policies",
    "retired",
    "ratings",
    "payoff",
    "snapshots",
    "matchmaking",
    "matches_written",
)


class LeagueStateError(LeagueError, ValueError):
    """A league.json that cannot be read back: missing, corrupted, truncated or inconsistent."""


def join_list(values: Sequence[Any]) -> str:
    """';'-joined field of matches.csv (floats as repr, so they read back exactly)."""
    return ";".join(repr(v) if isinstance(v, float) else str(v) for v in values)


def _format_row(row: tuple) -> list[str]:
    """A row of `MatchLog.pending` as the fields of matches.csv (MATCH_COLUMNS)."""
    step, env_id, seats, policies, team_returns, ranks, league_roles = row
    return [
        str(int(step)),
        str(int(env_id)),
        join_list(seats),
        join_list(policies),
        join_list([float(r) for r in team_returns]),
        join_list([int(r) for r in ranks]),
        join_list([r or "" for r in league_roles]),
    ]


class MatchLog:
    """Rows of matches.csv not yet written, and how many rows the saved state owns."""

    def __init__(self, written: int = 0, source: Path | None = None) -> None:
        # Raw rows; formatted once, when written (a match ends every few env steps).
        self.pending: list[tuple] = []
        self.written = written  # rows of `source` that belong to the saved league state
        self.source = source  # the matches.csv holding those rows
        self._synced: Path | None = None  # file known to hold exactly `written` rows

    def add(
        self,
        step: int,
        env_id: int,
        seats: Sequence[str],
        policies: Sequence[str],
        team_returns: Sequence[float],
        ranks: Sequence[int],
        league_roles: Sequence[str | None] = (),
    ) -> None:
        row = (
            step,
            env_id,
            tuple(seats),
            tuple(policies),
            tuple(team_returns),
            tuple(ranks),
            tuple(league_roles),
        )
        self.pending.append(row)

    def flush(self, run_dir: Path) -> None:
        """Append the pending rows to the run's match records."""
        path = matches_path(run_dir)
        if path != self._synced:
            self._adopt(path)
        new = not path.exists() or path.stat().st_size == 0
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        if new:
            writer.writerow(MATCH_COLUMNS)
        writer.writerows(_format_row(row) for row in self.pending)
        with open(path, "ab") as f:
            f.write(_encode(path, text.getvalue()))
            f.flush()
            os.fsync(f.fileno())
        self.written += len(self.pending)
        self.pending.clear()

    def _adopt(self, path: Path) -> None:
        # Make `path` hold exactly the `written` rows of the saved state, under
        # today's header (files of older runs lack the last columns: left empty).
        rows = _data_lines(path)
        if rows is not None and _header(path) != list(MATCH_COLUMNS):
            missing = len(MATCH_COLUMNS) - len(_header(path))
            rows = [line.rstrip("\n") + "," * missing + "\n" for line in rows]
            _write_rows(path, rows)
        if rows is not None and len(rows) > self.written:
            _write_rows(path, rows[: self.written])
        elif rows is None and self.source is not None and self.source.exists() and self.written:
            _write_rows(path, (_data_lines(self.source) or [])[: self.written])
            rows = _data_lines(path)
        if self.written and (rows is None or len(rows) < self.written):
            have = 0 if rows is None else len(rows)
            warnings.warn(
                f"{path} holds {have} matches but the league state counts {self.written}; "
                "new matches are appended after the ones it has",
                stacklevel=3,
            )
            self.written = have
        self._synced = path
        self.source = path


def matches_path(run_dir: str | os.PathLike[str]) -> Path:
    """The run's match records: matches.csv.gz, or the plain matches.csv of an older run."""
    plain = Path(run_dir) / PLAIN_MATCHES_FILE
    return plain if plain.exists() else Path(run_dir) / MATCHES_FILE


def _encode(path: Path, text: str) -> bytes:
    data = text.encode("utf-8")
    return gzip.compress(data, compresslevel=6, mtime=0) if path.suffix == ".gz" else data


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    return (gzip.decompress(data) if path.suffix == ".gz" else data).decode("utf-8")


def _header(path: Path) -> list[str]:
    return next(csv.reader(io.StringIO(_read_text(path).partition("\n")[0])), [])


def _data_lines(path: Path) -> list[str] | None:
    if not path.exists():
        return None
    return _read_text(path).splitlines(keepends=True)[1:]


def _write_rows(path: Path, rows: list[str]) -> None:
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(MATCH_COLUMNS)
    atomic_write_bytes(path, _encode(path, header.getvalue() + "".join(rows)))


def read_matches(run_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """The run's match records with their list fields parsed back into lists."""
    frame = pd.read_csv(matches_path(run_dir), dtype=str, keep_default_na=False)
    if "league_roles" not in frame:  # a run from before league roles were recorded
        frame["league_roles"] = [";" * cell.count(";") for cell in frame["seats"]]
    frame["step"] = frame["step"].astype(int)
    frame["env_id"] = frame["env_id"].astype(int)
    for column, kind in (
        ("seats", str),
        ("policies", str),
        ("team_returns", float),
        ("ranks", int),
        ("league_roles", str),
    ):
        frame[column] = [[kind(v) for v in cell.split(";")] for cell in frame[column]]
    return frame


def write_state(run_dir: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write league.json atomically, first keeping the current good one as league.json.bak."""
    run_dir = Path(run_dir)
    path = run_dir / STATE_FILE
    text = json.dumps(state, indent=1, sort_keys=True, allow_nan=False) + "\n"
    if path.exists():
        old = path.read_bytes()
        if _parses(old):
            atomic_write_bytes(run_dir / BACKUP_FILE, old)
    atomic_write_text(path, text)


def _parses(data: bytes) -> bool:
    try:
        state = json.loads(data)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return False
    return _problem(state) is None


def _problem(state: Any) -> str | None:
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        return f"it is not a league state of format {STATE_FORMAT}"
    missing = [k for k in STATE_SECTIONS if k not in state]
    return f"it lacks the sections {missing}" if missing else None


def read_state(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed league.json, or LeagueStateError naming the file and the way back."""
    path = Path(run_dir) / STATE_FILE
    if not path.exists():
        raise LeagueStateError(f"{path} does not exist: no league was saved in {run_dir}")
    try:
        state = json.loads(path.read_bytes())
    except ValueError as err:
        raise state_error(path, f"it is corrupted or truncated ({err})") from err
    problem = _problem(state)
    if problem is not None:
        raise state_error(path, problem)
    return state


def state_error(path: Path, problem: str) -> LeagueStateError:
    """LeagueStateError for `path`, pointing at the backup when there is one."""
    backup = path.with_name(BACKUP_FILE)
    if backup.exists():
        hint = f"the last good state is in {backup}: copy it over {path.name} to resume from it"
    else:
        hint = "there is no backup of an earlier state"
    return LeagueStateError(f"cannot load {path}: {problem}; {hint}")
