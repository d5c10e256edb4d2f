"""League roles (AlphaStar) and PBT on the rating: matchmaking rates, snapshot and reset
rules at their thresholds, exploit/explore, resume, and configs that cannot work."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tictactoe_batch
from gymnasium.spaces import Discrete

import league
from league.config import TrainConfig
from league.errors import ConfigError
from league.manager import League, LeagueConfig, MatchResult
from league.pbt import PBT, PBTConfig
from league.policies import RandomPolicy
from league.training import Trainer

SEATS = ["player_0", "player_1"]
TTT = "classic/tictactoe-v3"
FAST = dict(num_envs=8, rollout=32, batch_size=256, progress=False, tensorboard=False)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def roles_league(**options) -> League:
    config = LeagueConfig(
        **{"strategy": "roles", "snapshot_min_steps": 0, "min_games": 5, **options}
    )
    return League(SEATS, ["player", "player"], config=config)


def play(league: League, policies: list[str], returns: list[float], times: int = 1) -> None:
    for _ in range(times):
        league.report(0, MatchResult(policies, returns, step=0, env_id=0))


def within(count: int, n: int, p: float) -> bool:
    """`count` of `n` draws is within 4.5 standard deviations of rate `p`."""
    return abs(count - n * p) <= 4.5 * math.sqrt(n * p * (1 - p))


def test_main_agents_take_each_branch_at_its_rate() -> None:
    league = roles_league(main_pfsp=0.5, main_verification=0.15)
    league.add_learner("main0", "player", league_role="main")
    league.add_learner("mx", "player", league_role="main_exploiter")
    league.add_fixed("random", "player", RandomPolicy(Discrete(3), seed=0))
    league.add_snapshot("mx", 10, None)
    play(league, ["mx@10", "main0"], [1.0, -1.0], times=10)  # an exploiter that beats main0
    strategy = league._strategy
    n = 4000
    branches = [strategy.branch_name("main0") for _ in range(n)]
    counts = {b: branches.count(b) for b in set(branches)}
    assert within(counts["pfsp_past"], n, 0.5)
    assert within(counts["verification"], n, 0.15)
    assert within(counts["self_play"], n, 0.35)
    # Verification finds the exploiter snapshot that still wins: it plays it.
    strategy._pick = strategy._verification
    assert {strategy.opponent("main0", "player", 0) for _ in range(50)} == {"mx@10"}


@pytest.mark.parametrize(
    ("win_rates", "kept"),
    [
        ([0.5, 0.6, 0.4], 2),  # up to the last rise: s0, s1
        ([0.2, 0.3, 0.4], 3),  # still rising at the present: all
        ([0.6, 0.5, 0.4], 0),  # only falling: the learner is catching up with all of them
        ([0.4], 0),
        ([], 0),
    ],
)
def test_forgotten_players_follow_alphastars_monotonic_suffix_rule(win_rates, kept) -> None:
    from league.roles import _drop_monotonic_suffix

    ids = [f"s{k}" for k in range(len(win_rates))]
    assert _drop_monotonic_suffix(ids, np.array(win_rates)) == ids[:kept]


def test_exploiters_play_the_policies_their_roles_name() -> None:
    league = roles_league()
    league.add_learner("main0", "player", league_role="main")
    league.add_learner("mx", "player", league_role="main_exploiter")
    league.add_learner("lx", "player", league_role="league_exploiter")
    league.add_fixed("random", "player", RandomPolicy(Discrete(3), seed=0))
    league.add_snapshot("main0", 10, None)
    league.add_snapshot("main0", 20, None)
    assignments = [league.assign(0) for _ in range(300)]
    met: dict[str, set[str]] = {"mx": set(), "lx": set()}
    for ids in assignments:
        for focal in met:
            if focal in ids:
                met[focal] |= set(ids) - {focal}
    assert met["mx"] == {"main0"}  # a main exploiter that is not yet hopeless plays main agents
    assert met["lx"] <= {"main0@10", "main0@20", "random"}  # past players only
    assert len(met["lx"]) >= 2
    # A main exploiter winning under 10% against main0 plays main0's snapshots instead.
    play(league, ["main0", "mx"], [1.0, -1.0], times=20)
    later = [league.assign(0) for _ in range(200)]
    seen = {p for ids in later if "mx" in ids for p in ids} - {"mx"}
    assert seen <= {"main0@10", "main0@20"} and seen


def test_snapshot_and_reset_rules_fire_at_their_thresholds() -> None:
    league = roles_league(snapshot_every=10_000, snapshot_win_rate=0.7, snapshot_min_steps=100)
    league.add_learner("main0", "player", league_role="main")
    league.add_learner("mx", "player", league_role="main_exploiter")
    league.add_learner("lx", "player", league_role="league_exploiter")
    # Main exploiter: 0.65 against the main agent is not enough, 0.75 is.
    play(league, ["mx", "main0"], [1.0, -1.0], times=13)
    play(league, ["mx", "main0"], [-1.0, 1.0], times=7)
    assert league.advance("mx", 500, lambda: "frozen").snapshot is None
    play(league, ["mx", "main0"], [1.0, -1.0], times=80)  # decayed rate now well above 0.7
    assert league.advance("mx", 50, lambda: "frozen").snapshot is None  # under min steps
    done = league.advance("mx", 600, lambda: "frozen")
    assert done.snapshot == "mx@600" and done.reset  # main exploiters always start over
    assert league.policies["mx@600"].league_role == "main_exploiter"
    # Main agent: frozen once it beats every past player, and never reset.
    league.add_fixed("random", "player", RandomPolicy(Discrete(3), seed=0))
    play(league, ["main0", "random"], [1.0, -1.0], times=20)
    assert league.advance("main0", 700, lambda: "f").snapshot is None  # loses to mx@600
    play(league, ["main0", "mx@600"], [1.0, -1.0], times=20)
    done = league.advance("main0", 800, lambda: "f")
    assert done.snapshot == "main0@800" and not done.reset
    # The step cap freezes whatever the win rates.
    assert league.advance("lx", 10_000, lambda: "f").snapshot == "lx@10000"


def test_league_exploiters_start_over_a_quarter_of_the_time() -> None:
    resets = 0
    for seed in range(400):
        league = roles_league(snapshot_every=100, seed=seed)
        league.add_learner("main0", "player", league_role="main")
        league.add_learner("lx", "player", league_role="league_exploiter")
        resets += league.advance("lx", 100, lambda: "f").reset
    assert within(resets, 400, 0.25)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"roles": {"main_exploiter": 2}}, "no main agent"),
        ({"roles": {}}, "no main agent"),
        ({"roles": {"main": 0}}, "no main agent"),
        ({"pbt": {"hyperparameters": ["lr"]}}, "unknown pbt hyperparameter 'lr'"),
        ({"roles": {"main": 1, "coach": 1}}, "unknown league role 'coach'"),
        ({"roles": {"main": -1}}, "counts must be whole numbers"),
        ({"league": {"verification_win_rate": 1.5}}, "verification_win_rate=1.5"),
        ({"league": {"main_pfsp": 0.9, "main_verification": 0.2}}, "may not pass 1"),
        ({"num_policies": 1, "pbt": True}, "pbt needs at least two learners"),
        ({"pbt": {"treshold": 0.3}}, "'treshold' -> did you mean 'threshold'"),
        ({"pbt": {"threshold": 0}}, "pbt option threshold=0"),
        ({"share_trunk": True, "stack": False}, "stack=False turns stacking off"),
        (
            {"share_trunk": True, "policies": [{"algo": "ppo"}, {"algo": "dqn"}]},
            "policy 'dqn1' is a dqn learner, which does not stack",
        ),
        (
            {"share_trunk": True, "policies": [{"algo": "ppo"}, {"hidden_sizes": [32]}]},
            "would form 2 stacks",
        ),
        ({"trunk_update": "sum"}, "share_trunk is False"),
        ({"share_trunk": True, "trunk_update": "max"}, "trunk_update='max' is unknown"),
    ],
)
def test_configs_that_cannot_work_are_refused_before_training(tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        league.train(TTT, run_dir=str(tmp_path), **{**FAST, **options})
    assert not (tmp_path / "trainer.json").exists()


@pytest.mark.parametrize("stack", [True, False], ids=["stacked", "per-learner"])
def test_a_pbt_exploit_copies_weights_and_optimizer_and_perturbs_within_bounds(tmp_path, stack):
    config = TrainConfig(num_policies=2, run_dir=str(tmp_path), stack=stack, pbt=True, **FAST)
    trainer = Trainer(TTT, config)
    # Give the two learners different weights and optimizer states first.
    rng = np.random.default_rng(0)
    for pid in ("p0", "p1"):
        batch = tictactoe_batch(rng)
        trainer.population.learn({pid: batch})
    pbt = PBT(PBTConfig(perturb_probability=1.0, reset_probability=0.0, seed=1))
    pbt.on_start(trainer)
    before = trainer.population["p0"].hyperparameters()
    pbt.exploit_and_explore(trainer, "p0", "p1", 0.1)
    mine, theirs = (trainer.population[p].state_dict() for p in ("p0", "p1"))
    for name, tensor in theirs["model"].items():
        assert torch.equal(mine["model"][name], tensor)
    for key, moments in theirs["optimizer"]["state"].items():
        for name, value in moments.items():
            assert torch.equal(mine["optimizer"]["state"][key][name], value)
    after = trainer.population["p0"].hyperparameters()
    source = trainer.population["p1"].hyperparameters()
    for name in ("learning_rate", "ent_coef", "vf_coef", "clip_coef"):
        ratio = after[name] / source[name]
        assert 1 / 1.5 - 1e-9 <= ratio <= 1.5 + 1e-9 and not 1 / 1.1 < ratio < 1.1, name
    ratio = (1 - after["gamma"]) / (1 - source["gamma"])
    assert 1 / 1.5 - 1e-9 <= ratio <= 1.5 + 1e-9 and after["gamma"] < 1
    assert after != before
    assert trainer.league.policies["p0"].parent == "p1"
    assert trainer.league.ratings.elo("p0") == trainer.league.ratings.elo("p1")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_roles_and_pbt_train_and_survive_resume(tmp_path: Path, mode: str):
    options = dict(
        roles={"main": 2, "main_exploiter": 1, "league_exploiter": 1},
        mode=mode,
        league={"snapshot_every": 1024, "snapshot_min_steps": 512},
        pbt={"interval": 512, "threshold": 0.9999, "seed": 3},  # every check exploits
        run_dir=str(tmp_path),
        **FAST,
    )
    first = league.train(TTT, total_steps=8_192, **options)
    board = first.leaderboard().set_index("policy")
    assert set(board.loc[["main0", "main1", "main_exploiter0", "league_exploiter0"], "league_role"])
    assert board.loc["main_exploiter0", "league_role"] == "main_exploiter"
    assert (board["kind"] == "snapshot").any()
    events = pd.read_csv(tmp_path / "pbt.csv")
    assert len(events) > 0 and set(events["member"]) <= {"main0", "main1"}
    lineage = board.loc[["main0", "main1"], "parent"].dropna()
    assert set(lineage) <= {"main0", "main1"} and len(lineage)
    matches = pd.read_csv(tmp_path / "matches.csv.gz")
    assert "league_roles" in matches.columns

    commit = json.loads((tmp_path / "trainer.json").read_text())
    assert commit["observers"]["PBT"]["rows_written"] == len(events)
    # A row written after the last commit (a kill between the two) is not the run's.
    with open(tmp_path / "pbt.csv", "a") as f:
        f.write('0,0,ghost,main0,0.1,0,0,"{}","{}"\n')
    resumed = league.train(
        TTT, resume=str(tmp_path), total_steps=commit["env_steps"] + 2_048, **FAST
    )
    again = pd.read_csv(tmp_path / "pbt.csv")
    pd.testing.assert_frame_equal(again.iloc[: len(events)], events)  # nothing earlier lost
    assert "ghost" not in set(again["member"])
    after = resumed.leaderboard().set_index("policy")
    for pid in lineage.index:
        assert after.loc[pid, "parent"] in {"main0", "main1"}
    assert after.loc["league_exploiter0", "league_role"] == "league_exploiter"
    saved = json.loads((tmp_path / "trainer.json").read_text())["observers"]["PBT"]
    assert all(saved["next_check"][p] > commit["learner_steps"][p] for p in ("main0", "main1"))


def _learner_models(run_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The learners' weights in the run's last checkpoint."""
    commit = json.loads((run_dir / "trainer.json").read_text())
    return {
        pid: torch.load(run_dir / commit["files"][pid], weights_only=False)["state"]["model"]
        for pid in commit["learner_steps"]
    }


