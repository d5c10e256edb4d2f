"""Which device each policy lives on: policy i on `cuda:(i % num_gpus)`, else CPU."""

from __future__ import annotations


def policy_device(index: int, num_gpus: int | None = None, override: str | None = None) -> str:
    """The device for the policy with this index among the learners.

    With 4 policies on 2 GPUs, GPU 0 holds policies 0 and 2 and GPU 1 holds 1
    and 3. `override` (e.g. ``"cpu"`` or ``"cuda:1"``) wins over the rule.
    """
    if override:
        return override
    if num_gpus is None:
        num_gpus = visible_gpus()
    if num_gpus <= 0:
        return "cpu"
    return f"cuda:{index % num_gpus}"


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def available_devices() -> list[str]:
    """Devices a learner can be put on here: "cpu" and each visible CUDA GPU."""
    return ["cpu", *(f"cuda:{i}" for i in range(visible_gpus()))]


def check_device(device: str, who: str) -> None:
    """ConfigError naming `device` and the available ones unless it exists here."""
    import torch

    from league.errors import ConfigError

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        parsed = None
    if parsed is not None and parsed.type == "cpu":
        return
    available = available_devices()
    index = 0 if parsed is None or parsed.index is None else parsed.index
    if parsed is None or parsed.type != "cuda" or index >= visible_gpus():
        hint = "" if len(available) > 1 else " (no CUDA GPU is visible to this process)"
        raise ConfigError(
            f"{who}: device={device!r} does not exist on this machine; available: "
            f"{available}{hint}. Pass device='cpu', or leave device unset to use the GPUs "
            "that are there"
        )
