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
