"""What board symmetries cost in training rate: the defaults with symmetries off,
canonical and averaged, and the env's preset, side by side in one run.

Each entry trains the library's defaults (`league.train(ENV, **options)`) for
`--seconds` of wall time in its own process (bench_population.py's `child`),
one after the other, and reports env steps per second of training; the table
gives each as a ratio of the entry without symmetries. Run it alone on the
machine.

    .venv/bin/python tests/benchmarks/bench_symmetries.py --seconds 40
"""

from __future__ import annotations

import argparse

from bench_population import child  # one training run in its own process

ENVS = {"connect_four": "classic/connect_four-v3", "tictactoe": "classic/tictactoe-v3"}
ENTRIES = {
    "off": {"symmetries": False},
    "canonical": {"symmetries": "canonical"},
    "average": {"symmetries": "average"},
    # What the three-line call trains: connect four's board CNN with the mirror averaged,
    # tic-tac-toe's eight views averaged (docs/training.md#env-presets).
    "preset": {"preset": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--envs", default="connect_four,tictactoe")
    parser.add_argument("--entries", default=",".join(ENTRIES), help="first one is the base")
    args = parser.parse_args()
    entries = args.entries.split(",")
    print(f"| env | entry | env steps | env steps/s | ratio to {entries[0]} |")
    print("| --- | --- | ---: | ---: | ---: |")
    for env in args.envs.split(","):
        base = None
        for name in entries:
            row = child(name, args.seconds, ENTRIES[name], env=ENVS[env])
            if row is None:
                continue
            rate = row["env_steps_per_s"]
            base = base or rate
            print(f"| {env} | {name} | {row['env_steps']:,} | {rate:,.0f} | {rate / base:.2f} |")


if __name__ == "__main__":
    main()
