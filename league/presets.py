"""Env presets: options measured to train a stronger league on one env than the
library-wide defaults do.

One default cannot suit every env. On connect four, learners with the board
CNN and the mirror averaged in beat weak play far more reliably than the
default MLP learners; on other envs the same settings would only cost speed.
So, as Sample Factory lets each env family override its default parameters,
an env may carry a preset: values for a few options, with the measurement
they rest on. At the start of a run the preset fills those of its options the
config leaves at None, and the `league` fields (such as matchmaking's mix) the
config's `league` dict leaves out (an option you give always wins; `preset=False`
turns presets off); the run prints what it filled and why, and config.json keeps
the filled values as if given, so a resume builds the same models and league.
`register_preset` adds one for another env or replaces a built-in one (an empty
one turns it off).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from league.errors import ConfigError

# What a preset may fill: the learners' model and loss options whose default is None,
# and `league` fields (matchmaking's mix) the user's `league` dict leaves out. Budgets,
# env counts and workers depend on the machine: the planner chooses those.
PRESET_OPTIONS = (
    "encoder",
    "symmetries",
    "ent_coef",
    "share_trunk",
    "trunk_update",
    "column_head",
    "board_support",
    "shared_body",
    "league",
)


@dataclass(frozen=True)
class Preset:
    """Option values for one env, and why (printed at the start of a run)."""

    options: Mapping[str, Any]
    why: str


_BUILT_IN: dict[str, Preset] = {
    "connect_four_v3": Preset(
        {
            "encoder": "board",
            "symmetries": "average",
            "share_trunk": True,
            "trunk_update": "sum",
            "shared_body": True,
            "league": {"mix": {"self_play": 0.85, "pfsp": 0.1125, "snapshots": 0.0375}},
        },
        "connect four's preset: board-CNN learners with the mirror averaged beat random "
        "play more often than MLP learners on each of four paired seeds (docs/benchmarks.md, "
        "round 14); with one trunk moved by the sum of their updates they beat the "
        "lookahead bot more often than with their own trunks (round 21); with one body for "
        "policy and value they train 1.3x as fast and beat the negamax bots more often on "
        "eight paired seeds (round 35); playing themselves in 0.85 of their games, they "
        "train on more of their env steps and scored at least as well on every rung on "
        "eight paired seeds (round 40)",
    ),
    "tictactoe_v3": Preset(
        {"symmetries": "average", "ent_coef": 0.3},
        "tic-tac-toe's preset: with the eight views averaged and a stronger entropy bonus "
        "the top learner lost no game of 400 to perfect play on each of eight fresh seeds "
        "(docs/benchmarks.md, round 15)",
    ),
}
_REGISTERED: dict[str, Preset] = {}


def register_preset(env_name: str, options: Mapping[str, Any], why: str = "") -> None:
    """Give `env_name` (as the wrappers name it, e.g. "connect_four_v3") a preset:
    `options` maps some of PRESET_OPTIONS to values; `why` is printed at start.
    Empty `options` turn the env's built-in preset off (the library-wide defaults)."""
    unknown = [k for k in options if k not in PRESET_OPTIONS]
    if unknown:
        raise ConfigError(
            f"a preset may fill only {list(PRESET_OPTIONS)}, not {unknown}; pass other "
            "options to league.train"
        )
    from league.config import TrainConfig  # config imports nothing from here: no cycle

    TrainConfig(**options)  # a value that could never work is refused now, not at start
    _REGISTERED[env_name] = Preset(dict(options), why or f"the preset registered for {env_name}")


def unregister_preset(env_name: str) -> None:
    """Take back a preset added with `register_preset` (a built-in one applies again)."""
    _REGISTERED.pop(env_name, None)


def env_preset(env_name: str) -> Preset | None:
    """The registered (else built-in) preset of an env; None if it has none."""
    return _REGISTERED.get(env_name) or _BUILT_IN.get(env_name)


def apply_preset(config: Any, env_name: str) -> tuple[Any, dict[str, str]]:
    """`config` (a TrainConfig) with the env's preset filled into the options it leaves
    at None, and option -> why for each option filled."""
    preset = env_preset(env_name) if config.preset else None
    if preset is None:
        return config, {}
    options = dict(preset.options)
    league_fields = options.pop("league", None)  # fields of a dict whose default is {}
    filled = {k: v for k, v in options.items() if getattr(config, k) is None}
    if league_fields:
        league = _fill_league(config.league, league_fields, config.has_league_roles)
        if league != config.league:
            filled["league"] = league
    if not filled:
        return config, {}
    return dataclasses.replace(config, **filled), dict.fromkeys(filled, preset.why)


def _fill_league(
    given: Mapping[str, Any], preset: Mapping[str, Any], roles: bool
) -> dict[str, Any]:
    """The user's `league` fields with the preset's added where the user gave none; a
    mix only where matchmaking is strategy "mix" (the default), the one that reads it,
    not another strategy or league roles."""
    missing = {k: v for k, v in preset.items() if k not in given}
    if roles or given.get("strategy", "mix") != "mix":
        missing.pop("mix", None)
    return {**given, **missing}