def _one_trunk(models: dict[str, dict[str, torch.Tensor]]) -> None:
    first, *others = models.values()
    trunk = [k for k in first if k.startswith(("actor_body.", "critic_body."))]
    heads = [k for k in first if k.startswith(("actor_head.", "critic_head."))]
    assert trunk and heads
    for model in others:
        for name in trunk:
            assert torch.equal(model[name], first[name]), name
    assert any(not torch.equal(model[heads[0]], first[heads[0]]) for model in others)


@pytest.mark.parametrize(("mode", "update"), [("sync", "sum"), ("async", "mean")])
def test_a_shared_trunk_trains_with_roles_pbt_snapshots_and_resume(
    tmp_path: Path, mode: str, update: str
):
    options = dict(
        roles={"main": 2, "main_exploiter": 1, "league_exploiter": 1},
        share_trunk=True,
        trunk_update=update,
        mode=mode,
        league={"snapshot_every": 1024, "snapshot_min_steps": 512},
        pbt={"interval": 512, "threshold": 0.9999, "seed": 3},  # every check exploits
        run_dir=str(tmp_path),
        **FAST,
    )
    first = league.train(TTT, total_steps=8_192, **options)
    assert (first.leaderboard()["kind"] == "snapshot").any()
    assert len(pd.read_csv(tmp_path / "pbt.csv")) > 0
    _one_trunk(_learner_models(tmp_path))
    commit = json.loads((tmp_path / "trainer.json").read_text())
    resumed = league.train(
        TTT, resume=str(tmp_path), total_steps=commit["env_steps"] + 2_048, **FAST
    )
    assert resumed.config.share_trunk and resumed.config.trunk_update == update
    after = json.loads((tmp_path / "trainer.json").read_text())
    assert sum(after["learner_steps"].values()) > sum(commit["learner_steps"].values())
    _one_trunk(_learner_models(tmp_path))
