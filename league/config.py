"""The training configuration: one dataclass, every option documented once, here.

Defaults learn connect four on a laptop in minutes. `TrainConfig` is plain
data: it round-trips through `config.json` in the run directory and every
field is a `python -m league train` option.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from league.algos.stacked import TRUNK_UPDATES
from league.errors import ConfigError, unknown_keys
from league.manager import LeagueConfig
from league.roles import ALPHASTAR_ROLES, LEAGUE_ROLES
from league.symmetry import SYMMETRY_MODES
from wrappers.multiagent import check_opening

MODES = ("sync", "async")
BACKENDS = ("auto", "local", "multiprocessing", "ray")
# The budget when none is given: long enough on a 2-core laptop for a connect-four league
# to take snapshots and beat weak play (docs/benchmarks.md).
DEFAULT_SECONDS = 600.0


def option(default: Any, help: str, factory: bool = False) -> Any:
    """A config field with its documentation, shown by `python -m league train --help`."""
    if factory:
        return field(default_factory=default, metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    env: str | None = option(
        None,
        "The env as a registry id or import path; recorded automatically when the env "
        "function is importable, so that `league.load(run_dir)` can rebuild it.",
    )
    num_policies: int = option(
        6, "Number of PPO learners per role, used when `policies` is not given."
    )
    policies: list[Any] | None = option(
        None,
        'Per-learner algorithm configs, e.g. ``["ppo", {"algo": "dqn", "learning_rate": 1e-3}]``. '
        "Each entry is an algorithm name or a dict with ``algo`` (``ppo``, ``a2c``, "
        "``dqn``), optional ``id``, ``role`` (seat role) and ``league_role`` (``main``, "
        "``main_exploiter``, ``league_exploiter``, ``learner``), and that algorithm's config "
        "fields.",
    )
    roles: dict[str, int] | None = option(
        None,
        "League roles (AlphaStar): PPO learners per league role, for each seat role, e.g. "
        '``{"main": 2, "main_exploiter": 2, "league_exploiter": 2}``. Replaces num_policies; '
        "matchmaking becomes ``roles`` (docs/league.md). At least one main agent.",
    )
    mode: str = option(
        "sync",
        "Collection mode. ``sync``: collect one batch per learner, train every learner, "
        "collect again (deterministic; at most one version of lag). ``async``: learners train in "
        "background threads while collection goes on.",
    )
    batched: bool = option(
        False,
        "Run each role's whole (envs, seats) block of an env batch through one forward "
        "pass: one learner per role per block of envs, no mixing inside an env.",
    )
    mix_policies_in_one_env: bool | None = option(
        None,
        "Let the league put different policies in the seats of one env (default: on, off "
        "when batched). Off: one policy per role per env.",
    )
    num_batches_to_accumulate: int = option(
        2, "Async: batches that may wait for a learner before collection waits for it."
    )
    max_policy_lag: int = option(
        4,
        "Async: samples acted by a policy version more than this many updates behind "
        "the learner are dropped before an update.",
    )
    backend: str = option(
        "auto",
        "Where envs step and learners train: ``auto`` (``local`` or ``multiprocessing``, "
        "chosen at start with num_workers), ``local`` (envs in the training process), "
        "``multiprocessing`` (env worker processes), ``ray`` (env workers and learners as "
        "Ray actors on a cluster; docs/distributed.md). Every backend writes the same run "
        "directory.",
    )
    ray_address: str | None = option(
        None,
        "backend='ray': the address of a running Ray cluster (``host:port``, "
        "``ray://host:port``, or ``auto`` for one started on this machine); None starts a "
        "local Ray for the run and stops it at the end.",
    )
    ray_gpus: float | None = option(
        None,
        "backend='ray': GPUs the learner actors ask for in all (fractions allowed); learner "
        "i trains on the cluster's GPU i % ceil(ray_gpus). Default: every GPU of the "
        "cluster, up to one per learner.",
    )
    ray_learner_actors: int | None = option(
        None,
        "backend='ray': Ray actors that train the learners; learner i trains in actor "
        "i % ray_learner_actors, and each actor asks for ray_gpus / ray_learner_actors "
        "GPUs, so a cluster's GPU nodes each train their learners. Default: one per whole "
        "GPU of ray_gpus, one without GPUs.",
    )
    num_envs: int | None = option(
        None,
        "Environments stepped side by side. Default: chosen at start from the env's measured "
        "step cost and observation size (192 for envs cheaper than 1 ms a step, such as "
        "board games, more for a population that needs them for a 1024-sample batch per "
        "learner per iteration, at most 2048; for costlier ones as many as step in 40 ms; "
        "never more than 512 MiB of observations), rounded to what the run's rules need. The "
        "choice and why are printed and written to config.json.",
    )
    num_workers: int | None = option(
        None,
        "Env worker processes; 0 steps the envs in the training process. Default: chosen "
        "at start: 2 on a machine with 2-5 cores (more with more cores) when the envs would "
        "step for 10 s or more, else 0.",
    )
    rollout: int = option(
        16, "Env steps per collection iteration (each env steps this many times)."
    )
    batch_size: int | None = option(
        None,
        "Samples (decisions of one learner) per update. Default: the smallest multiple of "
        "one iteration's share per learner (num_envs x active seats per step x rollout / "
        "learners) that is at least 1024.",
    )
    total_steps: int | None = option(
        None,
        "Stop after this many env steps summed over envs (0 = no limit). When neither "
        "budget is given, the run trains for DEFAULT_SECONDS (10 minutes); when one is "
        "given, the other is no limit.",
    )
    max_seconds: float | None = option(
        None,
        "Stop after this much wall time in this process (0 = no limit); see total_steps "
        "for the default.",
    )
    seed: int = option(0, "Seeds envs, matchmaking, models and action sampling.")
    run_dir: str | None = option(None, "Run directory; default ``runs/<env name>-<time>``.")
    min_free_mb: int = option(
        64, "Refuse to start when the run directory's disk has less free space than this."
    )
    checkpoint_seconds: float = option(
        60.0, "Write checkpoints and league state at least this often."
    )
    device: str | None = option(
        None,
        "Device for every learner (``cpu``, ``cuda:0``); default: learner i on "
        "``cuda:(i % num_gpus)`` when GPUs are present, else CPU.",
    )
    hidden_sizes: list[int] = option(
        lambda: [128, 128],
        "Hidden layer sizes of every learner's model unless its config says otherwise.",
        factory=True,
    )
    ent_coef: float | None = option(
        None,
        "Entropy bonus of every PPO learner unless its config says otherwise. Default: the "
        "env's preset (0.3 on tic-tac-toe), else 0.1 for Discrete actions (a self-play "
        "population that keeps exploring beats weak play more reliably; "
        "docs/benchmarks.md), PPO's own 0.01 for other action spaces.",
    )
    symmetries: bool | str | None = option(
        None,
        "Make every learner's policy and value invariant to the env's board symmetries "
        "(connect four's mirror, tic-tac-toe's 8 rotations and reflections, or ones added "
        "with league.register_symmetries; docs/algorithms.md): ``average`` (the network "
        "sees every view, outputs averaged) or ``canonical`` (one pass on a fixed view; "
        "cheaper, but it hurt on tic-tac-toe). True = average; False = off. Default: the "
        "env's preset (average on connect four and tic-tac-toe), else off.",
    )
    encoder: str | None = option(
        None,
        "Observation encoder of every learner unless its config names one: ``auto`` (the "
        "Nature-CNN for images, else an MLP), ``mlp``, ``board`` (a CNN for (H, W, C) "
        "boards) or ``cnn`` (docs/algorithms.md). Default: the env's preset (``board`` on "
        "connect four), else each learner's own (``auto``).",
    )
    column_head: bool | None = option(
        None,
        "Give every PPO learner with the board CNN a column head: each column's logit also "
        "scored from every 4x4 window over it, one set of weights for the whole board "
        "(docs/algorithms.md). Needs one Discrete move per board column (connect four); "
        "refused before training otherwise. Default: the env's preset, else off.",
    )
    board_support: bool | None = option(
        None,
        "Give every PPO learner with the board CNN windows that also read the row under "
        "them, so a window sees which empty cells a piece can drop into (gravity games: "
        "connect four; docs/algorithms.md). Refused before training for a learner without "
        "the board CNN. Default: the env's preset, else off.",
    )
    shared_body: bool | None = option(
        None,
        "Give every PPO learner one body for its policy and value: the critic's head reads "
        "the actor's encoder and hidden layers instead of its own (half the model's cost; "
        "docs/algorithms.md). Image CNNs always share theirs. Default: the env's preset, "
        "else off.",
    )
    preset: bool = option(
        True,
        "Fill the options a preset covers (encoder, symmetries, ent_coef, share_trunk, "
        "trunk_update, column_head, board_support, shared_body) that are left "
        "unset, and the league fields it covers (connect four: the mix) that the league "
        "option leaves out, from the env's preset, measured to train a stronger league on "
        "that env (docs/training.md; the run prints what it filled). False: the "
        "library-wide defaults.",
    )
    stack: bool = option(
        True,
        "Train PPO learners that share a role, an architecture and a device as one stacked "
        "population: one forward pass acts for all of them and their snapshots, one update "
        "trains them all (docs/algorithms.md). False keeps one model per learner.",
    )
    share_trunk: bool | None = option(
        None,
        "The stacked PPO learners share one trunk (the actor's and critic's encoders and "
        "hidden layers); each keeps its own output layers, optimizer state and "
        "hyperparameters, and every sample of every learner trains the trunk "
        "(docs/training.md). Needs every learner to be a stacked PPO learner, one stack "
        "per seat role; refused before training otherwise. Default: the env's preset "
        "(True on connect four, where the learners allow it), else False.",
    )
    trunk_update: str | None = option(
        None,
        "With share_trunk: how an optimizer step moves the shared trunk. 'mean': by the "
        "mean of the stepping members' updates; 'sum': by their sum, so the trunk moves "
        "as far per sample as one learner's own network would; 'joint': by one Adam "
        "update on the sum of their gradients, as one network with a head per learner "
        "would train (docs/training.md). "
        "Default: the env's preset ('sum' on connect four), else 'mean'.",
    )
    greedy_snapshots: bool = option(
        False,
        "Snapshots take their most likely legal action instead of sampling one; "
        "learners and fixed policies act as before. Measured to cost strength on "
        "connect four (docs/training.md, greedy snapshots).",
    )
    anneal_lr: bool = option(
        False,
        "Lower every learner's learning rate linearly to 0 over the run's budget "
        "(total_steps or max_seconds, whichever ends it first).",
    )
    pbt: bool | dict[str, Any] | None = option(
        None,
        "Population-based training on the league's ratings: True for the defaults or a dict "
        'of PBT options, e.g. ``{"interval": 50000, "threshold": 0.3}`` (docs/league.md).',
    )
    ladder_seconds: float = option(
        300.0,
        "Every this many seconds (wall clock, from the end of the last evaluation), and at "
        "the end of runs that lasted that long, "
        "the top learners play the reference ladder (random play and the env's bots, "
        "docs/league.md), off the training clock; results in ladder.csv and TensorBoard. "
        "0 = never. Envs whose seats have several roles have no ladder.",
    )
    ladder_games: int = option(100, "Games per rung of each ladder evaluation, half in each seat.")
    ladder_top: int = option(1, "How many learners, best rated first, play the ladder.")
    opponents: list[str] = option(
        lambda: ["random"],
        "Fixed policies added to the league (``random`` = random legal actions).",
        factory=True,
    )
    league: dict[str, Any] = option(
        dict,
        "`LeagueConfig` fields: strategy, mix, pfsp weighting, snapshot_every, ... "
        "(docs/league.md). A field left out takes the env's preset's value (connect four: "
        "a mix of 0.85 self-play) or else LeagueConfig's default (AlphaStar's mix).",
        factory=True,
    )
    teams: dict[str, str] | None = option(
        None, "Seat -> team name; default every seat is its own team."
    )
    pad: bool = option(False, "Pad heterogeneous seats to one space (see docs/contract.md).")
    illegal_actions: str = option(
        "raise",
        "An action the action mask forbids: ``raise`` stops the run with an error naming the "
        "policy and seat; ``env`` passes it to the env, which applies its own rule (PettingZoo's "
        "classic games end the game with a loss for the mover).",
    )
    env_kwargs: dict[str, Any] = option(
        dict, "Keyword arguments for the env constructor.", factory=True
    )
    opening_plies: int = option(
        0,
        "Turn-based (AEC) envs: training games start with this many uniformly random legal "
        "moves, every seat in turn (no reward, not trained on), as the reference ladder's "
        "games do; 0 = from the env's own start.",
    )
    opening_share: float = option(
        1.0, "The share of training games, drawn per game, that get the random opening."
    )
    torch_threads: int = option(
        1,
        "torch intra-op threads in the training process while acting (0 = torch's "
        "default). Small models act fastest on one thread; with 1, sync mode's updates "
        "take a second thread when their timing finds it faster while the envs wait, "
        "which changes no number (a seed repeats its run; docs/training.md).",
    )
    tensorboard: bool = option(True, "Write TensorBoard scalars under ``<run_dir>/tb``.")
    plots: bool = option(
        True,
        "At the end of a run that trained a minute or more, draw ratings.png, payoff.png, "
        "returns.png and ladder.png into the run directory (also: ``league plot RUN``).",
    )
    progress: bool = option(True, "Show a progress bar.")

    def __post_init__(self) -> None:
        if self.total_steps is None and self.max_seconds is None:
            self.max_seconds = DEFAULT_SECONDS
        self.total_steps = self.total_steps or 0
        self.max_seconds = self.max_seconds or 0.0
        self.validate()

    def validate(self) -> None:
        """Refuse what cannot work, before anything is built: every rule that needs no
        env is checked here, once (the env-dependent ones: `league.training.plan`)."""
        if self.symmetries not in (None, True, False, *SYMMETRY_MODES):
            raise ConfigError(
                f"symmetries={self.symmetries!r}: use True, False, or one of {SYMMETRY_MODES}"
            )
        if self.encoder is not None:
            from league.models import ENCODERS  # torch: only when an encoder is named

            if self.encoder not in ENCODERS:
                raise ConfigError(f"encoder={self.encoder!r} is unknown; valid: {list(ENCODERS)}")
        for name in ("num_envs", "rollout", "batch_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name}={value!r} must be a whole number of at least 1")
        if self.policies is None and self.num_policies < 1:
            raise ConfigError(f"num_policies={self.num_policies} must be at least 1")
        if self.num_workers is not None and self.num_workers < 0:
            raise ConfigError(f"num_workers={self.num_workers} must be 0 or more")
        if self.num_workers and self.num_envs and self.num_envs % self.num_workers:
            raise ConfigError(
                f"num_envs={self.num_envs} must be a multiple of num_workers={self.num_workers}"
            )
        if self.total_steps < 0:
            raise ConfigError(f"total_steps={self.total_steps} must be 0 (no limit) or more")
        if self.max_seconds < 0:
            raise ConfigError(f"max_seconds={self.max_seconds} must be 0 (no limit) or more")
        if self.total_steps == 0 and self.max_seconds == 0:
            raise ConfigError(
                "total_steps=0 and max_seconds=0: the run would never stop; "
                "set a step budget (total_steps) or a time budget (max_seconds)"
            )
        if self.checkpoint_seconds <= 0:
            raise ConfigError(f"checkpoint_seconds={self.checkpoint_seconds} must be more than 0")
        if self.trunk_update is not None and self.trunk_update not in TRUNK_UPDATES:
            raise ConfigError(
                f"trunk_update={self.trunk_update!r} is unknown; choose one of "
                f"{list(TRUNK_UPDATES)}"
            )
        try:
            check_opening(self.opening_plies, self.opening_share)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        if self.illegal_actions not in ("raise", "env"):
            raise ConfigError(
                f"illegal_actions={self.illegal_actions!r} is unknown; choose 'raise' or 'env'"
            )
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"backend={self.backend!r} is unknown; choose one of {list(BACKENDS)}"
            )
        if self.backend == "local" and self.num_workers:
            raise ConfigError(
                f"backend='local' steps envs in the training process: num_workers="
                f"{self.num_workers} cannot work; use backend='multiprocessing' or leave "
                "num_workers unset"
            )
        if self.backend == "multiprocessing" and self.num_workers == 0:
            raise ConfigError(
                "backend='multiprocessing' with num_workers=0 would step the envs in the "
                "training process; give num_workers >= 1, or use backend='local'"
            )
        ray_only = (self.ray_address, self.ray_gpus, self.ray_learner_actors)
        if self.backend != "ray" and any(v is not None for v in ray_only):
            raise ConfigError(
                "ray_address, ray_gpus and ray_learner_actors apply to backend='ray' only"
            )
        if self.backend == "ray" and self.device not in (None, "cpu"):
            raise ConfigError(
                f"device={self.device!r}: with backend='ray' learners go on the learner actor's "
                "GPUs (ray_gpus); leave device unset, or 'cpu'"
            )
        if self.ray_gpus is not None and self.ray_gpus < 0:
            raise ConfigError(f"ray_gpus={self.ray_gpus} must be 0 or more")
        if self.mode not in MODES:
            raise ConfigError(f"mode={self.mode!r} is unknown; choose one of {list(MODES)}")
        if self.batched and self.mix_policies_in_one_env:
            raise ConfigError(
                "batched=True runs one policy per role over a whole block of envs, so "
                "mix_policies_in_one_env=True cannot work; set mix_policies_in_one_env=False "
                "or batched=False"
            )
        if self.mode == "async":
            if self.num_batches_to_accumulate < 1:
                raise ConfigError(
                    f"num_batches_to_accumulate={self.num_batches_to_accumulate} must be at least 1"
                )
            if self.max_policy_lag < 0:
                raise ConfigError(f"max_policy_lag={self.max_policy_lag} must be 0 or more")
        elif self.mix_policies_in_one_env is False and not self.batched:
            raise ConfigError(
                "mode='sync' takes every seat's policy from the league's matchmaking; "
                "mix_policies_in_one_env=False applies to async (or batched) collection"
            )
        self.league_config()  # refuses unknown or out-of-range league options
        self._check_roles()
        if self.pbt_enabled:
            from league.pbt import PBTConfig

            PBTConfig.from_value(self.pbt)

    def _check_roles(self) -> None:
        wanted = dict(self.roles or {})
        for k, entry in enumerate(self.policies or []):
            if isinstance(entry, dict) and "league_role" in entry:
                wanted[entry["league_role"]] = wanted.get(entry["league_role"], 0) + 1
                if entry["league_role"] not in LEAGUE_ROLES:
                    raise ConfigError(
                        f"policies[{k}]: league_role {entry['league_role']!r} is unknown; "
                        f"valid: {list(LEAGUE_ROLES)}"
                    )
        if self.roles is not None:
            if self.policies is not None:
                raise ConfigError("give roles= or policies=, not both (policies take league_role)")
            unknown = [r for r in self.roles if r not in LEAGUE_ROLES]
            if unknown:
                raise unknown_keys("league role", unknown, LEAGUE_ROLES)
            bad = {r: n for r, n in self.roles.items() if not isinstance(n, int) or n < 0}
            if bad:
                raise ConfigError(f"roles={self.roles}: counts must be whole numbers >= 0 {bad}")
        no_learners = self.roles is not None and not any(self.roles.values())
        exploiters = any(r in ALPHASTAR_ROLES and n for r, n in wanted.items())
        if (exploiters or no_learners) and not wanted.get("main"):
            raise ConfigError(
                f"league roles {wanted} have no main agent: exploiters exploit main agents, "
                'so give at least one, e.g. roles={"main": 1, "main_exploiter": 1}'
            )

    @property
    def has_league_roles(self) -> bool:
        """Whether some learner gets an AlphaStar league role (from `roles` or a
        `policies` entry's league_role): matchmaking is then strategy "roles" unless the
        league option names another."""
        entries = [e for e in self.policies or [] if isinstance(e, dict)]
        wanted = [r for r, n in (self.roles or {}).items() if n] + [
            e.get("league_role") for e in entries
        ]
        return any(r in ALPHASTAR_ROLES for r in wanted)

    @property
    def pbt_enabled(self) -> bool:
        """Whether the run has PBT: `pbt=True` or a dict of options (`{}` = the defaults)."""
        return self.pbt is not None and self.pbt is not False

    def league_config(self) -> LeagueConfig:
        """The `league={...}` options as a checked `LeagueConfig` (seeded by `seed`)."""
        return LeagueConfig.from_dict({"seed": self.seed, **self.league})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def options_table(cls) -> str:
        """Every option as a markdown table (docs/training.md holds this very table)."""
        rows = ["| option | default | meaning |", "| --- | --- | --- |"]
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            rows.append(f"| `{f.name}` | `{json.dumps(default)}` | {f.metadata['help']} |")
        return "\n".join(rows) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """A checked config from plain data; unknown keys are refused with the closest match."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in data if k not in names]
        if unknown:
            raise unknown_keys("option", unknown, names)
        return cls(**data)
