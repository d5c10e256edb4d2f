"""Run directories never lose a run: refusals, backups, resume fidelity, signals, reading."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import league
from league.config import TrainConfig
from league.errors import ConfigError, RunDirError
from league.manager import League
from league.records import read_matches
from league.training import Trainer, TrainingState
from league.training.run_dir import RunDir

TTT = "classic/tictactoe-v3"
FAST = dict(
    num_envs=8, rollout=32, batch_size=256, progress=False, tensorboard=False, checkpoint_seconds=5
)
# Snapshots every 512 learner steps, so a short run has some to resume.
SNAPSHOTS = {"snapshot_every": 512, "snapshot_min_steps": 512, "snapshot_win_rate": None}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _hashes(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def _commit(path: Path) -> dict:
    return json.loads((path / "trainer.json").read_text())


def _short_run(path: Path, steps: int = 4_096, **options) -> league.api.LeagueRun:
    options = {**FAST, "league": SNAPSHOTS, **options}
    return league.train(TTT, num_policies=2, total_steps=steps, run_dir=str(path), **options)


def test_a_directory_that_holds_a_run_is_refused_and_left_intact(tmp_path: Path):
    run_dir = tmp_path / "run"
    _short_run(run_dir, steps=1_024)
    before = _hashes(run_dir)
    with pytest.raises(RunDirError, match=r"already holds a run; pass resume=.*overwrite=True"):
        _short_run(run_dir, steps=1_024)
    assert _hashes(run_dir) == before


def test_overwrite_moves_the_old_run_to_a_backup(tmp_path: Path):
    run_dir = tmp_path / "run"
    _short_run(run_dir, steps=1_024)
    before = _hashes(run_dir)
    _short_run(run_dir, steps=1_024, overwrite=True)
    (backup,) = tmp_path.glob("run.backup-*")
    assert _hashes(backup) == before
    assert _commit(run_dir)["env_steps"] >= 1_024  # the new run is where it was asked to be


def test_resume_restores_exactly_what_the_last_checkpoint_wrote(tmp_path: Path):
    run_dir = tmp_path / "run"
    _short_run(run_dir)
    commit = _commit(run_dir)
    saved_league = League.load(run_dir)
    assert saved_league.snapshots(), "the run should have taken snapshots"

    saved = RunDir.open(run_dir).read_config()
    config = TrainConfig.from_dict({**saved, "total_steps": commit["env_steps"] + 2_048})
    trainer = Trainer(TTT, config, resume=run_dir)
    state = trainer.state
    assert state == TrainingState(
        env_steps=commit["env_steps"],
        iteration=commit["iteration"],
        elapsed=commit["elapsed"],
        learner_steps=commit["learner_steps"],
        stopped=commit["stopped"],
    )
    assert min(state.learner_steps.values()) > 0
    for pid in ("p0", "p1"):
        saved = torch.load(run_dir / commit["files"][pid], weights_only=False)["state"]
        now = trainer.population[pid].state_dict()
        assert now["version"] == saved["version"] > 0
        for name, tensor in saved["model"].items():
            assert torch.equal(now["model"][name], tensor)
        for key, moments in saved["optimizer"]["state"].items():
            for name, value in moments.items():
                assert torch.equal(now["optimizer"]["state"][key][name], value), (pid, name)
    for sid in saved_league.snapshots():
        saved = torch.load(run_dir / commit["files"][sid], weights_only=False)["state"]
        frozen = trainer.league.policy(sid)
        for name, tensor in saved["model"].items():
            assert torch.equal(frozen.state_dict()["model"][name], tensor)
    assert trainer.league.ratings.state_dict() == saved_league.ratings.state_dict()
    assert trainer.league.payoff.state_dict() == saved_league.payoff.state_dict()

    # Training on continues every counter: no step restarts at 0, no checkpoint is reused.
    trainer.run()
    after = _commit(run_dir)
    assert after["iteration"] > commit["iteration"]
    for pid in ("p0", "p1"):
        assert after["learner_steps"][pid] > commit["learner_steps"][pid]
        assert after["files"][pid] == f"checkpoints/{pid}/{after['learner_steps'][pid]}.pt"
    matches = read_matches(run_dir)
    assert len(matches) > json.loads((run_dir / "league.json.bak").read_text())["matches_written"]


def test_the_same_seed_in_sync_mode_gives_the_same_run_twice(tmp_path: Path):
    for name in ("a", "b"):
        _short_run(tmp_path / name, steps=3_072)
    pd.testing.assert_frame_equal(read_matches(tmp_path / "a"), read_matches(tmp_path / "b"))
    commit_a, commit_b = _commit(tmp_path / "a"), _commit(tmp_path / "b")
    assert commit_a["files"] == commit_b["files"]
    for relative in commit_a["files"].values():
        a = torch.load(tmp_path / "a" / relative, weights_only=False)["state"]["model"]
        b = torch.load(tmp_path / "b" / relative, weights_only=False)["state"]["model"]
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_mismatched_or_missing_directories(tmp_path: Path):
    with pytest.raises(RunDirError, match=r"'.*nowhere' does not exist"):
        league.train(TTT, resume=str(tmp_path / "nowhere"), **FAST)

    # A directory that mixes two runs: the checkpoint of a 3-learner run under the
    # config of a 2-learner one (what reusing a directory used to leave behind).
    mixed = tmp_path / "mixed"
    league.train(
        TTT,
        num_policies=3,
        total_steps=1_024,
        run_dir=str(mixed),
        **{**FAST, "num_envs": 6, "batch_size": 192},
    )
    config = json.loads((mixed / "config.json").read_text())
    (mixed / "config.json").write_text(json.dumps({**config, "num_policies": 2}))
    with pytest.raises(RunDirError, match=r"holds learners \['p0', 'p1', 'p2'\] but its config"):
        league.train(TTT, resume=str(mixed), **FAST)

    gone = tmp_path / "gone"
    _short_run(gone, steps=1_024)
    (gone / _commit(gone)["files"]["p1"]).unlink()
    with pytest.raises(RunDirError, match=r"checkpoint files are missing: \['checkpoints/p1/"):
        league.train(TTT, resume=str(gone), **FAST)


def test_load_opens_a_read_only_copy_without_writing_or_touching_the_global_rng(tmp_path: Path):
    _short_run(tmp_path / "run", steps=2_048)
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "run", copy)
    for path in [copy, *copy.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    before = _hashes(copy)
    listing = sorted(str(p) for p in copy.rglob("*"))
    rng = torch.get_rng_state()
    try:
        run = league.load(copy)
        board = run.leaderboard()
        obs, mask = np.zeros((3, 3, 2), np.int8), np.ones(9, bool)
        for pid in board["policy"]:
            assert run.policy(pid).act(obs, mask) in range(9)
        assert torch.equal(torch.get_rng_state(), rng)
        assert _hashes(copy) == before
        assert sorted(str(p) for p in copy.rglob("*")) == listing
    finally:
        for path in [copy, *copy.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_unknown_options_anywhere_name_the_closest_valid_one(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"'num_polices' -> did you mean 'num_policies'"):
        league.train(TTT, num_polices=2, run_dir=str(tmp_path))
    with pytest.raises(ConfigError, match=r"'snapshot_evry' -> did you mean 'snapshot_every'"):
        league.train(TTT, league={"snapshot_evry": 100}, run_dir=str(tmp_path))
    with pytest.raises(ConfigError, match=r"total_steps=-5 must be 0 \(no limit\) or more"):
        league.train(TTT, total_steps=-5, run_dir=str(tmp_path))
    assert not (tmp_path / "config.json").exists()


def _train_in_subprocess(run_dir: Path, seed: int) -> subprocess.Popen:
    code = (
        "import league, torch; torch.set_num_threads(1);"
        f"league.train({TTT!r}, num_policies=2, total_steps=10**9, run_dir={str(run_dir)!r},"
        " num_envs=8, rollout=32, batch_size=256, progress=False, tensorboard=False,"
        f" checkpoint_seconds=3600, seed={seed}, league={SNAPSHOTS!r})"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


@pytest.mark.parametrize(
    ("signum", "delay", "seed"),
    [(signal.SIGINT, 0.3, 0), (signal.SIGTERM, 1.5, 1), (signal.SIGINT, 3.0, 2)],
    ids=["SIGINT right after start", "SIGTERM mid-run", "SIGINT later"],
)
def test_a_stop_signal_saves_everything_and_the_run_resumes(tmp_path, signum, delay, seed):
    run_dir = tmp_path / "run"
    proc = _train_in_subprocess(run_dir, seed)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "trainer.json").exists():  # the first checkpoint: training began
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "training did not start within 120 s"
            time.sleep(0.05)
        time.sleep(delay)
        os.kill(proc.pid, signum)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=30)
        assert time.monotonic() - sent < 10, "the run took more than 10 s to stop"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0
    assert f"resume with python -m league train {TTT} --resume {run_dir}" in out, out + err
    # The last checkpoint was written at the stop: it holds every match played.
    commit = _commit(run_dir)
    state = json.loads((run_dir / "league.json").read_text())
    matches = read_matches(run_dir)
    assert len(matches) == state["matches_written"]
    if delay > 1:
        assert commit["env_steps"] > 0 and len(matches) > 0

    board = league.load(run_dir).leaderboard().set_index("policy")
    more = commit["env_steps"] + 1_024
    resumed = league.train(TTT, resume=str(run_dir), total_steps=more, **FAST)
    assert resumed.env_steps >= commit["env_steps"] + 1_024
    after = read_matches(run_dir)
    pd.testing.assert_frame_equal(after.iloc[: len(matches)], matches)  # nothing earlier lost
    assert len(after) > len(matches)
    games = resumed.leaderboard().set_index("policy")["games"]
    assert (games.loc[board.index] >= board["games"]).all()
    assert _commit(run_dir)["iteration"] > commit["iteration"]


def test_a_directory_being_trained_refuses_a_second_writer_until_its_process_ends(tmp_path):
    run_dir = tmp_path / "run"
    proc = _train_in_subprocess(run_dir, seed=3)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "trainer.json").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "training did not start within 120 s"
            time.sleep(0.05)
        busy = rf"being trained by another process \(pid {proc.pid}\); wait for it to end"
        more = _commit(run_dir)["env_steps"] + 256  # short, should the refusal ever fail
        with pytest.raises(RunDirError, match=busy):  # a resume in a second terminal
            league.train(TTT, resume=str(run_dir), total_steps=more, **FAST)
        with pytest.raises(RunDirError, match=busy):  # overwrite must not move a live run
            league.train(TTT, num_policies=2, run_dir=str(run_dir), overwrite=True, **FAST)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
        assert proc.poll() is None, "the first run was disturbed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # however it ends, the lock goes with it
        proc.wait()
    steps = _commit(run_dir)["env_steps"]
    resumed = league.train(TTT, resume=str(run_dir), total_steps=steps + 512, **FAST)
    assert resumed.env_steps >= steps + 512


def _signal_then_sleep(ready) -> None:
    ready.set()
    time.sleep(60)


def test_the_lock_ends_with_the_process_that_claimed_it_not_with_its_forked_workers(tmp_path):
    import multiprocessing

    run = RunDir(tmp_path)
    run.claim()
    fork = multiprocessing.get_context("fork")
    ready = fork.Event()
    worker = fork.Process(target=_signal_then_sleep, args=(ready,))
    worker.start()  # as an env worker is started: it inherits the open lock file
    try:
        assert ready.wait(60), "the worker did not start"  # its at-fork hooks have run
        with pytest.raises(RunDirError, match=r"a Trainer of this process that has not run"):
            RunDir(tmp_path).claim()
        run.release()
        again = RunDir(tmp_path)
        again.claim()  # free at once, while the worker lives on
        assert worker.is_alive()
        again.release()
    finally:
        worker.kill()
        worker.join()


def test_default_run_directories_never_clobber_a_run(tmp_path: Path, monkeypatch):
    first = RunDir.create(tmp_path / "a")
    (first.path / "config.json").write_text("{}")
    with pytest.raises(RunDirError, match="already holds a run"):
        RunDir.create(tmp_path / "a")
    from league.training.trainer import default_run_dir

    monkeypatch.chdir(tmp_path)
    a = default_run_dir("env")
    RunDir.create(a).write_config({})
    b = default_run_dir("env")
    assert a != b and not RunDir(b).holds_run()
