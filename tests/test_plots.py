"""`plot_run`: PNGs of a real run directory, and of one with nothing to draw yet."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.image
import pytest
import torch

import league
from league.errors import RunDirError
from league.plots import plot_run

TTT = "classic/tictactoe-v3"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SMALL = {"num_policies": 2, "progress": False, "tensorboard": False}


@pytest.fixture(scope="module")
def ladder_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few seconds of tic-tac-toe with snapshots, checkpoints and ladder evaluations."""
    run_dir = tmp_path_factory.mktemp("plots") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        league.train(
            TTT,
            num_envs=8,
            rollout=32,
            batch_size=256,
            total_steps=0,
            max_seconds=4,
            checkpoint_seconds=1,
            ladder_seconds=1,
            ladder_games=20,
            run_dir=str(run_dir),
            league={"snapshot_every": 512, "snapshot_min_steps": 512},
            **SMALL,
        )
    finally:
        torch.set_num_threads(threads)
    assert (run_dir / "ladder.csv").is_file()
    return run_dir


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC), f"{path.name} is not a PNG"
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4), image.shape
    assert image.shape[0] > 100 and image.shape[1] > 100


def test_a_run_with_a_ladder_gives_all_four_plots_in_its_directory(ladder_run: Path):
    import matplotlib.pyplot as plt

    paths = plot_run(ladder_run)
    names = ["ratings.png", "payoff.png", "returns.png", "ladder.png"]
    assert paths == [ladder_run / name for name in names]
    for path in paths:
        assert_png(path)
    # Plotting is for long runs and servers: no window, no figure left open.
    assert plt.get_fignums() == []


def test_out_dir_is_created_and_the_run_directory_left_alone(ladder_run: Path, tmp_path: Path):
    before = sorted(p.name for p in ladder_run.iterdir())
    out = tmp_path / "figures" / "today"
    paths = plot_run(str(ladder_run), out_dir=out)
    assert [p.parent for p in paths] == [out] * 4
    for path in paths:
        assert_png(path)
    assert sorted(p.name for p in ladder_run.iterdir()) == before


def test_a_run_with_only_its_first_checkpoint_plots_what_it_can(tmp_path: Path):
    run_dir = tmp_path / "run"
    league.train(
        TTT, num_envs=2, rollout=4, batch_size=8, total_steps=1, run_dir=str(run_dir), **SMALL
    )
    # 8 env steps on 2 boards: no game has ended, so nothing is rated or returned yet.
    assert plot_run(run_dir) == []
    assert not list(run_dir.glob("*.png"))


def test_a_directory_without_run_files_is_refused_by_name(tmp_path: Path):
    with pytest.raises(RunDirError, match=re.escape(str(tmp_path))):
        plot_run(tmp_path)
    assert list(tmp_path.iterdir()) == []
