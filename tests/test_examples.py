"""Every script in examples/ runs as written, on a budget of a few seconds.

The scripts train for minutes; here `league.train` keeps every argument the
script passes except the budget (2 seconds of wall time), so what is checked
is the script itself: its env, config, mapping, fixed policies and the tables
it prints after training.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

import league

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(script: Path, tmp_path: Path, monkeypatch, capsys):
    train = league.train
    runs = []

    def short_train(*args, **config):
        config.update(max_seconds=2.0, total_steps=0, progress=False, tensorboard=False)
        runs.append(train(*args, **config))
        return runs[-1]

    monkeypatch.setattr(league, "train", short_train)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(script)])
    runpy.run_path(str(script), run_name="__main__")
    assert runs and all(run.env_steps > 0 for run in runs)
    assert (tmp_path / "runs").is_dir()  # each example keeps its run directory
    assert capsys.readouterr().out.strip()  # and prints what it trained
