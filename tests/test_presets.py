"""Env presets: what the three-line call trains on connect four and tic-tac-toe, what
wins over a preset, and that a resume keeps the models it started with."""

from __future__ import annotations

import json

import pytest

import league
from league.config import TrainConfig
from league.errors import ConfigError
from league.presets import unregister_preset
from league.symmetry import register_symmetries, unregister_symmetries
from league.training.plan import EnvInfo, make_plan
from league.training.population import Population

# Round 14's arm P (docs/benchmarks.md), spelled out as the benchmark ran it.
BOARD_AVERAGE = {"algo": "ppo", "encoder": "board", "symmetry_mode": "average"}
# Round 40's mix (H40): the three-line call with this league option, as the benchmark ran it.
H40_MIX = {"self_play": 0.85, "pfsp": 0.1125, "snapshots": 0.0375}


@pytest.fixture(scope="module")
def connect_four() -> EnvInfo:
    return EnvInfo.probe("classic/connect_four-v3", measure=False)


def test_connect_four_defaults_are_the_measured_board_cnn_league(connect_four):
    plan = make_plan(TrainConfig(), connect_four, cores=2)
    measured = make_plan(
        TrainConfig(symmetries=True, policies=[BOARD_AVERAGE] * 6), connect_four, cores=2
    )
    # The learners the benchmark measured, but for their names.
    assert [s.config for s in plan.learners] == [s.config for s in measured.learners]
    assert [s.seed for s in plan.learners] == [s.seed for s in measured.learners]
    assert plan.config.num_envs == measured.config.num_envs
    assert plan.learners[0].config["encoder"] == "board"
    assert plan.learners[0].config["symmetries"][0][1] == [6, 5, 4, 3, 2, 1, 0]
    assert set(plan.preset) == {
        "encoder",
        "symmetries",
        "share_trunk",
        "trunk_update",
        "shared_body",
        "league",
    }
    # Round 40: the learners play themselves in 0.85 of their games.
    assert plan.config.league == {"mix": H40_MIX}
    h40 = make_plan(TrainConfig(league={"mix": H40_MIX}), connect_four, cores=2)
    assert h40.config == plan.config and "league" not in h40.preset
    assert plan.config.share_trunk is True and plan.config.trunk_update == "sum"
    assert all(s.config["shared_body"] for s in plan.learners)  # round 35's one body
    assert any(n.startswith("encoder=board: connect four's preset") for n in plan.notes)
    assert any(n.startswith("trunk_update=sum: connect four's preset") for n in plan.notes)
    built = Population(plan.learners, connect_four, share_trunk=True, trunk_update="sum")
    assert built.describe() == "learners: 6 stacked, one trunk (sum) (p0, p1, p2, p3, p4, p5)"
    # Envs without one train the library-wide defaults.
    rps = EnvInfo.probe("classic/rps-v2", measure=False)
    plain = make_plan(TrainConfig(), rps, cores=2)
    assert plain.preset == {} and plain.learners[0].config["ent_coef"] == 0.1
    assert plain.config.share_trunk is False and plain.config.trunk_update == "mean"


def test_tictactoe_defaults_are_round_15s_league_and_an_empty_preset_turns_it_off():
    tictactoe = EnvInfo.probe("classic/tictactoe-v3", measure=False)
    unregister_preset("tictactoe_v3")  # conftest's empty one: the built-in preset applies
    plan = make_plan(TrainConfig(), tictactoe, cores=2)
    # Round 15's arm, as the benchmark ran it (before tic-tac-toe had a preset).
    measured = make_plan(
        TrainConfig(symmetries="average", ent_coef=0.3, preset=False), tictactoe, cores=2
    )
    assert [s.config for s in plan.learners] == [s.config for s in measured.learners]
    assert plan.config.num_envs == measured.config.num_envs
    assert len(plan.learners[0].config["symmetries"]) == 7  # every view but the identity
    assert plan.learners[0].config["ent_coef"] == 0.3
    assert set(plan.preset) == {"symmetries", "ent_coef"}
    assert any(n.startswith("ent_coef=0.3: tic-tac-toe's preset") for n in plan.notes)
    league.register_preset("tictactoe_v3", {})
    off = make_plan(TrainConfig(), tictactoe, cores=2)
    assert off.preset == {} and "symmetries" not in off.learners[0].config
    assert off.learners[0].config["ent_coef"] == 0.1


