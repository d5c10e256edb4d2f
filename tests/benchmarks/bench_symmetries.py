"""What board symmetries cost in training rate: the defaults with symmetries off,
canonical and averaged, side by side in one run.

Each entry trains the library's defaults (`league.train(ENV, **options)`) for
`--seconds` of wall time in its own process, one after the other, and reports
env steps per second of training; the table gives each as a ratio of the
entry without symmetries. Run it alone on the machine.

    .venv/bin/python tests/benchmarks/bench_symmetries.py --seconds 40
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ENVS = {"connect_four": "classic/connect_four-v3", "tictactoe": "classic/tictactoe-v3"}
ENTRIES = {"off": False, "canonical": "canonical", "average": "average"}


def child(env: str, symmetries: bool | str, seconds: float) -> dict:
    import league

    with tempfile.TemporaryDirectory() as tmp:
        league.train(
            ENVS[env],
            max_seconds=seconds,
            symmetries=symmetries,
            run_dir=f"{tmp}/run",
            progress=False,
            tensorboard=False,
            plots=False,
        )
        trainer = json.loads(Path(tmp, "run", "trainer.json").read_text())
    return {"env_steps": trainer["env_steps"], "seconds": trainer["elapsed"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--envs", default="connect_four,tictactoe")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(**json.loads(args.child))))
        return
    print("| env | symmetries | env steps | env steps/s | ratio to off |")
    print("| --- | --- | ---: | ---: | ---: |")
    for env in args.envs.split(","):
        base = None
        for name, symmetries in ENTRIES.items():
            spec = json.dumps({"env": env, "symmetries": symmetries, "seconds": args.seconds})
            out = subprocess.run(
                [sys.executable, __file__, "--child", spec],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            row = json.loads(out.strip().splitlines()[-1])
            rate = row["env_steps"] / row["seconds"]
            base = base or rate
            print(f"| {env} | {name} | {row['env_steps']:,} | {rate:,.0f} | {rate / base:.2f} |")


if __name__ == "__main__":
    main()
