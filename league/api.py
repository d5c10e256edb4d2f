"""The three-line API: `league.train(env_fn, num_policies=6)` and `league.load(run_dir)`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd

from league.config import TrainConfig
from league.errors import RunDirError, UnknownPolicyError
from league.manager import League
from league.policies import CallablePolicy, RandomPolicy, UnsavedPolicy
from league.policy_handle import PolicyHandle
from league.training.run_dir import RunDir


class LeagueRun:
    """A trained league: its manager, its policies and its run directory.

    From `league.train` the learners are the live ones; from `league.load`
    each policy is rebuilt from its checkpoint file the first time it is asked
    for (no env is needed for that).
    """

    def __init__(
        self,
        league: League,
        run_dir: RunDir,
        config: TrainConfig,
        env_steps: int,
        policy_source: Callable[[str], Any],
        reason: str | None = None,
    ) -> None:
        self.league = league
        self.run_dir = run_dir.path
        self.config = config
        self.env_steps = env_steps
        self.reason = reason  # why training stopped ("budget", ...); None for a loaded run
        self._policy_source = policy_source

    @property
    def policies(self) -> list[str]:
        return list(self.league.policies)

    def policy(self, policy_id: str, deterministic: bool = False) -> PolicyHandle:
        """A policy by id; `deterministic=True` makes it take its most likely actions."""
        if policy_id not in self.league.policies:
            raise UnknownPolicyError(
                f"no policy {policy_id!r} in this league; policies: {', '.join(self.policies)}"
            )
        record = self.league.policies[policy_id]
        return PolicyHandle(policy_id, self._policy_source(policy_id), record.role, deterministic)

    def leaderboard(self) -> pd.DataFrame:
        return self.league.leaderboard()

    def payoff_matrix(self) -> pd.DataFrame:
        return self.league.payoff_matrix()

    def best(self, kind: str = "learner") -> str:
        """The id of the top-rated policy of this kind."""
        board = self.leaderboard()
        return str(board[board["kind"] == kind].iloc[0]["policy"])

    def __repr__(self) -> str:
        return f"<LeagueRun {str(self.run_dir)!r} policies={len(self.policies)}>"


def train(
    env_fn: Any,
    num_policies: int = 6,
    *,
    resume: str | os.PathLike | None = None,
    overwrite: bool = False,
    mapping: Any = None,
    fixed_policies: dict[str, Any] | None = None,
    observers: Iterable[Any] = (),
    pbt_objective: Any = None,
    **config: Any,
) -> LeagueRun:
    """Train a population of policies on any PettingZoo env.

    Args:
        env_fn: a PettingZoo env function or module (``connect_four_v3.env``),
            a registry id (``"classic/connect_four-v3"``) or an import path.
        num_policies: PPO learners per role (ignored when ``policies=`` is given).
        resume: a run directory to continue from its last checkpoint; options
            given here replace the saved ones (e.g. a larger ``total_steps``).
        overwrite: train into a ``run_dir`` that holds a run by first moving that
            run aside to ``<run_dir>.backup-<time>`` (without it, such a directory
            is refused).
        mapping: your own seat -> policy mapping (an object with ``assign(env_id)``
            and ``report(env_id, result)``, or a function ``(env_id, seat_names)
            -> policy ids``) used instead of the league's matchmaking.
        fixed_policies: extra fixed opponents, policy id -> ``fn(obs, action_mask)
            -> action`` (or an object with ``act``); they act but never learn.
        observers: `league.training.Observer` objects called on training events.
        pbt_objective: with ``pbt=``, a function ``(league, member, other) -> win
            probability`` that replaces the rating-based one (not saved with the run:
            pass it again when resuming).
        **config: any `TrainConfig` field (docs/training.md).
    """
    from league.training import Trainer

    if resume is not None:
        run = RunDir.open(resume)
        saved = run.read_config()
        # A run's models were fixed when it started, and config.json keeps what a preset
        # filled then as if given: a preset added or changed since must fill nothing now
        # (nor one for a run saved before presets existed), or the run would go on as
        # other learners (or fail to load: a board CNN cannot take MLP weights).
        saved["preset"] = False
        for key in run.read_planned():
            saved[key] = None  # chosen by the planner, not the user: chosen again for this leg
        if config.get("backend", saved.get("backend")) != saved.get("backend"):
            # Another backend chooses its own workers (a run moves between them), and
            # a cluster's address and GPUs stay behind with the Ray backend.
            saved["num_workers"] = None
            if config["backend"] != "ray":
                saved["ray_address"] = saved["ray_gpus"] = saved["ray_learner_actors"] = None
        if "total_steps" in config or "max_seconds" in config:
            # A new budget replaces the saved one whole: the option not given is no limit.
            saved["total_steps"] = saved["max_seconds"] = None
        saved.update(config)
        saved["run_dir"] = str(resume)
        cfg = TrainConfig.from_dict(saved)
    else:
        cfg = TrainConfig.from_dict({"num_policies": num_policies, **config})
    trainer = Trainer(
        env_fn,
        cfg,
        resume=resume,
        overwrite=overwrite,
        mapping=mapping,
        fixed_policies=fixed_policies,
        observers=observers,
        pbt_objective=pbt_objective,
    )
    reason = trainer.run()

    def policy_source(policy_id: str) -> Any:
        return trainer.population.get(policy_id, trainer.league.policies[policy_id].payload)

    return LeagueRun(
        trainer.league,
        trainer.run_dir,
        trainer.config,
        trainer.state.env_steps,
        policy_source,
        reason,
    )


def load(
    run_dir: str | os.PathLike,
    env_fn: Any | None = None,
    fixed_policies: dict[str, Any] | None = None,
) -> LeagueRun:
    """Open a finished or interrupted run: its league, ratings and policies.

    Nothing is written and no global state changes (torch's RNG included), so
    a read-only copy of a run opens too. Learners and snapshots are rebuilt
    from their checkpoint files; `env_fn` is needed only for runs whose
    checkpoints predate that (and for the random policy of such runs). Fixed
    policies that were user functions (``fixed_policies=`` of `train`) are not
    saved with the run: pass them again to act with them; without them the run
    loads and they raise a clear error only when asked to act.
    """
    run = RunDir.open(run_dir)
    config = TrainConfig.from_dict(run.read_config())
    commit = run.read_commit()
    league = League.load(run.path)
    files = commit["files"]
    fixed_policies = dict(fixed_policies or {})
    loaded: dict[str, Any] = {}
    env_spaces: dict[str, Any] = {}

    def spaces(role: str) -> tuple[Any, Any]:
        for pid, record in league.policies.items():
            if record.role == role and pid in files:
                data = run.load_policy(files[pid])
                if "spaces" in data:
                    return data["spaces"]
        if not env_spaces:  # checkpoints of an older format: ask the env
            from league.training.plan import EnvInfo

            env = env_fn if env_fn is not None else config.env
            if env is None:
                raise RunDirError(
                    f"run {str(run.path)!r} was trained from an env function that cannot be "
                    "imported by name; pass env_fn= to load it"
                )
            env_spaces.update(EnvInfo.probe(env, config.pad, config.env_kwargs).spaces)
        return env_spaces[role]

    def policy_source(policy_id: str) -> Any:
        if policy_id not in loaded:
            loaded[policy_id] = _load_policy(run, league, files, policy_id, spaces)
            league.policies[policy_id].payload = loaded[policy_id]
        return loaded[policy_id]

    for pid, record in league.policies.items():
        if record.kind != "fixed":
            continue
        if pid in fixed_policies:
            fn = fixed_policies[pid]
            loaded[pid] = fn if hasattr(fn, "act") else CallablePolicy(fn)
        elif record.algo == "random":
            obs_space, action_space = spaces(record.role)
            loaded[pid] = RandomPolicy(action_space, seed=config.seed, observation_space=obs_space)
        else:
            loaded[pid] = UnsavedPolicy(pid, str(run.path))
        record.payload = loaded[pid]
    return LeagueRun(league, run, config, int(commit["env_steps"]), policy_source)


def _load_policy(
    run: RunDir,
    league: League,
    files: dict[str, str],
    policy_id: str,
    spaces: Callable[[str], tuple[Any, Any]],
) -> Any:
    """A learner or snapshot rebuilt from its checkpoint file."""
    from league.training.population import policy_from_file

    record = league.policies[policy_id]
    data = run.load_policy(files[policy_id])
    if "spaces" not in data:  # an older checkpoint: the algorithm's config is in its state
        learner = run.load_policy(files[record.parent or policy_id])["state"]
        data = {
            "algo": learner["name"],
            "config": learner["config"],
            "spaces": spaces(record.role),
            "state": data["state"],
        }
    return policy_from_file(data, frozen=record.kind == "snapshot")
