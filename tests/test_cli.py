"""The command line: train, leaderboard, eval and play on a real (small) run."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli

from league.manager import League

TTT = "classic/tictactoe-v3"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "run"
    out = run_cli(
        "train",
        TTT,
        "--num-policies",
        "2",
        "--num-envs",
        "8",
        "--rollout",
        "32",
        "--batch-size",
        "256",
        "--total-steps",
        "4096",
        "--run-dir",
        str(path),
        "--progress",
        "false",
        "--league",
        '{"strategy": "uniform"}',
    )
    assert out.returncode == 0, out.stderr
    assert "leaderboard:" in out.stdout
    return path


def test_train_writes_a_complete_run_directory(run_dir: Path):
    for name in (
        "config.json",
        "league.json",
        "matches.csv.gz",
        "leaderboard.csv",
        "payoff.csv",
        "trainer.json",
    ):
        assert (run_dir / name).exists(), name
    assert League.load(run_dir).config.strategy == "uniform"
    assert any((run_dir / "tb").iterdir())


def test_train_help_documents_every_option():
    out = run_cli("train", "--help")
    assert out.returncode == 0
    for option in ("--num-policies", "--batch-size", "--rollout", "--league", "--max-seconds"):
        assert option in out.stdout
    assert "Samples (decisions of one learner) per update" in out.stdout


def test_leaderboard_prints_and_exports_csv(run_dir: Path, tmp_path: Path):
    target = tmp_path / "board.csv"
    out = run_cli("leaderboard", str(run_dir), "--csv", str(target))
    assert out.returncode == 0, out.stderr
    board = pd.read_csv(target)
    assert list(board["policy"])[:1] and "random" in set(board["policy"])
    assert "rating" in out.stdout and "random" in out.stdout


def test_eval_reports_results_with_an_interval(run_dir: Path):
    out = run_cli("eval", str(run_dir), "--games", "20", "--opponent", "random")
    assert out.returncode == 0, out.stderr
    assert "20 games" in out.stdout and "95% CI" in out.stdout


def test_eval_plays_the_whole_ladder(run_dir: Path):
    out = run_cli("eval", str(run_dir), "--ladder", "--games", "10")
    assert out.returncode == 0, out.stderr
    assert "on the tictactoe_v3 ladder" in out.stdout
    rows = [line for line in out.stdout.splitlines() if line.startswith("| random")]
    rows += [line for line in out.stdout.splitlines() if line.startswith("| perfect")]
    assert len(rows) == 2 and all("| 10 |" in row for row in rows)
    for row in rows:  # the last column: W/D/L in each seat, five games in each
        seats = re.findall(r"seat (\d): (\d+)/(\d+)/(\d+)", row.split("|")[-2])
        assert [s[0] for s in seats] == ["0", "1"]
        assert all(sum(map(int, s[1:])) == 5 for s in seats)


def test_play_lets_a_person_finish_a_game(run_dir: Path):
    moves = "\n".join(["x"] + [str(m) for m in range(9)] * 3) + "\n"
    out = run_cli("play", str(run_dir), "--seat", "0", stdin=moves)
    assert out.returncode == 0, out.stderr
    assert "'x' is not a number" in out.stdout
    assert "0 1 2" in out.stdout  # the board's column numbers
    assert any(v in out.stdout for v in ("You win!", "You lose.", "Draw."))


def test_unknown_env_is_a_clear_error():
    out = run_cli("train", "classic/nope-v0", "--total-steps", "10")
    assert out.returncode != 0
    assert "names no env" in out.stderr


def test_the_options_table_in_the_docs_is_current():
    from league.config import TrainConfig

    docs = (Path(__file__).parents[1] / "docs" / "training.md").read_text()
    assert TrainConfig.options_table() in docs, "regenerate it: TrainConfig.options_table()"


def test_pbt_takes_true_or_a_json_object():
    from league.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["train", "classic/tictactoe-v3", "--pbt", '{"interval": 5000}'])
    assert args.pbt == {"interval": 5000}
    assert parser.parse_args(["train", "classic/tictactoe-v3", "--pbt", "true"]).pbt is True
