"""Benchmark: every row of issue 15's table, side by side in one run, with PASS/FAIL.

Builds a raccolta of N enti (N-1 comuni and one ALER) and one filled return each (the
values of `bench_modelli_validazione.make_values`: clean ones, numbers as text, mistakes),
then measures, as an installed user runs them (``python -m piano_abitativo``, a new
process each time, compiled files present):

* ``valida ONE.xlsx`` vs a bare ``python -c`` reading every sheet with python-calamine;
* ``--help``;
* ``valida --json`` over the N returns vs a bare calamine read of the same files in one
  process, and vs the naive ``pandas.read_excel(engine="openpyxl", sheet_name=None)`` loop
  (measured on a sample after each round of the two, extrapolated per file);
* a button click cold vs warm (`bench_clic.measure_click`);
* ``modelli`` for the N enti;
* peak memory of ``valida`` and ``consolida`` for N/10 and N, each in a fresh process.

The processes measured write their compiled files into a temporary
``PYTHONPYCACHEPREFIX`` (this machine sets ``PYTHONDONTWRITEBYTECODE``), filled once with
``compileall`` before any timing, as an installed package has them.

Run: ``python bench/bench_piano.py [--n 1500] [--runs 7] [--quick]``.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SRC = ROOT / "src"
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(SRC))  # runs from a checkout without installing

ANNO = 2026
#: goals of issue 15
ONE_RATIO = 5.0  # valida ONE.xlsx at most 5x a bare calamine read
HELP_S = 0.15  # --help
BATCH_RATIO = 1.5  # valida --json over N at most 1.5x a bare calamine read of them
NAIVE_RATIO = 25.0  # at least 25x faster than the naive pandas loop
MODELLI_S_PER_1500 = 5.0  # modelli for 1500 enti
FLAT_BYTES_PER_FILE = 1024  # peak memory growth per extra file

_BARE_ONE = (
    "import sys, python_calamine as pc\n"
    "wb = pc.CalamineWorkbook.from_path(sys.argv[1])\n"
    "[wb.get_sheet_by_name(n).to_python() for n in wb.sheet_names]\n"
    "wb.close()\n"
)
_BARE_MANY = (
    "import sys, pathlib, python_calamine as pc\n"
    "for f in sorted(pathlib.Path(sys.argv[1]).glob('*.xlsx')):\n"
    "    wb = pc.CalamineWorkbook.from_path(str(f))\n"
    "    [wb.get_sheet_by_name(n).to_python() for n in wb.sheet_names]\n"
    "    wb.close()\n"
)


# --- the raccolta and its returns ----------------------------------------------------


def build(folder: Path, n: int, seed: int) -> tuple[Path, list[Path]]:
    """A raccolta of `n` enti in folder/raccolta and one filled return each in
    folder/risposte (outside the raccolta: `valida` is given ``--raccolta``)."""
    import random

    from bench_consolida import registry_csv
    from bench_modelli_validazione import make_values
    from piano_abitativo.app.commands import crea
    from piano_abitativo.core.atomic import atomic_write_bytes
    from piano_abitativo.template.fill import fill_template
    from piano_abitativo.template.workbook import TemplateFactory, context_for

    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "enti.csv"
    csv_path.write_text(registry_csv(n), encoding="utf-8")
    r = crea(folder / "raccolta", anno=ANNO, registry_csv=csv_path, ambito="Bench")
    factory = TemplateFactory(context_for(r))
    out = folder / "risposte"
    out.mkdir()
    rng = random.Random(seed)
    paths = []
    for ente in r.registry:
        data = fill_template(factory.render(ente), make_values(ente, rng))
        path = out / f"{ente.codice}.xlsx"
        atomic_write_bytes(path, data)
        paths.append(path)
    return r.path, sorted(paths)


# --- processes -----------------------------------------------------------------------


def child_env(home: Path) -> dict[str, str]:
    """The measured processes' environment: compiled files allowed, in `home`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PIANO_ABITATIVO_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    env.update(
        PYTHONPYCACHEPREFIX=str(home / "pycache"),
        PYTHONPATH=str(SRC),
        HOME=str(home),
        XDG_CACHE_HOME=str(home / ".cache"),  # the compiled rules' cache, as a user's
    )
    return env


