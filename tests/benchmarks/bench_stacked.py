"""A stacked population against separate learners: acting and updating, side by side.

On connect four's spaces (6x7x2 boards, 7 moves, the default MLP 128x128), for
a population of M PPO learners, in this one process, one torch thread,
interleaved round by round:

- act: 192 observations (the default envs), spread evenly over the M
  policies; separate = one `PPO.act` per policy on its rows; stacked = one
  `PolicyBank.act` over all rows; vmap = `torch.func.vmap(functional_call)`
  over the same stacked parameters, on rows already padded per policy and
  already a float tensor: the forward pass only (no conversion, grouping,
  masking or sampling, which the other two pay), so its time is a lower
  bound for acting that way; no ratio is printed for it;
- learn: one PPO update (4 epochs x 4 minibatches of a 1,024-sample batch)
  of every member; separate = M `PPO.learn` calls; stacked = one
  `StackedPPO.learn`.

    .venv/bin/python tests/benchmarks/bench_stacked.py --members 6,32 --rounds 5

Prints the median seconds per call and the ratios; one JSON line per
measurement goes to `--out`. Memory: bytes per member and per snapshot of the
stack, from the tensors themselves.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces
from torch import nn
from torch.func import functional_call, vmap

from league.algos import PPO
from league.algos.stacked import PolicyBank, StackedPPO

ROOT = Path(__file__).resolve().parents[2]
BOARD = spaces.Box(0, 1, (6, 7, 2), np.int8)
ACTIONS = spaces.Discrete(7)
ACT_ROWS = 192
BATCH = 1024
MODEL = {"hidden_sizes": [128, 128]}  # league.train's default (PPOConfig alone has 64x64)


def batch(rng: np.random.Generator, n: int) -> dict:
    mask = rng.random((n, 7)) < 0.7
    mask[np.arange(n), rng.integers(0, 7, n)] = True
    actions = np.array([rng.choice(np.flatnonzero(m)) for m in mask])
    segment_end = rng.random(n) < 0.05
    segment_end[-1] = True
    return {
        "obs": rng.integers(0, 2, (n, *BOARD.shape)).astype(np.int8),
        "action_mask": mask,
        "actions": actions,
        "logprobs": np.log(1 / mask.sum(1)).astype(np.float32),
        "values": rng.normal(0, 0.5, n).astype(np.float32),
        "rewards": rng.choice([-1.0, 0.0, 1.0], n).astype(np.float32),
        "terminated": segment_end & (rng.random(n) < 0.5),
        "next_values": rng.normal(0, 0.5, n).astype(np.float32),
        "segment_end": segment_end,
    }


class Forward(nn.Module):
    """The acting forward pass of an `ActorCritic` (logits and value), as `forward`,
    for `functional_call`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        actor, critic = self.model._features(x)
        return self.model.actor_head.logits(actor), self.model.critic_head(critic)


def timed(fn, repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat


def measure(members: int, rounds: int, rng: np.random.Generator) -> list[dict]:
    seeds = list(range(members))
    separate = [PPO(BOARD, ACTIONS, MODEL, seed=s) for s in seeds]
    stack = StackedPPO(BOARD, ACTIONS, [MODEL] * members, seeds=seeds)
    bank = PolicyBank(stack, capacity=20)
    data = batch(rng, ACT_ROWS)
    obs, mask = data["obs"], data["action_mask"]
    rows = np.arange(ACT_ROWS) % members
    per_policy = [np.flatnonzero(rows == m) for m in range(members)]

    # vmap over the stacked parameters: rows padded to the most any policy has.
    width = max(len(r) for r in per_policy)
    padded = np.zeros((members, width, *BOARD.shape), np.float32)
    for m, r in enumerate(per_policy):
        padded[m, : len(r)] = obs[r]
    padded_t = torch.from_numpy(padded)
    forward = Forward(stack.template)
    params = {f"model.{k}": v.detach() for k, v in stack.params.items()}

    def one(p, x):
        return functional_call(forward, p, (x,))

    vmapped = vmap(one)

    def act_separate():
        for m, r in enumerate(per_policy):
            separate[m].act(obs[r], mask[r])

    def act_stacked():
        bank.act(obs, mask, rows)

    def act_vmap():
        with torch.no_grad():
            vmapped(params, padded_t)

    batches = [batch(rng, BATCH) for _ in range(members)]

    def learn_separate():
        for m in range(members):
            separate[m].learn(batches[m])

    def learn_stacked():
        stack.learn(dict(enumerate(batches)))

    try:
        act_vmap()
        has_vmap = True
    except Exception as err:  # a model vmap cannot trace: report, do not fail
        print(f"# vmap failed on the template model: {err}")
        has_vmap = False
    cases = {"act separate": (act_separate, 20), "act stacked": (act_stacked, 20)}
    if has_vmap:
        cases["act vmap (forward only)"] = (act_vmap, 20)
    cases.update({"learn separate": (learn_separate, 1), "learn stacked": (learn_stacked, 1)})
    for fn, _ in cases.values():  # warm up
        fn()
    results = []
    for r in range(rounds):
        names = list(cases) if r % 2 == 0 else list(cases)[::-1]
        for name in names:
            fn, repeat = cases[name]
            results.append(
                {"members": members, "case": name, "round": r, "seconds": timed(fn, repeat)}
            )
    member_bytes = stack.member_bytes()
    results.append(
        {
            "members": members,
            "case": "memory",
            "bytes_per_member": member_bytes,
            "bytes_per_snapshot": bank.snapshot_bytes(),
        }
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", default="6,32")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "stacked.jsonl"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    with open(args.out, "a") as log:
        for members in [int(x) for x in args.members.split(",")]:
            results = measure(members, args.rounds, rng)
            for result in results:
                log.write(json.dumps(result) + "\n")
            seconds = {}
            for result in results:
                if "seconds" in result:
                    seconds.setdefault(result["case"], []).append(result["seconds"])
            med = {case: statistics.median(v) for case, v in seconds.items()}
            memory = results[-1]
            print(f"\n### {members} members (median of {args.rounds} rounds, one thread)\n")
            print("| case | ms per call | separate / this |")
            print("| --- | ---: | ---: |")
            for case, value in med.items():
                base = med["act separate"] if case.startswith("act") else med["learn separate"]
                ratio = "-" if "vmap" in case else f"{base / value:.2f}x"
                print(f"| {case} | {value * 1e3:.2f} | {ratio} |")
            print(
                f"\nweights of one member: {memory['bytes_per_member']:,} bytes (its Adam "
                f"moments twice that again); one snapshot in the bank: "
                f"{memory['bytes_per_snapshot']:,} bytes"
            )


if __name__ == "__main__":
    main()
