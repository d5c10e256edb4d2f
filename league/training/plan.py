"""What a run will build, worked out from its config and its env before anything is built.

`EnvInfo.probe` builds the env once to read its seats, roles and spaces.
`make_plan(config, env, custom_mapping)` writes nothing and builds nothing (it
reads the CPU count and whether CUDA is there): it checks every rule that
needs the env, fills in what the config leaves open (the batch size, each
learner's id, role, algorithm config, device and seed) and returns a `Plan`.
The config it is given is never changed; `Plan.config` is the resolved copy
that goes to config.json.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces as gym_spaces

import wrappers
from league.algos import ALGORITHMS
from league.config import TrainConfig
from league.errors import ConfigError
from league.manager import LeagueConfig
from league.models import board_support_fits, column_head_fits, pick_encoder
from league.presets import apply_preset
from league.symmetry import as_config, env_symmetries
from league.training.devices import check_device, policy_device
from league.training.modes import env_batches

# PPO's entropy bonus for Discrete actions unless configured (TrainConfig.ent_coef).
DISCRETE_ENT_COEF = 0.1
DEFAULT_MIN_BATCH = 1024


@dataclass(frozen=True)
class EnvInfo:
    """What the trainer needs to know about an env, read once from one instance."""

    name: str
    seats: list[str]
    roles: list[str]  # role per seat
    spaces: dict[str, tuple[gym_spaces.Space, gym_spaces.Space]]  # role -> (obs, action)
    decisions_per_step: int  # active seats per env step: 1 for turn-based AEC games
    step_seconds: float = 0.0  # measured cost of one env step, random legal actions
    obs_bytes: int = 0  # bytes of one env step's observations, every seat

    @classmethod
    def probe(
        cls, env_fn: Any, pad: bool = False, env_kwargs: dict | None = None, measure: bool = True
    ) -> EnvInfo:
        """Read the env's seats and spaces; `measure` also times a few env steps."""
        env = wrappers.multiagent(env_fn, pad=pad, env_kwargs=env_kwargs or None)
        try:
            spaces = {
                role: (env.observation_spaces[i], env.action_spaces[i])
                for i, role in reversed(list(enumerate(env.roles)))
            }
            decisions = 1 if isinstance(env, wrappers.AECMultiAgentEnv) else env.num_agents
            obs_bytes = sum(
                int(np.prod(o.shape, dtype=np.int64)) * np.dtype(o.dtype).itemsize
                for o in env.observation_spaces
            )
            seconds = _seconds_per_step(env) if measure else 0.0
            return cls(
                env.name,
                list(env.possible_agents),
                list(env.roles),
                spaces,
                decisions,
                seconds,
                obs_bytes,
            )
        finally:
            env.close()

    @property
    def role_names(self) -> list[str]:
        return list(dict.fromkeys(self.roles))

    def first_seat(self, role: str) -> str:
        return self.seats[self.roles.index(role)]


def _seconds_per_step(env: Any, budget: float = 0.25, most: int = 64) -> float:
    """Time of one env step with random legal actions: the median of up to `most` steps
    timed one by one (a quarter second at most).

    The median, not the mean: on a busy machine the scheduler takes the CPU away for
    whole time slices (milliseconds), and the few steps it interrupts would otherwise
    make a 0.1 ms step look like a costly one, so the plan (how many envs) would change
    with whatever else the machine is running. An env that waits on something outside
    this process on every step still shows that wait in every step's time.
    """
    from league.policies import RandomPolicy

    policies = [RandomPolicy(space, seed=k) for k, space in enumerate(env.action_spaces)]
    _, infos = env.reset(seed=0)
    for _ in range(2):  # first steps pay one-off costs (imports, caches)
        actions = [
            p.act(None, info.get("action_mask")) for p, info in zip(policies, infos, strict=True)
        ]
        *_, infos = env.step(actions)
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < most and (len(times) < 4 or time.perf_counter() - started < budget):
        begin = time.perf_counter()
        actions = [
            p.act(None, info.get("action_mask")) for p, info in zip(policies, infos, strict=True)
        ]
        *_, infos = env.step(actions)
        times.append(time.perf_counter() - begin)
    return float(np.median(times))