def run_s(argv: Sequence[str], env: dict[str, str]) -> float:
    """Seconds of one whole process (exit code 0 or 1: invalid returns are expected)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *argv], env=env, capture_output=True, timeout=900, check=False
    )
    secs = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(argv)}: exit {done.returncode}\n{done.stderr.decode()}")
    return secs


def interleaved(
    commands: Sequence[Sequence[str]],
    env: dict[str, str],
    runs: int,
    *,
    between: Callable[[], object] | None = None,
) -> list[float]:
    """Median seconds of each command, run `runs` times in turn after one warm-up each;
    `between` (a measure made in this process) is called after each round."""
    for argv in commands:
        run_s(argv, env)
    times: list[list[float]] = [[] for _ in commands]
    for _ in range(runs):
        for i, argv in enumerate(commands):
            times[i].append(run_s(argv, env))
        if between is not None:
            between()
    return [statistics.median(t) for t in times]


def cli(*args: str) -> list[str]:
    return ["-m", "piano_abitativo", *args]


# --- memory --------------------------------------------------------------------------


def _valida_peak(raccolta: str, paths: list[str], warm: list[str]) -> int:
    """tracemalloc peak of validating `paths` (reports counted, not kept), in this fresh
    process, the code loaded and one return of each variant (`warm`: a comune's, the
    ALER's) validated first: each variant's rule program is compiled once, on its first
    return (a few MiB, once per process), and that is not growth in N."""
    from piano_abitativo.app.loading import load_raccolta
    from piano_abitativo.consolidation.checking import validation_context
    from piano_abitativo.validation.validate import validate_file

    ctx = validation_context(load_raccolta(raccolta))
    for w in warm:
        validate_file(w, ctx)
    gc.collect()
    tracemalloc.start()
    errors = 0
    for p in paths:
        errors += len(validate_file(p, ctx).errors)
    return tracemalloc.get_traced_memory()[1]


def _consolida_peak(raccolta: str) -> int:
    import piano_abitativo.master.xlsm  # noqa: F401 - code loaded before measuring
    from piano_abitativo.app import commands as actions
    from piano_abitativo.core import raccolta as rc

    r = rc.load(Path(raccolta))
    gc.collect()
    tracemalloc.start()
    actions.consolida(r)
    return tracemalloc.get_traced_memory()[1]


def in_fresh_process(fn: Callable[..., int], *args: object) -> int:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result: int = pool.apply(fn, args)
    return result


@dataclass
class Row:
    what: str
    measured: str
    goal: str
    ok: bool


def flat_row(what: str, small: int, large: int, p_small: int, p_large: int) -> Row:
    per = (p_large - p_small) / max(large - small, 1)
    return Row(
        what,
        f"{small}: {p_small / 1048576:.2f} MiB, {large}: {p_large / 1048576:.2f} MiB, "
        f"{per:+.0f} B/file",
        f"< {FLAT_BYTES_PER_FILE} B/file",
        per < FLAT_BYTES_PER_FILE,
    )


# --- the table -----------------------------------------------------------------------


def measure(args: argparse.Namespace, root: Path) -> list[Row]:
    n, runs = args.n, args.runs
    batch_runs = max(1, args.batch_runs)
    t = time.perf_counter()
    raccolta, paths = build(root, n, args.seed)
    risposte = paths[0].parent
    print(f"preparazione: raccolta di {n} enti e {n} risposte in {time.perf_counter() - t:.1f} s")
    env = child_env(root)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(SRC)], env=env, check=True, timeout=600
    )
    rows: list[Row] = []

    one = root / "ONE.xlsx"
    shutil.copyfile(paths[min(1, n - 1)], one)
    t_one, t_bare = interleaved([cli("valida", str(one)), ["-c", _BARE_ONE, str(one)]], env, runs)
    ratio = t_one / t_bare
    rows.append(
        Row(
            "valida ONE.xlsx vs python-calamine grezzo (processi interi)",
            f"{t_one:.3f} s vs {t_bare:.3f} s = {ratio:.1f}×",
            f"≤ {ONE_RATIO:g}×",
            ratio <= ONE_RATIO,
        )
    )

    (t_help,) = interleaved([cli("--help")], env, runs)
    rows.append(
        Row("--help (processo intero)", f"{t_help:.3f} s", f"≤ {HELP_S:g} s", t_help <= HELP_S)
    )

    import pandas as pd

    sample = paths[: max(1, min(args.sample, n))]

    def naive_per_file() -> float:
        """Seconds per file of the naive loop on the sample, in this process."""
        start = time.perf_counter()
        for f in sample:
            pd.read_excel(f, engine="openpyxl", sheet_name=None)
        return (time.perf_counter() - start) / len(sample)

    pd.read_excel(sample[0], engine="openpyxl", sheet_name=None)
    # the three in turn, so that each ratio compares times taken at the same moments
    naive_runs: list[float] = []
    t_batch, t_bare_many = interleaved(
        [
            cli("valida", "--json", "--raccolta", str(raccolta), str(risposte)),
            ["-c", _BARE_MANY, str(risposte)],
        ],
        env,
        batch_runs,
        between=lambda: naive_runs.append(naive_per_file()),
    )
    ratio = t_batch / t_bare_many
    rows.append(
        Row(
            f"valida --json, {n} risposte, vs calamine grezzo in un processo",
            f"{t_batch:.2f} s vs {t_bare_many:.2f} s = {ratio:.2f}×",
            f"≤ {BATCH_RATIO:g}×",
            ratio <= BATCH_RATIO,
        )
    )

    per_file = statistics.median(naive_runs)
    naive = per_file * n
    ratio = naive / t_batch
    rows.append(
        Row(
            f"lo stesso vs pandas.read_excel(openpyxl) per file "
            f"({'stima: ' if len(sample) < n else ''}{per_file * 1000:.1f} ms/file "
            f"su {len(sample)} file × {n})",
            f"{naive:.1f} s vs {t_batch:.2f} s = {ratio:.1f}× più veloce",
            f"≥ {NAIVE_RATIO:g}×",
            ratio >= NAIVE_RATIO,
        )
    )

    if args.no_click:
        rows.append(Row("clic a freddo vs a caldo", "non misurato (--no-click)", "0 moduli", False))
    else:
        from bench_clic import measure_click

        m = measure_click(repeat=max(1, min(runs, 5)), folder=root / "clic")
        rows.append(
            Row(
                "clic Consolida a freddo vs a caldo (server UDF)",
                f"{m['freddo_ms']:.0f} ms vs {m['caldo_ms']:.0f} ms, "
                f"{m['moduli_caldo']:.0f} moduli importati a caldo",
                "a caldo 0 moduli",
                m["moduli_caldo"] == 0,
            )
        )

    t_modelli = statistics.median(
        run_s(cli("modelli", str(raccolta)), env) for _ in range(batch_runs)
    )
    goal = MODELLI_S_PER_1500 * n / 1500
    rows.append(
        Row(
            f"modelli, {n} enti (processo intero)",
            f"{t_modelli:.2f} s",
            f"≤ {goal:.2f} s" + ("" if n == 1500 else " (5 s × N/1500)"),
            t_modelli <= goal,
        )
    )

    if args.no_memory:
        return rows
    small = max(2, n // 10)
    names = [str(p) for p in paths]
    warm = [names[0], *(x for x in names if Path(x).stem.startswith("ALER"))][:2]
    rows.append(
        flat_row(
            "memoria di picco di valida (tracemalloc, processo nuovo)",
            small,
            n,
            in_fresh_process(_valida_peak, str(raccolta), names[:small], warm),
            in_fresh_process(_valida_peak, str(raccolta), names, warm),
        )
    )
    from piano_abitativo.app import commands as actions

    small_r, small_paths = build(root / "piccola", small, args.seed)
    t = time.perf_counter()
    actions.importa(small_r, small_paths, esiti=False)
    actions.importa(raccolta, paths, esiti=False)
    print(f"importazione di {small} + {n} risposte per consolida: {time.perf_counter() - t:.1f} s")
    rows.append(
        flat_row(
            "memoria di picco di consolida (tracemalloc, processo nuovo)",
            small,
            n,
            in_fresh_process(_consolida_peak, str(small_r)),
            in_fresh_process(_consolida_peak, str(raccolta)),
        )
    )
    return rows


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--n", type=int, default=1500, help="enti e risposte (default 1500)")
    ap.add_argument("--runs", type=int, default=7, help="processi per i comandi brevi (mediana)")
    ap.add_argument(
        "--batch-runs", type=int, default=3, help="processi per i comandi su N file (mediana)"
    )
    ap.add_argument("--sample", type=int, default=100, help="file letti con pandas (stima)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--quick", action="store_true", help="prova veloce: N = 30, 3 processi")
    ap.add_argument("--no-click", action="store_true", help="salta il clic (xlwings)")
    ap.add_argument("--no-memory", action="store_true", help="salta le misure di memoria")
    ap.add_argument("--out", type=Path, help="cartella di lavoro da conservare")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.runs, args.batch_runs, args.sample = min(args.n, 30), 3, 1, 5
    if args.n < 2:
        ap.error("--n deve essere almeno 2")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(
        f"piano-abitativo bench_piano (issue 15): N = {args.n}, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPU; mediana di {args.runs} processi "
        f"(comandi brevi) e {args.batch_runs} (su N file), alternati; file compilati in un "
        "PYTHONPYCACHEPREFIX temporaneo (qui PYTHONDONTWRITEBYTECODE è impostata), come in "
        "un'installazione"
    )
    root = args.out or Path(tempfile.mkdtemp(prefix="bench-piano-"))
    if args.out and root.exists():
        shutil.rmtree(root)
    try:
        rows = measure(args, root)
    finally:
        if not args.out:
            shutil.rmtree(root, ignore_errors=True)
    width = max(len(r.what) for r in rows)
    mw = max(len(r.measured) for r in rows)
    gw = max(len(r.goal) for r in rows)
    print()
    print(f"{'misura':<{width}}  {'misurato':<{mw}}  {'obiettivo':<{gw}}  esito")
    for r in rows:
        print(
            f"{r.what:<{width}}  {r.measured:<{mw}}  {r.goal:<{gw}}  {'PASS' if r.ok else 'FAIL'}"
        )
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
