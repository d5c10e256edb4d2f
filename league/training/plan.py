"""What a run will build, worked out from its config and its env before anything is built.

`EnvInfo.probe` builds the env once to read its seats, roles and spaces.
`make_plan(config, env, custom_mapping)` is pure: it checks every rule that
needs the env, fills in what the config leaves open (the batch size, each
learner's id, role, algorithm config, device and seed) and returns a `Plan`.
The config it is given is never changed; `Plan.config` is the resolved copy
that goes to config.json.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from gymnasium import spaces as gym_spaces

import wrappers
from league.config import TrainConfig
from league.errors import ConfigError
from league.manager import LeagueConfig
from league.training.devices import policy_device
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

    @classmethod
    def probe(cls, env_fn: Any, pad: bool = False, env_kwargs: dict | None = None) -> EnvInfo:
        env = wrappers.multiagent(env_fn, pad=pad, env_kwargs=env_kwargs or None)
        try:
            spaces = {
                role: (env.observation_spaces[i], env.action_spaces[i])
                for i, role in reversed(list(enumerate(env.roles)))
            }
            decisions = 1 if isinstance(env, wrappers.AECMultiAgentEnv) else env.num_agents
            return cls(env.name, list(env.possible_agents), list(env.roles), spaces, decisions)
        finally:
            env.close()

    @property
    def role_names(self) -> list[str]:
        return list(dict.fromkeys(self.roles))

    def first_seat(self, role: str) -> str:
        return self.seats[self.roles.index(role)]


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


@dataclass(frozen=True)
class Plan:
    """The resolved run: the config with its open values filled in, and the learners."""

    config: TrainConfig
    env: EnvInfo
    learners: list[LearnerSpec]
    league_config: LeagueConfig
    mix: bool  # policies may share an env (async/sync unbatched)
    batches: list[tuple[int, int]] | None  # batched mode: env range per learner block
    notes: list[str] = field(default_factory=list)  # choices made for the user, and why

    @property
    def learner_ids(self) -> list[str]:
        return [s.id for s in self.learners]


def make_plan(config: TrainConfig, env: EnvInfo, custom_mapping: bool = False) -> Plan:
    """Check the config against the env and resolve what it leaves open; pure."""
    learners = learner_specs(config, env)
    per_role = max(sum(s.role == r for s in learners) for r in env.role_names)
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
    resolved = {}
    notes = []
    if config.batch_size is None:
        resolved["batch_size"] = default_batch_size(config, len(learners), env.decisions_per_step)
        notes.append(
            f"batch_size={resolved['batch_size']}: the smallest multiple of one iteration's "
            f"share per learner that is at least {DEFAULT_MIN_BATCH}"
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
    if config.mode == "sync" and "strategy" not in config.league:
        # Sync training promises every learner the same experience: a
        # deterministic round-robin unless the user picks a strategy.
        league_config = dataclasses.replace(league_config, strategy="round_robin")
    return Plan(resolved_config, env, learners, league_config, mix, batches, notes)


def learner_specs(config: TrainConfig, env: EnvInfo) -> list[LearnerSpec]:
    """One spec per learner: id, role, algorithm and that algorithm's config."""
    role_names = env.role_names
    entries: list[dict[str, Any]] = []
    if config.policies is None:
        for role in role_names:
            for k in range(config.num_policies):
                pid = f"p{k}" if len(role_names) == 1 else f"{role}_{k}"
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
    return [_spec(config, env, i, entry) for i, entry in enumerate(entries)]


def _spec(config: TrainConfig, env: EnvInfo, index: int, entry: dict[str, Any]) -> LearnerSpec:
    algo_config = {k: v for k, v in entry.items() if k not in ("id", "role", "algo")}
    algo_config.setdefault("hidden_sizes", list(config.hidden_sizes))
    _, action_space = env.spaces[entry["role"]]
    if entry["algo"] == "ppo" and "ent_coef" not in algo_config:
        ent_coef = config.ent_coef
        if ent_coef is None and isinstance(action_space, gym_spaces.Discrete):
            ent_coef = DISCRETE_ENT_COEF
        if ent_coef is not None:
            algo_config["ent_coef"] = ent_coef
    return LearnerSpec(
        id=entry["id"],
        role=entry["role"],
        algo=str(entry["algo"]).lower(),
        config=algo_config,
        device=policy_device(index, override=config.device),
        seed=config.seed + index,
        index=index,
    )


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
    """A string that rebuilds the env (registry id or import path), if there is one."""
    if isinstance(env_fn, str):
        return env_fn
    if hasattr(env_fn, "__spec__") and hasattr(env_fn, "__name__"):  # a module
        return env_fn.__name__
    module, name = getattr(env_fn, "__module__", None), getattr(env_fn, "__qualname__", "")
    if module and name and "<" not in name and module != "__main__":
        return f"{module}:{name}"
    return None
