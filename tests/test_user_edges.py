"""What users hit: runs that reopen from every CLI command, one-line errors naming the
culprit, leaderboards by role, games that are not contests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TinyParallelEnv, run_cli
from gymnasium import spaces

import league
from league.cli import main as cli_main
from league.errors import ConfigError, PolicyError
from league.records import LeagueStateError
from wrappers.errors import EnvError

TTT = "classic/tictactoe-v3"
FAST = dict(num_envs=8, rollout=32, batch_size=256, progress=False, tensorboard=False)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _one_line_error(out: subprocess.CompletedProcess, *parts: str) -> None:
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    for part in parts:
        assert part in lines[0], lines[0]


@pytest.fixture(scope="module")
def rps_run(tmp_path_factory) -> Path:
    """A run trained from PettingZoo's own `rps_v2.parallel_env`, a closure."""
    from pettingzoo.classic import rps_v2

    path = tmp_path_factory.mktemp("rps") / "run"
    league.train(
        rps_v2.parallel_env,
        num_policies=2,
        num_envs=8,
        rollout=16,
        batch_size=256,
        total_steps=1_024,
        run_dir=str(path),
        progress=False,
        tensorboard=False,
        checkpoint_seconds=0.5,
    )
    return path


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """`python -m league ARGS` in this process (the same `main`, without a new interpreter)."""
    from league.cli import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_run_of_a_parallel_env_function_reopens_from_every_command(
    rps_run: Path, capsys, monkeypatch
):
    config = json.loads((rps_run / "config.json").read_text())
    assert config["env"].endswith(":parallel_env") and "rps" in config["env"]
    code, out, _ = cli(capsys, "leaderboard", str(rps_run))
    assert code == 0 and "p0" in out
    code, out, _ = cli(capsys, "eval", str(rps_run), "--games", "10")
    assert code == 0 and "10 games" in out
    code, out, _ = cli(capsys, "eval", str(rps_run), "--ladder", "--games", "10")
    assert code == 0 and "| random | 10 |" in out
    monkeypatch.setattr("builtins.input", lambda prompt="": "0")
    code, out, _ = cli(capsys, "play", str(rps_run))
    assert code == 0 and any(word in out for word in ("You win", "You lose", "Draw"))
    code, out, _ = cli(capsys, "plot", str(rps_run), "--out", str(rps_run / "png"))
    assert code == 0 and "ratings.png" in out


def test_a_run_of_an_env_that_cannot_be_named_asks_for_env(tmp_path: Path, capsys):
    from pettingzoo.classic import rps_v2

    league.train(
        lambda: rps_v2.parallel_env(),
        num_policies=2,
        num_envs=8,
        rollout=16,
        batch_size=128,
        total_steps=256,
        run_dir=str(tmp_path),
        progress=False,
        tensorboard=False,
    )
    assert json.loads((tmp_path / "config.json").read_text())["env"] is None
    assert cli(capsys, "leaderboard", str(tmp_path))[0] == 0  # no env needed to read
    code, _, err = cli(capsys, "eval", str(tmp_path), "--games", "4")
    assert code == 2 and "--env" in err and len(err.strip().splitlines()) == 1
    env = "pettingzoo.classic.rps_v2"
    code, out, _ = cli(capsys, "eval", str(tmp_path), "--games", "4", "--env", env)
    assert code == 0 and "4 games" in out


def _in_process_error(capsys, argv: list[str], *parts: str) -> None:
    """`league ARGV` through the CLI's own entry point, in this process (a subprocess
    per case would import torch nine times): exit status 2 and one line naming the fix."""
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in lines[0], lines[0]


def test_expected_errors_print_one_line_with_the_fix(tmp_path: Path, capsys):
    # One real process: what a shell sees (exit status, stderr, no traceback).
    _one_line_error(run_cli("train", "classic/nope-v0"), "'classic/nope-v0' names no env")
    _in_process_error(
        capsys,
        ["train", TTT, "--total-steps", "-5", "--run-dir", str(tmp_path / "x")],
        "total_steps=-5 must be 0 (no limit) or more",
    )
    run = tmp_path / "run"
    league.train(TTT, num_policies=2, total_steps=512, run_dir=str(run), **FAST)
    capsys.readouterr()
    _in_process_error(capsys, ["eval", str(run), "--policy", "p7"], "no policy 'p7'", "p0, p1")
    _in_process_error(capsys, ["eval", str(run), "--opponent", "p7"], "no policy 'p7'")
    (tmp_path / "empty").mkdir()
    _in_process_error(capsys, ["plot", str(tmp_path / "empty")], "holds none of", "runs/<name>")
    _in_process_error(capsys, ["check", TTT, "--episodes", "0"], "episodes=0")
    (run / "league.json").write_text("{broken")
    _in_process_error(capsys, ["leaderboard", str(run)], "league.json", "league.json.bak")
    with pytest.raises(LeagueStateError):  # --debug lets the traceback through
        cli_main(["--debug", "leaderboard", str(run)])


