"""Benchmark: generation of the per-ente templates and validation of the returns.

Builds a synthetic ambito of N comuni plus one ALER, then measures in the same run:

* template generation (`write_templates`) for the N+1 enti;
* reading N filled returns with the pandas/openpyxl baseline, with bare python-calamine
  and with our `validate_file`, and the ratios between them;
* peak memory of validation and of template generation for N/10 and N files, to show
  that memory does not grow with N.

Run: ``python bench/bench_modelli_validazione.py [--n 1500] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import math
import multiprocessing
import platform
import pstats
import random
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd
import python_calamine as pc

from piano_abitativo.core.atomic import atomic_write_bytes
from piano_abitativo.core.problems import Report
from piano_abitativo.core.registry import Ente, Registry
from piano_abitativo.template.fill import fill_template
from piano_abitativo.template.workbook import (
    TemplateContext,
    TemplateFactory,
    template_filename,
    write_templates,
)
from piano_abitativo.validation.validate import ValidationContext, validate_file

try:
    import resource
except ImportError:  # Windows: no ru_maxrss, tracemalloc only
    resource = None  # type: ignore[assignment]

ANNO = 2026
RACCOLTA_ID = "bench"
AMBITO = "Bench"
ALER_CODICE = "ALER-BENCH"

#: targets
TEMPLATE_S_PER_1500 = 5.0  # template generation: at most 5 s for 1500 enti (issue 15)
MIN_BASELINE_RATIO = 10.0  # pandas/openpyxl at least 10x slower than our validation
MAX_CALAMINE_RATIO = 3.0  # our validation at most 3x a bare python-calamine read
#: memory is "flat in N" when each extra file adds less than this to the peak: a retained
#: workbook, report or file content would add at least ~16 KB (the size of one file)
FLAT_BYTES_PER_FILE = 1024


# --- the synthetic ambito and its returns -------------------------------------------


def make_registry(n: int) -> Registry:
    """N comuni ("000001", "Comune Prova 00001", ...) and one ALER."""
    enti = [
        Ente(
            codice=f"0{i:05d}", tipo="COMUNE", denominazione=f"Comune Prova {i:05d}", provincia="XX"
        )
        for i in range(1, n + 1)
    ]
    enti.append(Ente(codice=ALER_CODICE, tipo="ALER", denominazione="ALER Bench Prova"))
    return Registry(enti, source="registro sintetico del benchmark")


def template_context() -> TemplateContext:
    return TemplateContext(anno=ANNO, raccolta_id=RACCOLTA_ID, ambito=AMBITO)


def validation_context(registry: Registry) -> ValidationContext:
    return ValidationContext(anno=ANNO, raccolta_id=RACCOLTA_ID, registry=registry)


def _clean_values(ente: Ente, rng: random.Random) -> dict[str, Any]:
    """A plausible, correct return."""
    sap = rng.randint(0, 400)
    v: dict[str, Any] = {
        "a_sap": sap,
        "a_sas": rng.choice((0, 0, rng.randint(1, 80))),
        "b_carenza_manutentiva": rng.randint(0, sap // 20),
        "c_nuova_edificazione": rng.choice((0, 0, 0, rng.randint(1, 12))),
        "d_turnover": rng.randint(0, sap // 12),
        "e_conferite_privati": rng.choice((0, 0, 0, 0, 1, 2)),
        "j_sat": rng.randint(0, math.ceil(sap / 10)),
        "k_assegnate_anno_precedente": rng.randint(0, sap // 8),
        "referente_nome": f"Referente {ente.codice}",
        "referente_email": f"casa@{ente.codice.lower()}.example",
        "referente_telefono": f"0373 {rng.randint(100000, 999999)}",
    }
    if ente.is_comune:
        v["h_categoria_aggiuntiva"] = "SI" if rng.random() < 0.2 else "NO"
        if v["h_categoria_aggiuntiva"] == "SI":
            v["h_motivazione"] = "Nuclei monogenitoriali con minori in condizione di fragilità"
        v["i_forze_polizia"] = rng.choice((0, 0, 5, 10))
        if rng.random() < 0.15:
            v["g_soglia_indigenti"] = rng.choice((25, 30, 40))
    if rng.random() < 0.3:
        v["note"] = "Dati aggiornati al 30 novembre. " * rng.randint(1, 4)
    return v


def _as_text(v: dict[str, Any], ente: Ente, rng: random.Random) -> None:
    """Numbers typed as text. Only in fields outside the totals a) and f): `fill_template`
    computes the cached totals from numeric values only, so text in a summed field would
    give a spurious R1/R2 that Excel (whose "+" converts "5" to 5) would not give."""
    choices = ["j_sat", "k_assegnate_anno_precedente"]
    if ente.is_comune:
        choices.append("i_forze_polizia")
    for fid in rng.sample(choices, rng.randint(1, len(choices))):
        x = v[fid]
        v[fid] = rng.choice((str(x), f" {x} ", f"{x}%" if fid.startswith("i_") else str(x)))


def _mistakes(v: dict[str, Any], ente: Ente, rng: random.Random) -> None:
    """One or two rule violations (errori and avvisi)."""
    sap = int(v["a_sap"])

    def r0(v: dict[str, Any]) -> None:
        v["c_nuova_edificazione"] = -2

    def r3(v: dict[str, Any]) -> None:
        v["g_soglia_indigenti"] = 15

    def r4(v: dict[str, Any]) -> None:
        v["i_forze_polizia"] = 15

    def r5(v: dict[str, Any]) -> None:
        v["j_sat"] = math.ceil(sap / 10) + rng.randint(1, 5)

    def r6(v: dict[str, Any]) -> None:
        v["h_categoria_aggiuntiva"] = "SI"
        v.pop("h_motivazione", None)

    def r7(v: dict[str, Any]) -> None:
        v["b_carenza_manutentiva"] = sap + rng.randint(1, 5)

    def v01(v: dict[str, Any]) -> None:
        v.pop("referente_email", None)
        v.pop("referente_telefono", None)

    def v02(v: dict[str, Any]) -> None:
        v["referente_email"] = "casa.comune.example"

    def l03(v: dict[str, Any]) -> None:
        v["i_forze_polizia"] = 0.05

    def l04(v: dict[str, Any]) -> None:
        v.pop("d_turnover")

    def l05(v: dict[str, Any]) -> None:
        v["k_assegnate_anno_precedente"] = "circa 10"

    def l02(v: dict[str, Any]) -> None:
        v["h_categoria_aggiuntiva"] = "S"
        v["h_motivazione"] = "Anziani soli"

    general: list[Callable[[dict[str, Any]], None]] = [r0, r5, r7, v01, v02, l04, l05]
    comuni: list[Callable[[dict[str, Any]], None]] = [r3, r4, r6, l03, l02]
    pool = general + (comuni if ente.is_comune else [])
    for mutate in rng.sample(pool, rng.randint(1, 2)):
        mutate(v)


def make_values(ente: Ente, rng: random.Random) -> dict[str, Any]:
    """A return: 60% clean, 15% with numbers as text, 20% with mistakes, 5% both."""
    v = _clean_values(ente, rng)
    r = rng.random()
    if 0.60 <= r < 0.75 or r >= 0.95:
        _as_text(v, ente, rng)
    if r >= 0.75:
        _mistakes(v, ente, rng)
    return v


def write_returns(registry: Registry, n: int, outdir: Path, seed: int) -> list[Path]:
    """N filled returns: the ALER and the first N-1 comuni."""
    outdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    factory = TemplateFactory(template_context())
    comuni = [e for e in registry if e.is_comune]
    aler = [e for e in registry if not e.is_comune]
    paths: list[Path] = []
    for ente in (aler + comuni)[:n]:
        data = fill_template(factory.render(ente), make_values(ente, rng))
        path = outdir / template_filename(ente, ANNO)
        atomic_write_bytes(path, data)
        paths.append(path)
    return paths


# --- the three readers ---------------------------------------------------------------


def read_pandas(path: Path) -> int:
    """The baseline: every sheet with pandas and openpyxl."""
    sheets = pd.read_excel(path, sheet_name=None, engine="openpyxl")
    return sum(int(df.size) for df in sheets.values())


def read_calamine(path: Path) -> int:
    """A bare python-calamine read of every sheet, no interpretation."""
    wb = pc.CalamineWorkbook.from_path(str(path))
    try:
        return sum(len(wb.get_sheet_by_name(name).to_python()) for name in wb.sheet_names)
    finally:
        wb.close()


@dataclass
class Tally:
    """What is kept of the reports: counts only."""

    files: int = 0
    valid: int = 0
    with_errors: int = 0
    warnings_only: int = 0
    codes: Counter[str] = field(default_factory=Counter)

    def add(self, report: Report) -> None:
        self.files += 1
        errors = report.errors
        if errors:
            self.with_errors += 1
        else:
            self.valid += 1
            if report.problems:
                self.warnings_only += 1
        self.codes.update(p.code for p in report.problems)


def validate_counting(
    paths: Sequence[Path], vctx: ValidationContext, tally: Tally | None = None
) -> Tally:
    tally = tally if tally is not None else Tally()
    for p in paths:
        tally.add(validate_file(p, vctx))
    return tally


def timed(fn: Callable[[Path], object], paths: Sequence[Path]) -> float:
    """Seconds for `fn` over `paths`, after one warm-up call."""
    fn(paths[0])
    gc.collect()
    start = time.perf_counter()
    for p in paths:
        fn(p)
    return time.perf_counter() - start


# --- memory --------------------------------------------------------------------------


def _maxrss_mib() -> float | None:
    if resource is None:
        return None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1048576 if sys.platform == "darwin" else rss / 1024  # bytes vs KiB


@dataclass
class MemoryResult:
    small: int
    large: int
    peak_small: float  # tracemalloc peak, MiB
    peak_large: float
    rss_start: float | None  # ru_maxrss after the warm-up, MiB
    rss_small: float | None  # ru_maxrss after the N/10 run
    rss_large: float | None  # ru_maxrss after the N run


def _measure(run: Callable[[int], None], small: int, large: int) -> MemoryResult:
    """Peaks of run(small) then run(large), in this process, after a warm-up run(1)."""
    run(1)
    gc.collect()
    rss0 = _maxrss_mib()
    tracemalloc.start()
    try:
        run(small)
        peak_small = tracemalloc.get_traced_memory()[1] / 1048576
        rss_small = _maxrss_mib()
        gc.collect()
        tracemalloc.reset_peak()
        run(large)
        peak_large = tracemalloc.get_traced_memory()[1] / 1048576
        rss_large = _maxrss_mib()
    finally:
        tracemalloc.stop()
    return MemoryResult(small, large, peak_small, peak_large, rss0, rss_small, rss_large)


def memory_validation(paths: list[str], n_enti: int, small: int) -> MemoryResult:
    """Run in a fresh process, so that ru_maxrss is not the one of the earlier phases."""
    vctx = validation_context(make_registry(n_enti))
    files = [Path(p) for p in paths]

    def run(k: int) -> None:
        validate_counting(files[:k], vctx)

    return _measure(run, small, len(files))


def memory_templates(workdir: str, n_enti: int, small: int) -> MemoryResult:
    """Run in a fresh process: write_templates for small+1 then for N+1 enti."""
    registry = make_registry(n_enti)
    enti = list(registry)
    comuni, aler = enti[:-1], enti[-1]
    ctx = template_context()
    base = Path(workdir)

    def run(k: int) -> None:
        out = base / f"modelli_{k}"
        try:
            write_templates(Registry([*comuni[:k], aler]), out, ctx)
        finally:
            shutil.rmtree(out, ignore_errors=True)

    return _measure(run, small, n_enti)


def in_child(fn: Callable[..., MemoryResult], *args: Any) -> MemoryResult:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result: MemoryResult = pool.apply(fn, args)
    return result


# --- output --------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_memory(title: str, unit: str, one: str, m: MemoryResult) -> None:
    ratio = m.peak_large / m.peak_small if m.peak_small else math.inf
    slope = (m.peak_large - m.peak_small) * 1048576 / max(m.large - m.small, 1)
    flat = slope <= FLAT_BYTES_PER_FILE
    print(f"  {title}")
    print(
        f"    picco tracemalloc: {m.small:>6} {unit} {m.peak_small:8.2f} MiB   "
        f"{m.large:>6} {unit} {m.peak_large:8.2f} MiB   rapporto {ratio:5.2f}"
    )
    print(
        f"    crescita del picco: {slope:+.0f} byte per {one} in più   "
        f"{'piatto in N' if flat else 'CRESCE con N'} (soglia {FLAT_BYTES_PER_FILE} "
        f"byte; un file trattenuto ne pesa ~16000)   {verdict(flat)}"
    )
    if m.rss_start is None or m.rss_small is None or m.rss_large is None:
        print("    ru_maxrss: non disponibile su questo sistema")
        return
    d_small = m.rss_small - m.rss_start
    d_large = m.rss_large - m.rss_start
    d_ratio = f"{d_large / d_small:.2f}" if d_small >= 1 else "n/d (Δ N/10 < 1 MiB)"
    print(
        f"    ru_maxrss: dopo il riscaldamento {m.rss_start:.1f} MiB; dopo {m.small} {unit} "
        f"{m.rss_small:.1f} MiB (+{d_small:.1f}); dopo {m.large} {unit} {m.rss_large:.1f} "
        f"MiB (+{d_large:.1f}); rapporto dei picchi {m.rss_large / m.rss_small:.2f}, "
        f"rapporto dei Δ {d_ratio}"
    )


def profile_validation(paths: Sequence[Path], vctx: ValidationContext, top: int = 25) -> None:
    validate_file(paths[0], vctx)
    prof = cProfile.Profile()
    prof.enable()
    validate_counting(paths, vctx)
    prof.disable()
    for order in ("tottime", "cumulative"):
        buf = io.StringIO()
        stats = pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(order)
        stats.print_stats(top)
        print(f"\n--- cProfile di validate_file su {len(paths)} file, ordinato per {order} ---")
        print(buf.getvalue().strip())


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--n", type=int, default=1500, help="numero di comuni (default 1500)")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="cartella dove lasciare modelli e risposte (default: temporanea, "
        "cancellata alla fine)",
    )
    ap.add_argument("--seed", type=int, default=2026, help="seme dei valori casuali")
    ap.add_argument(
        "--baseline-sample",
        type=int,
        default=300,
        help="file letti con pandas (tempo per file × N; default 300)",
    )
    ap.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="K",
        help="profila validate_file con cProfile su K file (default: no)",
    )
    ap.add_argument("--no-memory", action="store_true", help="salta le misure di memoria")
    args = ap.parse_args(argv)
    if args.n < 10:
        ap.error("--n deve essere almeno 10")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    n: int = args.n
    workdir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_piano_"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        run_bench(args, n, workdir)
    finally:
        if args.out is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def run_bench(args: argparse.Namespace, n: int, workdir: Path) -> None:
    print(f"Benchmark piano-abitativo: N = {n} comuni + 1 ALER, seme {args.seed}")
    print(
        f"Python {platform.python_version()} su {platform.platform()}; pandas "
        f"{pd.__version__}, openpyxl {version('openpyxl')}, python-calamine "
        f"{version('python-calamine')}, XlsxWriter {version('XlsxWriter')}"
    )
    print(
        f"Cartella di lavoro: {workdir}{'' if args.out else ' (temporanea, cancellata alla fine)'}"
    )
    registry = make_registry(n)
    ctx = template_context()

    # 1. template generation
    write_templates(Registry(registry.enti[:1]), workdir / "riscaldamento", ctx)
    shutil.rmtree(workdir / "riscaldamento")
    gc.collect()
    start = time.perf_counter()
    modelli = write_templates(registry, workdir / "modelli", ctx)
    t_templates = time.perf_counter() - start
    target_templates = TEMPLATE_S_PER_1500 * len(modelli) / 1501

    # 2. the returns
    start = time.perf_counter()
    paths = write_returns(registry, n, workdir / "risposte", args.seed)
    t_fill = time.perf_counter() - start

    # 3. reading and validation, same files
    vctx = validation_context(registry)
    sample = paths[: max(1, min(args.baseline_sample, n))]
    t_calamine = timed(read_calamine, paths)
    tally = Tally()
    validate_file(paths[0], vctx)
    gc.collect()
    start = time.perf_counter()
    validate_counting(paths, vctx, tally)
    t_validation = time.perf_counter() - start
    t_pandas_sample = timed(read_pandas, sample)

    ms = {
        "pandas": t_pandas_sample / len(sample) * 1000,
        "calamine": t_calamine / n * 1000,
        "validation": t_validation / n * 1000,
    }
    pandas_total = ms["pandas"] * n / 1000
    extrapolated = len(sample) < n
    baseline_ratio = ms["pandas"] / ms["validation"]
    calamine_ratio = ms["validation"] / ms["calamine"]

    print()
    print(f"Generazione modelli (write_templates, {len(modelli)} enti)")
    print(
        f"  totale {t_templates:7.2f} s   {t_templates / len(modelli) * 1000:7.2f} ms/ente   "
        f"obiettivo ≤ {target_templates:.1f} s (5 s per 1500)   "
        f"{verdict(t_templates <= target_templates)}"
    )
    print(
        f"Risposte compilate (render + fill_template, non misurate come obiettivo): "
        f"{n} file in {t_fill:.2f} s"
    )
    codes = ", ".join(f"{c} {k}" for c, k in sorted(tally.codes.items()))
    print(
        f"  esito validazione: {tally.valid} valide ({tally.warnings_only} con soli "
        f"avvisi), {tally.with_errors} con errori; problemi: {codes}"
    )

    print()
    print(f"Lettura e validazione delle stesse {n} risposte")
    print(f"  {'':48}{'ms/file':>9}{'totale s':>11}")
    note = (
        f"   stima = {ms['pandas']:.2f} ms/file (misurati {len(sample)} file) × {n}"
        if extrapolated
        else ""
    )
    rows = [
        ("(a) pandas.read_excel, openpyxl, tutti i fogli", ms["pandas"], pandas_total, note),
        ("(b) python-calamine grezzo, tutti i fogli", ms["calamine"], t_calamine, ""),
        ("(c) validate_file (lettura + regole)", ms["validation"], t_validation, ""),
    ]
    for label, per_file, total, extra in rows:
        print(f"  {label:48}{per_file:9.2f}{total:11.2f}{extra}")
    print(
        f"  baseline / validazione  {baseline_ratio:6.1f}×   obiettivo ≥ "
        f"{MIN_BASELINE_RATIO:g}×   {verdict(baseline_ratio >= MIN_BASELINE_RATIO)}"
    )
    print(
        f"  validazione / calamine  {calamine_ratio:6.1f}×   obiettivo ≤ "
        f"{MAX_CALAMINE_RATIO:g}×    {verdict(calamine_ratio <= MAX_CALAMINE_RATIO)}"
    )

    if not args.no_memory:
        small = max(1, n // 10)
        print()
        print(
            "Memoria (processo figlio nuovo per ciascuna misura; N/10 e poi N file nello "
            "stesso processo, senza tenere i report)"
        )
        m_val = in_child(memory_validation, [str(p) for p in paths], n, small)
        print_memory("validate_file", "file", "file", m_val)
        mem_dir = workdir / "memoria"
        try:
            m_tpl = in_child(memory_templates, str(mem_dir), n, small)
        finally:
            shutil.rmtree(mem_dir, ignore_errors=True)
        print_memory(
            f"write_templates (comuni + 1 ALER: {small + 1} e {n + 1} enti)",
            "comuni",
            "ente",
            m_tpl,
        )

    if args.profile:
        profile_validation(paths[: args.profile], vctx)


if __name__ == "__main__":
    sys.exit(main())
