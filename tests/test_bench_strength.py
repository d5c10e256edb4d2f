"""`bench_strength.py --table FILE --paired A B`: two configs' per-seed score differences
in a results file, and their mean with a Student t interval (docs/benchmarks.md)."""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

import pytest
from conftest import load_bench

BENCH = Path(__file__).parent / "benchmarks" / "bench_strength.py"
T_975_DF2 = 4.303  # Student t, 97.5% quantile, 2 degrees of freedom (three seeds)


def bench_main(argv: list[str]) -> None:
    module = load_bench("bench_strength")
    old = sys.argv
    sys.argv = [str(BENCH), *argv]
    try:
        module.main()
    finally:
        sys.argv = old


def result_line(config: str, seed: int, scores: dict[str, float]) -> str:
    """A raw line as the benchmark writes it, 400 games a rung, no draws."""
    ladder = {}
    for rung, score in scores.items():
        wins = round(score * 400)
        ladder[rung] = {"games": 400, "wins": wins, "draws": 0, "losses": 400 - wins}
        ladder[rung]["score"] = score
    return json.dumps({"config": config, "seed": seed, "round": 1, "ladder": ladder})


@pytest.fixture
def results(tmp_path: Path) -> Path:
    a = {1: (0.990, 0.600), 2: (0.980, 0.500), 3: (0.995, 0.550), 4: (0.5, 0.5)}
    b = {1: (0.970, 0.500), 2: (0.980, 0.450), 3: (0.975, 0.500)}
    lines = [result_line("a", s, {"random": r, "lookahead": la}) for s, (r, la) in a.items()]
    lines += [result_line("b", s, {"random": r, "lookahead": la}) for s, (r, la) in b.items()]
    lines.append(result_line("c", 1, {"random": 0.9, "lookahead": 0.1}))
    path = tmp_path / "strength.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_paired_prints_mean_difference_and_t_interval(results: Path, capsys) -> None:
    bench_main(["--table", str(results), "--paired", "a", "b"])
    out = capsys.readouterr().out
    assert "mean over the 3 seeds both ran" in out  # seed 4 is a's alone
    assert "| 1 | +0.020 | +0.100 |" in out
    mean_row = next(line for line in out.splitlines() if line.startswith("| mean, 3 seeds |"))
    cells = [cell.strip() for cell in mean_row.strip("|").split("|")[1:]]
    for cell, diffs in zip(cells, ([0.02, 0.0, 0.02], [0.1, 0.05, 0.05]), strict=True):
        mean = statistics.mean(diffs)
        half = T_975_DF2 * statistics.stdev(diffs) / 3**0.5
        printed = [float(x) for x in re.findall(r"[+-]\d\.\d{3}", cell)]  # "+m [+lo, +hi]"
        assert printed == pytest.approx([mean, mean - half, mean + half], abs=6e-4)


def test_paired_unknown_config_names_the_configs(results: Path) -> None:
    with pytest.raises(SystemExit, match=r"no config 'nope' in the file; it has a, b, c"):
        bench_main(["--table", str(results), "--paired", "a", "nope"])


def test_paired_joins_comma_separated_configs_into_one_arm(results: Path, capsys) -> None:
    """One arm run under two names on different seeds pairs as one; a seed with a line of
    each name is refused, as two lines of one name are."""
    lines = results.read_text().replace('"config": "b", "seed": 3', '"config": "b2", "seed": 3')
    results.write_text(lines)
    bench_main(["--table", str(results), "--paired", "a", "b,b2"])
    out = capsys.readouterr().out
    assert "mean over the 3 seeds both ran" in out
    assert "| 3 | +0.020 | +0.050 |" in out
    bench_main(["--table", str(results), "--paired", "a", "b"])
    assert "mean over the 2 seeds both ran" in capsys.readouterr().out
    results.write_text(lines + result_line("b2", 1, {"random": 0.9, "lookahead": 0.1}) + "\n")
    with pytest.raises(SystemExit, match=r"b,b2 has 2 lines for seed 1"):
        bench_main(["--table", str(results), "--paired", "a", "b,b2"])