def test_options_you_give_win_over_the_preset_and_preset_false_turns_it_off(connect_four):
    mine = make_plan(TrainConfig(encoder="mlp", symmetries=False), connect_four, cores=2)
    # The options not given.
    assert set(mine.preset) == {"share_trunk", "trunk_update", "shared_body", "league"}
    # League fields: the preset's mix joins the fields you give, and yours wins; no mix
    # where matchmaking does not read one (another strategy, league roles).
    given = make_plan(TrainConfig(league={"snapshot_every": 9_000}), connect_four, cores=2)
    assert given.config.league == {"snapshot_every": 9_000, "mix": H40_MIX}
    alpha = {"pfsp": 0.5, "self_play": 0.35, "snapshots": 0.15}
    own_mix = make_plan(TrainConfig(league={"mix": alpha}), connect_four, cores=2)
    assert own_mix.config.league == {"mix": alpha} and "league" not in own_mix.preset
    pfsp = make_plan(TrainConfig(league={"strategy": "pfsp"}), connect_four, cores=2)
    assert pfsp.config.league == {"strategy": "pfsp"} and "league" not in pfsp.preset
    roles = make_plan(TrainConfig(roles={"main": 1, "main_exploiter": 1}), connect_four)
    assert roles.config.league == {} and "league" not in roles.preset
    mains = [{"algo": "ppo", "league_role": "main"}] * 2  # roles given per learner
    by_entry = make_plan(TrainConfig(policies=mains), connect_four, cores=2)
    assert by_entry.config.league == {} and by_entry.league_config.strategy == "roles"
    assert mine.learners[0].config["encoder"] == "mlp"
    assert "symmetries" not in mine.learners[0].config
    half = make_plan(TrainConfig(symmetries="canonical"), connect_four, cores=2)
    assert half.learners[0].config["encoder"] == "board"  # the option not given still fills
    assert half.learners[0].config["symmetry_mode"] == "canonical"
    own = make_plan(TrainConfig(policies=[{"algo": "dqn", "encoder": "mlp"}]), connect_four)
    assert own.learners[0].config["encoder"] == "mlp"  # a learner's own config wins too
    assert "shared_body" not in own.learners[0].config  # DQN has none: the preset skips it
    # The preset's shared trunk applies only where every learner can share it: not with
    # a DQN learner, nor with stacking off; one you ask for there is refused.
    assert own.config.share_trunk is False and own.config.trunk_update == "mean"
    assert not {"share_trunk", "trunk_update"} & set(own.preset)
    unstacked = make_plan(TrainConfig(stack=False), connect_four, cores=2)
    assert unstacked.config.share_trunk is False and "encoder" in unstacked.preset
    with pytest.raises(ConfigError, match="stack=False turns stacking off"):
        make_plan(TrainConfig(stack=False, share_trunk=True), connect_four, cores=2)
    with pytest.raises(ConfigError, match="share_trunk is False"):
        make_plan(TrainConfig(stack=False, trunk_update="sum"), connect_four, cores=2)
    separate = make_plan(TrainConfig(share_trunk=False), connect_four, cores=2)
    assert separate.config.trunk_update == "mean" and "trunk_update" not in separate.preset
    joint = make_plan(TrainConfig(trunk_update="joint"), connect_four, cores=2)
    assert joint.config.trunk_update == "joint" and "trunk_update" not in joint.preset
    with pytest.raises(ConfigError, match=r"choose one of \['mean', 'sum', 'joint'\]"):
        TrainConfig(trunk_update="jont")
    # On Ray one trunk trains in one learner actor: planned before Ray builds anything.
    ray = {"backend": "ray", "num_workers": 2}
    split = make_plan(TrainConfig(ray_learner_actors=2, **ray), connect_four, cluster_gpus=0)
    assert split.learner_hosts == 2 and split.config.share_trunk is False
    assert "encoder" in split.preset and "share_trunk" not in split.preset
    with pytest.raises(ConfigError, match="2 Ray learner actors would split the learners"):
        make_plan(TrainConfig(share_trunk=True, ray_gpus=2, **ray), connect_four, cluster_gpus=2)
    one = make_plan(TrainConfig(ray_gpus=1, **ray), connect_four, cluster_gpus=2)
    assert (one.learner_gpus, one.learner_hosts, one.config.share_trunk) == (1, 1, True)
    with pytest.raises(ConfigError, match="ray_gpus=3 asks for more GPUs than the Ray cluster"):
        make_plan(TrainConfig(ray_gpus=3, **ray), connect_four, cluster_gpus=2)
    # A preset's value goes where it fits; one you ask for is refused where it cannot.
    register_symmetries("connect_four_v3", lambda obs_space, action_space: None)
    try:
        fitted = make_plan(TrainConfig(), connect_four, cores=2)
        assert "symmetries" not in fitted.learners[0].config
        with pytest.raises(ConfigError, match="has no symmetries for its"):
            make_plan(TrainConfig(symmetries=True), connect_four, cores=2)
    finally:
        unregister_symmetries("connect_four_v3")
    off = make_plan(TrainConfig(preset=False), connect_four, cores=2)
    assert off.preset == {} and off.config.share_trunk is False
    assert off.config.league == {}  # AlphaStar's mix, the library-wide default
    assert "encoder" not in off.learners[0].config
    assert "symmetries" not in off.learners[0].config


