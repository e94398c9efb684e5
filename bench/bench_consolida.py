"""Benchmark: importing N returns into the archive and consolidating them into the master.

Builds a synthetic ambito of N comuni plus one ALER with one filled return each, then
measures in the same run:

* `importa` of the N files (archive copy with fsync, validation, one ledger line each);
* `consolida`: reading the ledger, grouping, and writing the master workbook;
* the baseline a capofila would otherwise script: `pandas.read_excel` of every returned
  file, `pandas.concat`, `DataFrame.to_excel` (openpyxl) — values only, no formulas;
* peak memory (tracemalloc) of `consolida` for N/10, N/3 and N returns, each in a fresh
  process with the code already imported: what grows with N is data.

Run: ``python bench/bench_consolida.py [--n 1500] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import platform
import shutil
import sys
import tempfile
import time
import tracemalloc
from importlib.metadata import version
from pathlib import Path

import pandas as pd

from piano_abitativo.app import commands as actions
from piano_abitativo.app.commands import crea
from piano_abitativo.consolidation.context import receipts
from piano_abitativo.core import raccolta as rc
from piano_abitativo.core.registry import Ente
from piano_abitativo.core.schema import SHEET_SCHEDA
from piano_abitativo.template.fill import fill_template
from piano_abitativo.template.workbook import TemplateFactory, context_for

ANNO = 2026
TARGET_S = 5.0


def registry_csv(n: int) -> str:
    """The registry of a synthetic ambito of `n` enti: one ALER and n-1 comuni."""
    lines = ["codice,tipo,denominazione,provincia,codice_catastale,capofila"]
    lines.append("ALER-BENCH,ALER,ALER Bench,,,")
    for i in range(1, n):
        lines.append(f"{i:06d},COMUNE,Comune Prova {i:05d},XX,X{i:03d},{'SI' if i == 1 else ''}")
    return "\n".join(lines) + "\n"


def build(folder: Path, n: int) -> rc.Raccolta:
    """A raccolta of n enti and one filled return each, in folder/arrivi."""
    csv_path = folder / "enti.csv"
    folder.mkdir(parents=True, exist_ok=True)
    csv_path.write_text(registry_csv(n), encoding="utf-8")
    r = crea(folder / "raccolta", anno=ANNO, registry_csv=csv_path, ambito="Bench")
    factory = TemplateFactory(context_for(r))
    arrivi = folder / "arrivi"
    arrivi.mkdir()
    for i, ente in enumerate(r.registry):
        values = _values(i, ente)
        (arrivi / f"{ente.codice}.xlsx").write_bytes(fill_template(factory.render(ente), values))
    return r


def _values(i: int, ente: Ente) -> dict[str, object]:
    sap = 5 + i % 40
    out: dict[str, object] = {
        "a_sap": sap,
        "a_sas": i % 3,
        "b_carenza_manutentiva": i % 2,
        "c_nuova_edificazione": i % 5 // 4,
        "d_turnover": i % 4 // 3,
        "e_conferite_privati": 0,
        "j_sat": i % 7 // 6,
        "k_assegnate_anno_precedente": i % 3,
        "referente_nome": "Ufficio Casa",
        "referente_email": f"casa{i}@prova.example",
    }
    if ente.is_comune:
        out |= {"h_categoria_aggiuntiva": "NO", "i_forze_polizia": 10 if i % 9 == 0 else 0}
    return out


def baseline(paths: list[Path], out: Path) -> float:
    """pandas: read every file, concatenate, write one sheet (no formulas, no checks)."""
    start = time.perf_counter()
    frames = [
        pd.read_excel(
            p, sheet_name=SHEET_SCHEDA, header=None, usecols="A:D", engine="openpyxl"
        ).assign(file=p.name)
        for p in paths
    ]
    pd.concat(frames).to_excel(out, index=False)
    return time.perf_counter() - start


def _peak_child(folder: str, queue: multiprocessing.Queue[int]) -> None:
    import piano_abitativo.master.xlsm  # noqa: F401 - code loaded before measuring: not data

    r = rc.load(Path(folder))
    gc.collect()
    tracemalloc.start()
    actions.consolida(r)
    queue.put(tracemalloc.get_traced_memory()[1])


def peak_memory(folder: Path) -> int:
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[int] = ctx.Queue()
    proc = ctx.Process(target=_peak_child, args=(str(folder), queue))
    proc.start()
    peak = queue.get(timeout=600)
    proc.join()
    return peak


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--no-memory", action="store_true")
    args = ap.parse_args(argv)
    n = args.n
    root = args.out or Path(tempfile.mkdtemp(prefix="bench-consolida-"))
    if root.exists() and args.out:
        shutil.rmtree(root)
    print(
        f"piano-abitativo bench_consolida: N = {n} enti, Python {platform.python_version()}"
        f", XlsxWriter {version('XlsxWriter')}, pandas {version('pandas')}, "
        f"{os.cpu_count()} CPU"
    )
    t = time.perf_counter()
    r = build(root / "big", n)
    print(f"preparazione di {n} risposte: {time.perf_counter() - t:.1f} s")
    paths = sorted((root / "big" / "arrivi").glob("*.xlsx"))

    t = time.perf_counter()
    res = actions.importa(r, paths)
    t_import = time.perf_counter() - t
    assert len(res.imported) == n, "every return must be imported"

    t = time.perf_counter()
    out = actions.consolida(r)
    t_cons = time.perf_counter() - t
    assert sum(1 for s in out.consolidation.enti if s.used) == n

    blobs = [r.path / rc_.blob for rc_ in receipts(r)]
    t_base = baseline(blobs, root / "baseline.xlsx")

    print(f"{'misura':<44}{'secondi':>10}{'ms/ente':>10}")
    for label, secs in (
        ("importa (archivio + validazione + registro)", t_import),
        ("consolida (registro → cartella riepilogativa)", t_cons),
        ("baseline pandas read_excel + to_excel", t_base),
    ):
        print(f"{label:<44}{secs:>10.2f}{secs / n * 1000:>10.2f}")
    verdict = "PASS" if t_cons <= TARGET_S else "FAIL"
    print(f"consolida: {t_cons:.2f} s per {n} risposte (obiettivo ≤ {TARGET_S:.0f} s) {verdict}")
    print(f"rapporto baseline / consolida: {t_base / t_cons:.1f}×")
    print(f"cartella riepilogativa: {out.master.stat().st_size // 1024} KB")
    if not args.no_memory:
        peaks: list[tuple[int, int]] = []
        for k in (max(10, n // 10), max(20, n // 3)):
            small = build(root / f"n{k}", k)
            actions.importa(small, sorted((root / f"n{k}" / "arrivi").glob("*.xlsx")))
            peaks.append((k, peak_memory(small.path)))
        peaks.append((n, peak_memory(r.path)))
        (n0, p0), (n1, p1) = peaks[0], peaks[-1]
        per = (p1 - p0) / (n1 - n0)
        print(
            "memoria di picco di consolida: "
            + ", ".join(f"{k} enti {p / 1e6:.2f} MB" for k, p in peaks)
        )
        print(
            f"  rapporto {n1} / {n0} enti: {p1 / p0:.2f}× per {n1 / n0:.0f}× gli enti; "
            f"per ente in più {per / 1024:.2f} KB (valori e stato di ogni ente; i fogli "
            "sono scritti riga per riga, nessun file tenuto in memoria)"
        )
    if not args.out:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