@dataclass(frozen=True)
class LearnerSpec:
    """One learner as the run builds it."""

    id: str
    role: str
    algo: str
    config: dict[str, Any]  # the algorithm's config fields, defaults of the run filled in
    device: str
    seed: int
    index: int  # position among the learners (the device rule and seeds use it)
    league_role: str = "learner"  # AlphaStar role (league.roles)


@dataclass(frozen=True)
class Plan:
    """The resolved run: the config with its open values filled in, and the learners."""

    config: TrainConfig
    env: EnvInfo
    learners: list[LearnerSpec]
    league_config: LeagueConfig
    mix: bool  # policies may share an env (async/sync unbatched)
    batches: list[tuple[int, int]] | None  # batched mode: env range per learner block
    # Options the config left open -> why this value (config.json keeps it under
    # "planned"; a resume plans them again unless given).
    chosen: dict[str, str] = field(default_factory=dict)
    # Options the env's preset filled -> why (config.json keeps them as given, so a
    # resume builds the same models).
    preset: dict[str, str] = field(default_factory=dict)
    # backend='ray': the GPUs the learner actors ask for in all, and how many actors.
    learner_gpus: float = 0.0
    learner_hosts: int = 1

    @property
    def notes(self) -> list[str]:
        """The choices made for the user, and why, one line each."""
        filled = {**self.preset, **self.chosen}
        notes = [f"{key}={getattr(self.config, key)}: {why}" for key, why in filled.items()]
        if "strategy" not in self.config.league and self.league_config.strategy == "roles":
            notes.append("league strategy 'roles': AlphaStar matchmaking by league role")
        return notes

    @property
    def learner_ids(self) -> list[str]:
        return [s.id for s in self.learners]


def make_plan(
    config: TrainConfig,
    env: EnvInfo,
    custom_mapping: bool = False,
    cores: int | None = None,
    cluster_gpus: float | None = None,
) -> Plan:
    """Check the config against the env and resolve what it leaves open; pure (`cores`
    defaults to the CPU cores this process may use; `cluster_gpus`, the Ray cluster's
    GPUs, is checked against ray_gpus when given)."""
    config, preset = apply_preset(config, env.name)
    learners = learner_specs(config, env, soft=preset)
    gpus, hosts = 0.0, 1
    if config.backend == "ray":
        gpus = learner_gpus(config.ray_gpus, cluster_gpus, len(learners))
        hosts = learner_actors(config.ray_learner_actors, gpus, len(learners))
    config, preset = _resolve_shared_trunk(config, env, learners, preset, hosts)
    per_role = max(sum(s.role == r for s in learners) for r in env.role_names)
    chosen: dict[str, str] = {}
    resolved: dict[str, Any] = {}
    if config.num_workers is None:
        resolved["num_workers"], chosen["num_workers"] = choose_workers(config, env, cores)
    if config.num_envs is None:
        workers = resolved.get("num_workers", config.num_workers)
        resolved["num_envs"], chosen["num_envs"] = choose_num_envs(
            config, env, len(learners), per_role, workers
        )
    config = dataclasses.replace(config, **resolved)
    if config.num_workers and config.num_envs % config.num_workers:
        raise ConfigError(
            f"num_envs={config.num_envs} must be a multiple of num_workers={config.num_workers}"
        )
    if config.batched:
        if custom_mapping:
            raise ConfigError(
                "batched=True assigns policies per env batch, not per env: a custom mapping "
                "cannot be used; pass batched=False to use it"
            )
        if config.num_envs % per_role:
            raise ConfigError(
                f"batched=True splits num_envs={config.num_envs} into one block per learner "
                f"of each role ({per_role}); make num_envs a multiple of {per_role}"
            )
    if config.batch_size is None:
        resolved["batch_size"] = default_batch_size(config, len(learners), env.decisions_per_step)
        chosen["batch_size"] = (
            "the smallest multiple of one iteration's share per learner that is at least "
            f"{DEFAULT_MIN_BATCH}"
        )
    resolved_config = dataclasses.replace(config, **resolved)
    if config.mode == "sync":
        check_batch_rule(resolved_config, len(learners), env.decisions_per_step)
    mix = (
        config.mix_policies_in_one_env
        if config.mix_policies_in_one_env is not None
        else not config.batched
    )
    batches = env_batches(config.num_envs, per_role) if config.batched else None
    league_config = resolved_config.league_config()
    if "strategy" not in config.league and config.has_league_roles:
        league_config = dataclasses.replace(league_config, strategy="roles")
    if config.pbt_enabled:
        from league.pbt import check_pbt_population  # league.pbt is an observer: lazily

        check_pbt_population(_pbt_spec_groups(learners, env, config.stack))
    return Plan(
        resolved_config, env, learners, league_config, mix, batches, chosen, preset, gpus, hosts
    )


