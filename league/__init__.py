"""league: PettingZoo-native self-play leagues.

The rating, payoff and matchmaking layer imports no torch; `train` and `load`
are imported on first use so that `import league.ratings` stays light.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "train": ("league.api", "train"),
    "load": ("league.api", "load"),
    "League": ("league.manager", "League"),
    "LeagueConfig": ("league.manager", "LeagueConfig"),
    "MatchResult": ("league.manager", "MatchResult"),
    "Observer": ("league.training.observers", "Observer"),
    "Symmetry": ("league.symmetry", "Symmetry"),
    "register_symmetries": ("league.symmetry", "register_symmetries"),
    "register_preset": ("league.presets", "register_preset"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'league' has no attribute {name!r}")


__all__ = [
    "League",
    "LeagueConfig",
    "MatchResult",
    "Observer",
    "Symmetry",
    "load",
    "register_preset",
    "register_symmetries",
    "train",
]
