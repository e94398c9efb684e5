"""The issue-15 benchmark runs end to end on a tiny raccolta and prints every row of its
table with a verdict (the times themselves are not checked: they depend on the machine)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: the start of each row of the table, in the order of issue 15
ROWS = (
    "valida ONE.xlsx vs python-calamine",
    "--help",
    "valida --json, 4 risposte",
    "lo stesso vs pandas.read_excel",
    "clic Consolida a freddo vs a caldo",
    "modelli, 4 enti",
    "memoria di picco di valida",
    "memoria di picco di consolida",
)


def test_bench_piano_prints_every_row_with_a_verdict(tmp_path: Path) -> None:
    """`bench_piano.py --n 4 --runs 1` prints the eight rows, each ending PASS or FAIL."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_piano.py"),
            "--n",
            "4",
            "--runs",
            "1",
            "--batch-runs",
            "1",
            "--sample",
            "1",
            "--out",
            str(tmp_path / "lavoro"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    table = done.stdout.split("\nmisura", 1)[1].splitlines()[1:]
    assert [next(r for r in ROWS if line.startswith(r)) for line in table] == list(ROWS)
    assert all(line.rstrip().endswith((" PASS", " FAIL")) for line in table)