def stack_group(spec: LearnerSpec, env: EnvInfo) -> tuple | None:
    """The stack a learner joins when stacking is on (None: it trains on its own):
    PPO learners of one seat role, device and `stack_key` share one."""
    from league.algos.stacked import stack_key, stackable

    obs_space, _ = env.spaces[spec.role]
    if spec.algo != "ppo" or not stackable(obs_space, spec.config):
        return None
    return ("stack", spec.role, spec.device, stack_key(spec.config))


def _resolve_shared_trunk(
    config: TrainConfig,
    env: EnvInfo,
    learners: list[LearnerSpec],
    preset: dict[str, str],
    hosts: int,
) -> tuple[TrainConfig, dict[str, str]]:
    """`config` with share_trunk and trunk_update decided, and `preset` without what was
    dropped: a shared trunk you ask for is checked (refused when it cannot work); one
    filled by the env's preset applies only where the learners allow it, like the
    preset's other options."""
    if "share_trunk" in preset:
        try:
            check_shared_trunk(learners, env, config.stack, hosts)
        except ConfigError:
            config = dataclasses.replace(config, share_trunk=False)
            preset = {k: v for k, v in preset.items() if k != "share_trunk"}
    elif config.share_trunk:
        check_shared_trunk(learners, env, config.stack, hosts)
    share = bool(config.share_trunk)
    if not share and "trunk_update" in preset:
        config = dataclasses.replace(config, trunk_update=None)
        preset = {k: v for k, v in preset.items() if k != "trunk_update"}
    update = config.trunk_update or "mean"
    if update != "mean" and not share:
        raise ConfigError(
            f"trunk_update={update!r} sets how a shared trunk moves, and share_trunk is "
            "False; set share_trunk=True, or leave trunk_update at 'mean'"
        )
    return dataclasses.replace(config, share_trunk=share, trunk_update=update), preset


def check_shared_trunk(
    learners: list[LearnerSpec], env: EnvInfo, stack: bool, hosts: int = 1
) -> None:
    """share_trunk=True needs the learners of each seat role in one stack, trained in
    one place (`hosts`: Ray learner actors)."""
    if not stack:
        raise ConfigError(
            "share_trunk=True shares the trunk of a stacked population, and stack=False "
            "turns stacking off; set stack=True, or share_trunk=False"
        )
    if hosts > 1:
        raise ConfigError(
            f"share_trunk=True trains one trunk in one stack, but {hosts} Ray learner "
            "actors would split the learners into one stack each; set ray_learner_actors=1 "
            "(ray_gpus at most 1), or share_trunk=False"
        )
    for spec in learners:
        if stack_group(spec, env) is None:
            what = f"a {spec.algo} learner" if spec.algo != "ppo" else "an image (CNN) learner"
            raise ConfigError(
                f"share_trunk=True: policy {spec.id!r} is {what}, which does not stack; only "
                "PPO learners with the MLP or board encoder share a trunk. Make every learner "
                "such a PPO learner, or set share_trunk=False"
            )
    for role in env.role_names:
        mine = [s for s in learners if s.role == role]
        keys = {stack_group(s, env) for s in mine}
        if len(keys) > 1:
            raise ConfigError(
                f"share_trunk=True: the learners of seat role {role!r} "
                f"({', '.join(s.id for s in mine)}) would form {len(keys)} stacks (devices "
                "or architecture options differ), each with its own trunk; give them one "
                "device and the same hidden_sizes, encoder, update_epochs, minibatches and "
                "symmetries, or set share_trunk=False"
            )