def _first_legal(obs, action_mask):
    return int(np.flatnonzero(action_mask)[0])


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (lambda obs, mask: None, r"policy 'bad' \(seat 'player_\d' of env \d+\) returned \[None"),
        (lambda obs, mask: 2.7, r"policy 'bad' .* returned action 2.7 for Discrete\(9\)"),
        (lambda obs, mask: 9, r"policy 'bad' .* returned action 9, outside Discrete\(9\)"),
        (
            lambda obs, mask: int(np.flatnonzero(~mask)[0]) if (~mask).any() else 0,
            r"policy 'bad' chose action \d in seat 'player_\d' of env \d+, which the action mask"
            r" forbids .*illegal_actions='env'",
        ),
    ],
    ids=["none", "float", "outside", "masked"],
)
def test_a_misbehaving_fixed_policy_is_named(tmp_path: Path, policy, message: str):
    with pytest.raises(PolicyError, match=message):
        league.train(
            TTT,
            num_policies=2,
            total_steps=4_096,
            fixed_policies={"bad": policy},
            run_dir=str(tmp_path),
            **FAST,
        )


def test_illegal_actions_env_lets_the_env_rule_on_them(tmp_path: Path):
    def masked(obs, mask):
        return int(np.flatnonzero(~mask)[0]) if (~mask).any() else int(np.flatnonzero(mask)[0])

    run = league.train(
        TTT,
        num_policies=2,
        total_steps=2_048,
        fixed_policies={"cheat": masked},
        illegal_actions="env",
        run_dir=str(tmp_path),
        **FAST,
    )
    assert run.leaderboard().set_index("policy").loc["cheat", "losses"] > 0


def test_env_input_errors_name_the_env_and_its_parameters():
    from pettingzoo.butterfly import pistonball_v6

    with pytest.raises(EnvError, match=r"no parameter\(s\) \['n_pistonz'\].*n_pistons"):
        league.train(pistonball_v6.parallel_env, env_kwargs={"n_pistonz": 3})
    with pytest.raises(EnvError, match="has no agents"):
        league.train(lambda: TinyParallelEnv(spaces.Discrete(2), {}))


def test_simple_tag_ranks_each_role_on_its_own(tmp_path: Path):
    run = league.train(
        "mpe2.simple_tag_v3",
        num_policies=2,
        num_envs=4,
        rollout=16,
        batch_size=64,
        total_steps=256,
        env_kwargs={"max_cycles": 25},
        run_dir=str(tmp_path),
        progress=False,
        tensorboard=False,
    )
    board = run.leaderboard()
    assert set(board["role"]) == {"adversary", "agent"}
    for _, rows in board.groupby("role"):
        assert list(rows["rank"]) == list(range(1, len(rows) + 1))
    seats = {"adversary_0", "adversary_1", "adversary_2", "agent_0"}
    assert not seats & set(board["policy"])
    assert {"adversary_p0", "agent_p0", "random_adversary", "random_agent"} <= set(board["policy"])


def test_games_that_are_not_contests_rank_by_return(tmp_path: Path, capsys):
    run = league.train(
        "mpe2.simple_spread_v3",
        num_policies=2,
        opponents=[],
        teams={f"agent_{i}": "team" for i in range(3)},
        num_envs=8,
        rollout=16,
        batch_size=192,
        total_steps=512,
        env_kwargs={"max_cycles": 25},
        run_dir=str(tmp_path / "spread"),
        progress=False,
        tensorboard=False,
        ladder_seconds=0.01,  # no ladder for a game that is not a contest: none runs
    )
    board = run.leaderboard()
    assert (board["ranked_by"] == "return").all()
    assert board["mean_return"].notna().all()
    assert (board["return_lo"] <= board["mean_return"]).all()
    assert list(board["mean_return"]) == sorted(board["mean_return"], reverse=True)
    assert "not contests" in capsys.readouterr().out
    assert not (tmp_path / "spread" / "ladder.csv").exists()
    printed = run_cli("leaderboard", str(tmp_path / "spread"))
    assert "mean_return" in printed.stdout and "ranked by mean episode return" in printed.stdout
    single = league.train(
        "CartPole-v1",
        num_policies=2,
        opponents=[],
        num_envs=8,
        rollout=16,
        batch_size=64,
        total_steps=256,
        run_dir=str(tmp_path / "cartpole"),
        progress=False,
        tensorboard=False,
        ladder_seconds=0.01,
    ).leaderboard()
    assert (single["ranked_by"] == "return").all() and single["mean_return"].notna().all()


