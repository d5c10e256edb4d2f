"""The run directory: league.json round trips, matches.csv, CSV exports, atomic writes,
and corrupted state."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from gymnasium.spaces import Discrete

from league._io import atomic_write_bytes, atomic_write_text
from league.manager import LEADERBOARD_COLUMNS, League, LeagueConfig, MatchResult
from league.policies import RandomPolicy
from league.records import MATCH_COLUMNS, LeagueStateError, read_matches

TAG_SEATS = ["adversary_0", "adversary_1", "adversary_2", "agent_0"]
TAG_ROLES = ["adversary", "adversary", "adversary", "agent"]
TEAMS = {"adversary_0": "hunters", "adversary_1": "hunters", "adversary_2": "hunters"}
TEAMS["agent_0"] = "prey"


def build(strategy: str = "uniform") -> League:
    config = LeagueConfig(strategy=strategy, resample_interval=2, max_snapshots=2, seed=3)
    league = League(TAG_SEATS, TAG_ROLES, teams=TEAMS, config=config)
    league.add_learner("hunter", "adversary")
    league.add_learner("runner", "agent", algo="dqn")
    league.add_fixed("random", "agent", RandomPolicy(Discrete(5), seed=0))
    return league


def play(league: League, episodes: int, seed: int, start_step: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for episode in range(episodes):
        env_id = episode % 3
        ids = league.assign(env_id)
        returns = [float(r) for r in rng.integers(-2, 3, size=4)]
        step = start_step + 25 * episode
        league.report(env_id, MatchResult(ids, returns, step=step, env_id=env_id))
        if episode % 10 == 9:
            league.add_snapshot("hunter", step, {"weights": episode})


def test_save_load_save_is_byte_identical(tmp_path: Path) -> None:
    for strategy in ("uniform", "mix", "round_robin"):
        league = build(strategy)
        play(league, 45, seed=1)
        league.should_snapshot("runner", 777)
        league.save(tmp_path / strategy)
        first = (tmp_path / strategy / "league.json").read_bytes()
        assert json.loads(first)["retired"]  # eviction happened: retired snapshots saved too
        League.load(tmp_path / strategy).save(tmp_path / strategy)
        assert (tmp_path / strategy / "league.json").read_bytes() == first


def test_a_loaded_league_continues_exactly(tmp_path: Path) -> None:
    league = build("mix")
    play(league, 30, seed=2)
    league.save(tmp_path)
    loaded = League.load(tmp_path)
    for copy in (league, loaded):
        play(copy, 30, seed=3, start_step=1000)
    assert loaded.state_dict() == league.state_dict()
    pd.testing.assert_frame_equal(loaded.leaderboard(), league.leaderboard())
    assert loaded.policies["hunter"].payload is None  # payloads are the trainer's to restore
    assert loaded.policies["runner"].algo == "dqn"


def test_matches_csv_records_every_match(tmp_path: Path) -> None:
    league = build()
    play(league, 7, seed=4)
    league.save(tmp_path)
    play(league, 5, seed=5, start_step=500)
    league.save(tmp_path)
    league.save(tmp_path)  # nothing new: nothing appended
    matches = read_matches(tmp_path)
    assert tuple(matches.columns) == MATCH_COLUMNS
    assert len(matches) == 12
    first = matches.iloc[0]
    assert first["seats"] == TAG_SEATS
    assert len(first["policies"]) == 4 and len(set(first["policies"][:3])) == 1
    assert len(first["team_returns"]) == 2 and all(
        isinstance(r, float) for r in first["team_returns"]
    )
    assert matches["step"].tolist()[7:] == [500, 525, 550, 575, 600]
    for _, row in matches.iterrows():
        hunters, prey = row["team_returns"]
        assert row["ranks"] == ([0, 0] if hunters == prey else [0, 1] if hunters > prey else [1, 0])
    # Every save appends a gzip member; the file is one stream to gzip and to pandas.
    header = gzip.decompress((tmp_path / "matches.csv.gz").read_bytes()).decode().splitlines()[0]
    assert header == ",".join(MATCH_COLUMNS)
    assert len(pd.read_csv(tmp_path / "matches.csv.gz")) == 12


def test_older_runs_keep_their_plain_matches_csv(tmp_path: Path) -> None:
    league = build()
    play(league, 3, seed=12)
    league.save(tmp_path)
    old_columns = MATCH_COLUMNS[:-1]  # before league roles were recorded
    frame = pd.read_csv(tmp_path / "matches.csv.gz")[list(old_columns)]
    frame.to_csv(tmp_path / "matches.csv", index=False)
    (tmp_path / "matches.csv.gz").unlink()
    before = read_matches(tmp_path)  # read as it is, before any save rewrites it
    assert before["league_roles"].tolist() == [["", "", "", ""]] * 3
    resumed = League.load(tmp_path)
    play(resumed, 2, seed=13, start_step=400)
    resumed.save(tmp_path)
    matches = read_matches(tmp_path)
    assert len(matches) == 5 and not (tmp_path / "matches.csv.gz").exists()
    assert tuple(matches.columns) == MATCH_COLUMNS


def test_match_records_stay_a_few_mb_an_hour(tmp_path: Path) -> None:
    from league.records import MatchLog

    log = MatchLog()
    names = np.array(["p0", "p1", "p2", "p3@150000", "main_exploiter0@98304", "random"])
    picks = np.random.default_rng(0).integers(len(names), size=(114_000, 2))
    seats = ["player_0", "player_1"]
    # Ten busy minutes of connect four: ~190 matches a second, a save every minute.
    for minute in range(10):
        for k in range(minute * 11_400, (minute + 1) * 11_400):
            a, b = names[picks[k]]
            log.add(k * 21, k % 192, seats, [a, b], [1.0, -1.0], [0, 1], ["main", "learner"])
        log.flush(tmp_path)
    size = (tmp_path / "matches.csv.gz").stat().st_size
    assert size * 6 < 10 * 2**20, size  # under 10 MB an hour
    assert len(pd.read_csv(tmp_path / "matches.csv.gz")) == 114_000


def test_rows_past_the_saved_state_are_dropped(tmp_path: Path) -> None:
    league = build()
    play(league, 6, seed=6)
    league.save(tmp_path)
    play(league, 4, seed=7, start_step=300)
    league.save(tmp_path)
    # As if the run had crashed after appending the 4 rows but before writing league.json.
    shutil.copy(tmp_path / "league.json.bak", tmp_path / "league.json")
    resumed = League.load(tmp_path)
    play(resumed, 2, seed=8, start_step=900)
    resumed.save(tmp_path)
    assert read_matches(tmp_path)["step"].tolist() == [0, 25, 50, 75, 100, 125, 900, 925]


def test_saving_elsewhere_carries_the_earlier_matches(tmp_path: Path) -> None:
    league = build()
    play(league, 5, seed=9)
    league.save(tmp_path / "a")
    moved = League.load(tmp_path / "a")
    play(moved, 2, seed=10, start_step=200)
    moved.save(tmp_path / "b")
    assert len(read_matches(tmp_path / "b")) == 7
    assert len(read_matches(tmp_path / "a")) == 5


def test_leaderboard_and_payoff_csv_round_trip_through_pandas(tmp_path: Path) -> None:
    league = build()
    play(league, 25, seed=11)
    league.save(tmp_path)
    board = league.leaderboard()
    assert board["parent"].notna().any() and board["parent"].isna().any()
    written = pd.read_csv(tmp_path / "leaderboard.csv")
    assert tuple(written.columns) == LEADERBOARD_COLUMNS
    pd.testing.assert_frame_equal(written, board)
    payoff = pd.read_csv(tmp_path / "payoff.csv", index_col="policy")
    payoff.columns.name = "opponent"
    pd.testing.assert_frame_equal(payoff, league.payoff_matrix())


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 2],  # truncated mid-write
        lambda text: "\x00" * 40,  # garbage
        lambda text: "[1, 2, 3]\n",  # valid JSON, not a league
        lambda text: text.replace('"payoff"', '"payof"'),  # a section missing
    ],
)
def test_a_damaged_league_json_is_named_and_the_backup_kept(tmp_path: Path, damage) -> None:
    league = build()
    play(league, 5, seed=12)
    league.save(tmp_path)
    play(league, 5, seed=13, start_step=200)
    league.save(tmp_path)
    state = tmp_path / "league.json"
    backup = tmp_path / "league.json.bak"
    good = backup.read_bytes()
    state.write_text(damage(state.read_text()))
    with pytest.raises(LeagueStateError, match=f"cannot load {state}.*league.json.bak"):
        League.load(tmp_path)
    # Saving over the damaged file must not overwrite the good backup with it.
    build().save(tmp_path)
    assert backup.read_bytes() == good
    shutil.copy(backup, state)
    assert len(League.load(tmp_path).ratings.history.items()) > 0


def test_a_league_json_with_a_wrong_value_is_named(tmp_path: Path) -> None:
    league = build()
    play(league, 5, seed=14)
    league.save(tmp_path)
    state = tmp_path / "league.json"
    state.write_text(state.read_text().replace('"matches_written": 5', '"matches_written": "x"'))
    with pytest.raises(LeagueStateError, match=f"cannot load {state}: its content is inconsistent"):
        League.load(tmp_path)


def test_loading_without_a_state_is_named(tmp_path: Path) -> None:
    with pytest.raises(LeagueStateError, match=r"league\.json does not exist"):
        League.load(tmp_path)


def test_atomic_writes_replace_whole_files_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.txt"
    atomic_write_text(path, "first")
    os.chmod(path, 0o640)
    atomic_write_bytes(path, b"second")
    assert path.read_bytes() == b"second"
    assert path.stat().st_mode & 0o777 == 0o640
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")  # fails mid-write
    assert path.read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.txt"]  # no temp files left