def learner_gpus(requested: float | None, available: float | None, learners: int) -> float:
    """backend='ray': the GPUs the learner actors ask for in all: `requested`, or every
    GPU of the cluster (`available`) up to one per learner. ConfigError when the
    cluster has fewer than asked (unchecked when `available` is unknown)."""
    if requested is None:
        return min(available or 0.0, float(learners))
    if available is not None and requested > available:
        raise ConfigError(
            f"ray_gpus={requested:g} asks for more GPUs than the Ray cluster has "
            f"({available:g}); ask for at most {available:g}, or add GPU nodes"
        )
    return requested


def learner_actors(requested: int | None, gpus: float, learners: int) -> int:
    """backend='ray': how many learner actors: `requested`, or one per whole GPU (one
    without)."""
    if requested is None:
        return max(1, min(int(gpus), learners))
    if requested < 1 or requested > learners:
        raise ConfigError(
            f"ray_learner_actors={requested} must be between 1 and the run's {learners} "
            "learners (learner i trains in actor i % ray_learner_actors)"
        )
    return requested


def _pbt_spec_groups(learners: list[LearnerSpec], env: EnvInfo, stack: bool) -> list[list[str]]:
    """The groups `league.pbt.pbt_groups` will form, from the specs (before building)."""
    groups: dict[tuple, list[str]] = {}
    for spec in learners:
        in_stack = stack_group(spec, env) if stack else None
        shape = in_stack or tuple(
            str(spec.config.get(k)) for k in ("hidden_sizes", "encoder", "image_pixels")
        )
        key = (spec.role, spec.league_role, spec.algo, spec.device, in_stack is not None, shape)
        groups.setdefault(key, []).append(spec.id)
    return list(groups.values())


# An env step cheaper than this is a board game or a small particle world: the
# default number of envs amortises one forward pass over many of them. A larger
# population gets more envs, up to as many as give every learner a default batch
# per iteration: each forward pass reads every member's weights, so the same envs
# spread over more learners would pay that read for fewer rows each
# (docs/benchmarks.md: 6 learners step 1.20x faster with 384 envs than with 192).
CHEAP_STEP_SECONDS = 1e-3
CHEAP_ENVS = 192
MAX_CHEAP_ENVS = 2048
# Costlier envs: as many envs as step in this long, one env step each.
ROUND_SECONDS = 0.04
# Observations held by a run (vector arrays, pending samples, the batches
# waiting for learners) stay under this.
OBS_MEMORY_BYTES = 512 * 2**20
# A run whose envs step for less than this pays more to start workers than they save.
MIN_WORKER_SECONDS = 10.0


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def choose_workers(config: TrainConfig, env: EnvInfo, cores: int | None) -> tuple[int, str]:
    """Env worker processes for a run that leaves `num_workers` open, and why."""
    cores = available_cores() if cores is None else cores
    if config.backend == "local":
        return 0, "backend='local': the envs step in the training process"
    if config.backend == "ray":
        workers = max(2, cores - cores % 2)
        if config.num_envs is not None:
            workers = math.gcd(config.num_envs, workers)
        return workers, f"backend='ray': env worker actors for the cluster's {cores} CPUs"
    if cores < 2 and config.backend != "multiprocessing":
        return 0, "one CPU core: the envs step in the training process"
    budgets = [config.max_seconds] if config.max_seconds else []
    if config.total_steps:
        budgets.append(config.total_steps * env.step_seconds)
    env_seconds = min(budgets)
    if env_seconds < MIN_WORKER_SECONDS and config.backend != "multiprocessing":
        return 0, (
            f"the envs would step for about {env_seconds:.1f} s in all, too short for worker "
            "processes to pay for their start"
        )
    workers = 2 if cores < 6 else min(8, cores - cores % 2)
    if config.num_envs is not None and config.num_envs % workers:
        if config.backend == "multiprocessing":
            workers = math.gcd(config.num_envs, workers)  # 1 for an odd number of envs
        else:
            return 0, f"num_envs={config.num_envs} does not split evenly over {workers} workers"
    return workers, (
        f"{cores} CPU cores and an env step costs {env.step_seconds * 1e6:,.0f} us: the envs "
        f"step in {workers} worker processes while this one acts and learns "
        "(num_workers=0 keeps them here)"
    )