def test_learners_that_only_play_themselves_are_warned_unrated(tmp_path: Path, capsys):
    """Self-play alone in a one-role env rates no game: the run says its leaderboard
    cannot rank the learners; a mix with past players, or one learner, says nothing."""
    run = league.train(
        TTT,
        num_policies=2,
        league={"strategy": "self_play"},
        total_steps=512,
        run_dir=str(tmp_path / "selfplay"),
        **FAST,
    )
    assert "only plays itself, so no game is rated" in capsys.readouterr().out
    board = run.leaderboard()
    learners = board[board["kind"] == "learner"]
    assert (learners["games"] == 0).all() and learners["rating"].isna().all()
    league.train(
        TTT,
        num_policies=2,
        league={"mix": {"self_play": 1.0}},
        total_steps=256,
        run_dir=str(tmp_path / "mix_selfplay"),
        **FAST,
    )
    assert "no game is rated" in capsys.readouterr().out
    quiet = {
        "mixed": {"num_policies": 2},
        "lone": {"num_policies": 1, "league": {"strategy": "self_play"}},
    }
    for name, options in quiet.items():
        league.train(TTT, total_steps=256, run_dir=str(tmp_path / name), **options, **FAST)
        assert "no game is rated" not in capsys.readouterr().out


def test_fixed_policies_named_like_seats_are_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"policy ids \['player_1'\] are seat names"):
        league.train(
            TTT, num_policies=2, fixed_policies={"player_1": _first_legal}, run_dir=str(tmp_path)
        )


def test_a_cluster_run_resumes_locally(tmp_path: Path):
    """A run trained on a Ray cluster saved its address; resuming it with
    backend="local" leaves the address (and GPUs) behind with the Ray backend."""
    league.train(TTT, num_policies=2, total_steps=512, run_dir=str(tmp_path), **FAST)
    config = json.loads((tmp_path / "config.json").read_text())
    config.update(backend="ray", ray_address="10.0.0.1:6379", ray_gpus=1.0, num_workers=4)
    (tmp_path / "config.json").write_text(json.dumps(config))
    run = league.train(TTT, resume=str(tmp_path), backend="local", total_steps=1_024, **FAST)
    assert run.env_steps >= 1_024
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["backend"] == "local" and saved["ray_address"] is None


def test_a_resume_refuses_other_league_options_and_adds_new_opponents(tmp_path: Path):
    league.train(TTT, num_policies=2, total_steps=512, run_dir=str(tmp_path), **FAST)
    with pytest.raises(ConfigError, match=r"max_snapshots 20 -> 4"):
        league.train(TTT, resume=str(tmp_path), total_steps=1_024, league={"max_snapshots": 4})
    run = league.train(
        TTT,
        resume=str(tmp_path),
        total_steps=4_096,
        fixed_policies={"first_legal": _first_legal},
        **FAST,
    )
    assert "first_legal" in set(run.leaderboard()["policy"])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="env workers fork on Linux only")
def test_a_script_without_a_main_guard_trains_with_env_workers(tmp_path: Path):
    """The README's three lines saved as a script and run with `python`, twice in one
    process, with env workers, a progress bar and TensorBoard: the workers fork, so the
    script is not run again in each of them (forkserver would, and fail)."""
    script = tmp_path / "three_lines.py"
    script.write_text(
        "from pettingzoo.classic import tictactoe_v3\n"
        "import league\n"
        "for name in ('a', 'b'):\n"
        "    league.train(tictactoe_v3.env, num_policies=2, total_steps=3000, num_envs=8,\n"
        "                 num_workers=2, run_dir=name)\n"
    )
    out = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("league: training") == 2, out.stdout
    for name in ("a", "b"):
        assert (tmp_path / name / "leaderboard.csv").exists()


def test_the_last_line_says_how_many_samples_the_learners_trained_on(tmp_path: Path, capsys):
    """Games against a fixed policy or a snapshot train only the learner's side: the
    last line says how many samples the learners trained on, per env step."""
    per_step = {}
    for name, strategy, opponents in [("self", "self_play", []), ("mixed", "uniform", ["random"])]:
        run_dir = tmp_path / name
        league.train(
            TTT,
            num_policies=1,
            league={"strategy": strategy},
            opponents=opponents,
            total_steps=2_048,
            run_dir=str(run_dir),
            **FAST,
        )
        last = capsys.readouterr().out.strip().splitlines()[-1]
        commit = json.loads((run_dir / "trainer.json").read_text())
        samples = sum(commit["learner_steps"].values())
        per_step[name] = samples / commit["env_steps"]
        note = f"the learners trained on {samples:,} samples ({per_step[name]:.2f} per env step)"
        assert samples > 0 and note in last, last
    # Self-play learns from both seats; a game against random play from one of two.
    assert per_step["self"] > per_step["mixed"]