def test_a_registered_preset_fills_another_env_and_bad_ones_are_refused():
    rps = EnvInfo.probe("classic/rps-v2", measure=False)
    assert make_plan(TrainConfig(), rps).learners[0].config["ent_coef"] == 0.1
    league.register_preset("rps_v2", {"ent_coef": 0.02}, why="measured by me")
    try:
        plan = make_plan(TrainConfig(), rps)
        assert plan.learners[0].config["ent_coef"] == 0.02
        assert "ent_coef=0.02: measured by me" in plan.notes
    finally:
        unregister_preset("rps_v2")
    assert make_plan(TrainConfig(), rps).learners[0].config["ent_coef"] == 0.1
    with pytest.raises(ConfigError, match="may fill only"):
        league.register_preset("rps_v2", {"num_envs": 64})
    with pytest.raises(ConfigError, match="encoder='resnet' is unknown"):
        league.register_preset("rps_v2", {"encoder": "resnet"})
    league.register_preset("rps_v2", {"encoder": "board"})  # rps observes one number
    try:
        # A preset's encoder goes where it fits; one you name is refused where it cannot.
        assert "encoder" not in make_plan(TrainConfig(), rps).learners[0].config
        with pytest.raises(ConfigError, match="encoder='board' needs a 3-D"):
            make_plan(TrainConfig(encoder="board"), rps)  # before anything is built
    finally:
        unregister_preset("rps_v2")


def test_a_resume_keeps_the_models_it_started_with_when_the_preset_changes(tmp_path, capsys):
    common = {"num_policies": 1, "num_envs": 8, "num_workers": 0, "progress": False}
    run_dir = tmp_path / "run"
    league.register_preset("tictactoe_v3", {"symmetries": "average"}, why="a test's preset")
    try:
        league.train("classic/tictactoe-v3", total_steps=256, run_dir=str(run_dir), **common)
        assert "symmetries=average: a test's preset" in capsys.readouterr().out
        league.register_preset("tictactoe_v3", {"symmetries": False})
        run = league.train("classic/tictactoe-v3", resume=str(run_dir), total_steps=512)
    finally:
        unregister_preset("tictactoe_v3")
    assert run.env_steps >= 512
    assert run.config.symmetries == "average"  # the saved value, not the new preset's
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["symmetries"] == "average" and "symmetries" not in saved.get("planned", {})
    # A run saved before presets existed (no "preset" key) resumes without one: were
    # connect four's preset applied now, its board CNN could not load the MLP weights.
    old = tmp_path / "old"
    league.train(
        "classic/connect_four-v3", total_steps=256, run_dir=str(old), preset=False, **common
    )
    config = json.loads((old / "config.json").read_text())
    config = {k: v for k, v in config.items() if k not in ("preset", "encoder")}
    config["symmetries"] = False  # the default then
    (old / "config.json").write_text(json.dumps(config))
    resumed = league.train("classic/connect_four-v3", resume=str(old), total_steps=512)
    assert resumed.env_steps >= 512
    assert resumed.config.preset is False and resumed.config.encoder is None
    assert resumed.config.league == {}  # nor the preset's mix: it plays AlphaStar's still
    # A run with the preset's mix keeps it when the preset changes before its resume.
    mixed = tmp_path / "mixed"
    league.train("classic/connect_four-v3", total_steps=256, run_dir=str(mixed), **common)
    assert json.loads((mixed / "config.json").read_text())["league"] == {"mix": H40_MIX}
    league.register_preset("connect_four_v3", {})
    try:
        again = league.train("classic/connect_four-v3", resume=str(mixed), total_steps=512)
    finally:
        unregister_preset("connect_four_v3")
    assert again.env_steps >= 512 and again.config.league == {"mix": H40_MIX}
    # A tic-tac-toe run started before tic-tac-toe had a preset (here: with it turned
    # off, as conftest does) resumes with the models it started with, not the preset's.
    before = tmp_path / "before"
    league.register_preset("tictactoe_v3", {})
    league.train("classic/tictactoe-v3", total_steps=256, run_dir=str(before), **common)
    unregister_preset("tictactoe_v3")
    after = league.train("classic/tictactoe-v3", resume=str(before), total_steps=512)
    assert after.env_steps >= 512 and after.config.symmetries is None