def choose_num_envs(
    config: TrainConfig, env: EnvInfo, learners: int, per_role: int, workers: int
) -> tuple[int, str]:
    """Envs for a run that leaves `num_envs` open, and why: many for cheap envs, fewer
    for costly or large-observation ones, always a number the run's rules accept."""
    step = 1
    if config.mode == "sync":  # a whole share of each iteration per learner
        step = learners // math.gcd(learners, env.decisions_per_step * config.rollout)
    for need in (2, workers or 1, per_role if config.batched else 1):
        step = step * need // math.gcd(step, need)
    if env.step_seconds < CHEAP_STEP_SECONDS:
        target, why = CHEAP_ENVS, "a cheap env step: many envs share each forward pass"
        per_batch = DEFAULT_MIN_BATCH * learners / (config.rollout * env.decisions_per_step)
        if per_batch > CHEAP_ENVS:
            target = min(per_batch, MAX_CHEAP_ENVS)
            why = (
                f"a cheap env step: many envs share each forward pass; with {learners} "
                f"learners, enough for a {DEFAULT_MIN_BATCH}-sample batch each per iteration "
                f"(at most {MAX_CHEAP_ENVS})"
            )
    else:
        target = ROUND_SECONDS / env.step_seconds
        why = (
            f"an env step costs {env.step_seconds * 1e3:,.1f} ms: as many envs as step in "
            f"{ROUND_SECONDS * 1e3:.0f} ms"
        )
    held = env.obs_bytes * (3 * config.rollout + 4)
    if held and target * held > OBS_MEMORY_BYTES:
        target = OBS_MEMORY_BYTES / held
        why = (
            f"observations of {env.obs_bytes / 2**20:,.1f} MiB per env step: as many envs as "
            "keep them under 512 MiB"
        )
    return max(step, int(target // step) * step), why


def learner_specs(
    config: TrainConfig, env: EnvInfo, soft: Collection[str] = ()
) -> list[LearnerSpec]:
    """One spec per learner: id, role, algorithm and that algorithm's config. Options in
    `soft` (filled by the env's preset) apply to the learners they fit and skip the rest."""
    role_names = env.role_names
    entries: list[dict[str, Any]] = []
    if config.roles is not None:
        for role in role_names:
            for league_role, count in config.roles.items():
                for k in range(count):
                    pid = f"{league_role}{k}"
                    pid = pid if len(role_names) == 1 else f"{role}_{pid}"
                    entries.append(
                        {"id": pid, "role": role, "algo": "ppo", "league_role": league_role}
                    )
    elif config.policies is None:
        for role in role_names:
            for k in range(config.num_policies):
                # "agent_0" would name a seat of simple_tag: learner ids never do.
                pid = f"p{k}" if len(role_names) == 1 else f"{role}_p{k}"
                entries.append({"id": pid, "role": role, "algo": "ppo"})
    else:
        for k, entry in enumerate(config.policies):
            spec = {"algo": entry} if isinstance(entry, str) else dict(entry)
            spec.setdefault("algo", "ppo")
            role = spec.setdefault("role", role_names[k % len(role_names)])
            if role not in role_names:
                raise ConfigError(
                    f"policies[{k}]: role {role!r} is not a role of env {env.name!r} {role_names}"
                )
            spec.setdefault("id", f"{spec['algo']}{k}")
            entries.append(spec)
    ids = [e["id"] for e in entries]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"policy ids must be unique, got {ids}")
    check_ids_are_not_seats(ids, env)
    return [_spec(config, env, i, entry, soft) for i, entry in enumerate(entries)]


def check_ids_are_not_seats(ids: list[str], env: EnvInfo) -> None:
    """A policy named like a seat ("agent_0") reads as that seat everywhere (matches.csv.gz,
    the leaderboard): refused, with the seats to avoid."""
    clash = [pid for pid in ids if pid in env.seats]
    if clash:
        raise ConfigError(
            f"policy ids {clash} are seat names of env {env.name!r}; give policies ids that "
            f"differ from its seats {env.seats}"
        )


def _spec(
    config: TrainConfig, env: EnvInfo, index: int, entry: dict[str, Any], soft: Collection[str]
) -> LearnerSpec:
    algo_config = {k: v for k, v in entry.items() if k not in ("id", "role", "algo", "league_role")}
    algo_config.setdefault("hidden_sizes", list(config.hidden_sizes))
    obs_space, action_space = env.spaces[entry["role"]]
    if entry["algo"] == "ppo" and "ent_coef" not in algo_config:
        ent_coef = config.ent_coef
        if ent_coef is None and isinstance(action_space, gym_spaces.Discrete):
            ent_coef = DISCRETE_ENT_COEF
        if ent_coef is not None:
            algo_config["ent_coef"] = ent_coef
    wanted = config.encoder is not None and "encoder" not in algo_config
    if (
        wanted
        and _takes(entry, "encoder")
        and ("encoder" not in soft or _fits(obs_space, config.encoder))
    ):
        algo_config["encoder"] = config.encoder
    if "encoder" in algo_config:  # one that cannot read the observations: refused now
        pick_encoder(obs_space, algo_config["encoder"], f"policy {entry['id']!r}")
    for name in MODEL_OPTIONS:
        _model_option(name, config, entry, obs_space, action_space, algo_config, soft)
    if "symmetries" not in algo_config and config.symmetries:
        _add_symmetries(config, env, entry, algo_config, required="symmetries" not in soft)
    device = policy_device(index, override=config.device)
    if config.backend != "ray":  # Ray places learners on the learner actor's GPUs
        check_device(device, f"policy {entry['id']!r}")
    return LearnerSpec(
        id=entry["id"],
        role=entry["role"],
        algo=str(entry["algo"]).lower(),
        config=algo_config,
        device=device,
        seed=config.seed + index,
        index=index,
        league_role=entry.get("league_role", "learner"),
    )


# PPO's model options that are also run-wide (TrainConfig): what each is called in a
# refusal, and why it cannot work for a learner (None if it can).
MODEL_OPTIONS = {
    "column_head": ("the column head", column_head_fits),
    "board_support": ("board support", board_support_fits),
    "shared_body": ("a shared body", lambda *_: None),  # any encoder (images always share)
}


def _model_option(
    name: str,
    config: TrainConfig,
    entry: dict[str, Any],
    obs_space: gym_spaces.Space,
    action_space: gym_spaces.Space,
    algo_config: dict[str, Any],
    soft: Collection[str],
) -> None:
    """Check a learner's own model option `name` (one of MODEL_OPTIONS), or give it the
    run-wide one. One that cannot work is refused before training; the run-wide one
    filled by a preset is left off the learners it does not fit."""
    own = name in algo_config
    if not (algo_config[name] if own else getattr(config, name)):
        return
    label, fits = MODEL_OPTIONS[name]
    if not own and not _takes(entry, name):
        why = f"algorithm {entry['algo']!r} has no {name} option (PPO has)"
    else:
        kind = pick_encoder(obs_space, algo_config.get("encoder", "auto"))
        problem = fits(obs_space, action_space, kind)
        if own and problem:
            raise ConfigError(f"policy {entry['id']!r}: {name}=True {problem}")
        why = problem and f"{label} {problem}"
    if not why:
        algo_config[name] = True
    elif name not in soft:
        raise ConfigError(f"{name}=True but policy {entry['id']!r} cannot have it: {why}")


def _add_symmetries(
    config: TrainConfig,
    env: EnvInfo,
    entry: dict[str, Any],
    algo_config: dict[str, Any],
    required: bool,
) -> None:
    """Fill in the env's symmetries (True or a mode) for a learner; one that cannot have
    them is refused when they are `required` (asked for, not filled by a preset)."""
    takes = _takes(entry, "symmetries")
    found = env_symmetries(env.name, *env.spaces[entry["role"]]) if takes else []
    if found:
        algo_config["symmetries"] = as_config(found)
        if isinstance(config.symmetries, str):
            algo_config.setdefault("symmetry_mode", config.symmetries)
    elif required:
        why = (
            f"algorithm {entry['algo']!r} has no symmetries option"
            if not takes
            else f"env {env.name!r} has no symmetries for its {entry['role']!r} spaces"
        )
        raise ConfigError(
            f"symmetries={config.symmetries!r} but policy {entry['id']!r} cannot have them: "
            f"{why}. Register them with league.register_symmetries(env_name, fn), or set "
            "symmetries=False"
        )


def _fits(space: gym_spaces.Space, encoder: str) -> bool:
    """Whether `encoder` can read observations of `space`."""
    try:
        pick_encoder(space, encoder)
    except ConfigError:
        return False
    return True


def _takes(entry: dict[str, Any], option: str) -> bool:
    """Whether the learner's algorithm has config field `option` (a user's algorithm may not)."""
    algorithm = ALGORITHMS.get(str(entry["algo"]).lower())
    return algorithm is not None and option in {
        f.name for f in dataclasses.fields(algorithm.config_class)
    }


def _share(config: TrainConfig, num_learners: int, decisions_per_step: int) -> tuple[int, int]:
    """(share, remainder) of one iteration's samples per learner."""
    return divmod(config.num_envs * decisions_per_step * config.rollout, num_learners)


def default_batch_size(config: TrainConfig, num_learners: int, decisions_per_step: int) -> int:
    """The smallest multiple of one iteration's share per learner that is at least
    DEFAULT_MIN_BATCH, so that the default batch size always meets the sync rule."""
    share, rest = _share(config, num_learners, decisions_per_step)
    if rest or not share:
        return DEFAULT_MIN_BATCH  # no whole share: check_batch_rule says what to change
    return share * -(-DEFAULT_MIN_BATCH // share)


def check_batch_rule(config: TrainConfig, num_learners: int, decisions_per_step: int) -> None:
    """Sync mode: batch_size is a multiple of num_envs x seats x rollout / learners."""
    share, rest = _share(config, num_learners, decisions_per_step)
    if rest or config.batch_size % share:
        good = max(share, round(config.batch_size / share) * share) if share else 0
        raise ConfigError(
            f"sync mode: batch_size={config.batch_size} must be a multiple of "
            f"num_envs x active seats per step x rollout / learners = {config.num_envs} x "
            f"{decisions_per_step} x {config.rollout} / {num_learners} = "
            f"{share + rest / num_learners:g}. "
            + (
                f"Set batch_size={good}, or change num_envs/rollout."
                if not rest
                else "Change num_envs or rollout so that this is a whole number."
            )
        )


def env_reference(env_fn: Any) -> str | None:
    """A string that rebuilds the env (registry id or import path "module:attribute"), if
    there is one. PettingZoo's `parallel_env` functions are closures made elsewhere
    (`parallel_wrapper_fn.<locals>.par_fn`): they are found by identity among the
    attributes of loaded modules of the same package."""
    if isinstance(env_fn, str):
        return env_fn
    if hasattr(env_fn, "__spec__") and hasattr(env_fn, "__name__"):  # a module
        return env_fn.__name__
    module, name = getattr(env_fn, "__module__", None), getattr(env_fn, "__qualname__", "")
    if not module or module == "__main__":
        return None
    if name and "<" not in name:
        return f"{module}:{name}"
    packages = {module.split(".")[0]}
    for cell in getattr(env_fn, "__closure__", None) or ():
        inner = getattr(cell.cell_contents, "__module__", None)
        if inner:
            packages.add(inner.split(".")[0])
    found = [
        (len(mod_name), mod_name, attr)
        for mod_name, mod in list(sys.modules.items())
        if mod is not None and mod_name.split(".")[0] in packages
        for attr in ("parallel_env", "env", "raw_env")
        if getattr(mod, attr, None) is env_fn
    ]
    if not found:
        return None
    _, mod_name, attr = min(found)
    return f"{mod_name}:{attr}"
