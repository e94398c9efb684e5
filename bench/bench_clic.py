"""Benchmark: the Python side of one click on a button of the master workbook, cold and
warm, on xlwings' remote engine.

*Cold* is a click served by a new interpreter (``USE UDF SERVER`` = False, or the first
click after Excel opened): each run is a fresh ``python`` process that imports xlwings and
`piano_abitativo.excel`, builds the calling book from the request JSON and calls the
button once (with its own first-use imports). *Warm* is a later click served by the same
interpreter (``USE UDF SERVER`` = True, the default of the master): the same process calls
the button again, and the benchmark counts the modules imported during those calls (the
goal is none).

The workbook is the Ambito Cremasco's master (49 enti) with the 26 returns of 2025
imported, as Excel's RunRemotePython would send it (`tests.xlwings_payload.payload_of`).

The remote engine is part of xlwings PRO: the benchmark sets its noncommercial licence key
in its own child processes only; the product never does (on Windows the buttons use
classic xlwings, whose click has the same Python side).

Run: ``python bench/bench_clic.py [--repeat 5] [--pulsante consolida]``. Another benchmark
can call `measure_click` and get the numbers as a dict.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
#: the buttons that read the archive and write back into the open workbook only
PULSANTI = ("consolida", "valida")
MASTER_NAME = "Consolidato_piano_abitativo_2025.xlsm"

#: one cold process: argv[1] the request JSON file, argv[2] the button, argv[3] how many
#: warm calls after the first; prints one JSON line of milliseconds and module counts
_CHILD = """
import time
t0 = time.perf_counter()
import json, sys
base = len(sys.modules)
import xlwings as xw
t1 = time.perf_counter()
import piano_abitativo.excel as x
t2 = time.perf_counter()
body = open(sys.argv[1], encoding="utf-8").read()
entry = getattr(x, sys.argv[2])

def click():
    start = time.perf_counter()
    book = xw.Book(json=json.loads(body))
    book.set_mock_caller()
    try:
        entry()
    finally:
        delattr(xw.Book, "_mock_caller")
    response = json.dumps(book.json(), default=str)
    alerts = [a["args"][0] for a in json.loads(response)["actions"] if a["func"] == "alert"]
    return (time.perf_counter() - start) * 1000, alerts

after_imports = len(sys.modules)
first, alerts = click()
after_first = len(sys.modules)
warm = [click()[0] for _ in range(int(sys.argv[3]))]
print(json.dumps({
    "import_xlwings_ms": (t1 - t0) * 1000,
    "import_piano_abitativo_ms": (t2 - t1) * 1000,
    "prima_chiamata_ms": first,
    "chiamate_calde_ms": warm,
    "moduli_import": after_imports - base,
    "moduli_prima_chiamata": after_first - after_imports,
    "moduli_chiamate_calde": len(sys.modules) - after_first,
    "pandas_importato": "pandas" in sys.modules,
    "avviso": alerts[-1] if alerts else "",
}))
"""


def build(folder: Path) -> tuple[Path, Path]:
    """The Cremasco 2025 raccolta with its 26 returns imported, and the file of the
    request JSON of its master workbook."""
    sys.path.insert(0, str(ROOT))  # the payload builder is shared with the tests
    from tests.xlwings_payload import payload_of

    from piano_abitativo.app import commands as actions
    from piano_abitativo.master.sheets import build_master
    from piano_abitativo.simulation import demo

    r = actions.crea(folder / "raccolta", anno=2025, scadenza=dt.date(2024, 12, 18))
    actions.importa(r, demo.write_returns(r, folder / "ritorni"), esiti=False)
    body = folder / "richiesta.json"
    data = build_master(actions.consolidation(r))
    body.write_text(json.dumps(payload_of(data, MASTER_NAME)), encoding="utf-8")
    return r.path, body


def _env(raccolta: Path, home: Path) -> dict[str, str]:
    """The children's environment: compiled files allowed, in `home` (an installed package
    has its own; with PYTHONDONTWRITEBYTECODE every click would compile the sources)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PIANO_ABITATIVO_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    env.update(
        PYTHONPYCACHEPREFIX=str(home / "pycache"),
        PYTHONPATH=str(SRC),
        PIANO_ABITATIVO_RACCOLTA=str(raccolta),
        XLWINGS_LICENSE_KEY="noncommercial",
        HOME=str(home),
    )
    return env


def _cold(body: Path, pulsante: str, warm: int, env: dict[str, str]) -> dict[str, object]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(body), pulsante, str(warm)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    out: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    out["processo_ms"] = (time.perf_counter() - start) * 1000
    return out


def _bare_python_ms(env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True, timeout=60)
    return (time.perf_counter() - start) * 1000


def _num(x: object) -> float:
    return float(x) if isinstance(x, int | float) else 0.0


def measure_click(
    *, repeat: int = 5, pulsante: str = "consolida", folder: Path | None = None
) -> dict[str, float]:
    """Milliseconds of one click of `pulsante`, median of `repeat` cold processes:

    - ``freddo_ms``: imports (xlwings, piano_abitativo.excel) + the first call, inside
      the process; ``processo_ms`` the same with the interpreter's start and exit;
    - ``import_ms``: the imports before the call, of which ``import_xlwings_ms``;
    - ``prima_chiamata_ms``: the first call (with the button's own first-use imports);
    - ``caldo_ms``: a later call in the same interpreter (the UDF server), median of
      `repeat` (at least 3) calls after the first in one more process;
    - ``quota_import``: the share of a cold click that a warm one saves,
      (freddo − caldo) / freddo;
    - ``python_vuoto_ms``: ``python -c pass``, for scale;
    - ``moduli_caldo``: modules imported by the warm calls (the goal is 0);
      ``pandas``: 1 when ``import xlwings`` imported pandas.

    The raccolta and the request are built in `folder` (a temporary folder, removed,
    when None)."""
    if pulsante not in PULSANTI:
        raise ValueError(f"pulsante sconosciuto: {pulsante} (possibili: {', '.join(PULSANTI)})")
    own = folder is None
    root = Path(tempfile.mkdtemp(prefix="bench-clic-")) if folder is None else folder
    try:
        raccolta, body = build(root)
        env = _env(raccolta, root)
        _cold(body, pulsante, 0, env)  # compiled files written, disk cache warm
        runs = [_cold(body, pulsante, 0, env) for _ in range(repeat)]
        served = _cold(body, pulsante, max(repeat, 3), env)  # one interpreter, many clicks
        bare = statistics.median(_bare_python_ms(env) for _ in range(repeat))
    finally:
        if own:
            shutil.rmtree(root, ignore_errors=True)

    def med(key: str) -> float:
        return statistics.median(_num(r[key]) for r in runs)

    imports = statistics.median(
        _num(r["import_xlwings_ms"]) + _num(r["import_piano_abitativo_ms"]) for r in runs
    )
    cold = statistics.median(
        _num(r["import_xlwings_ms"])
        + _num(r["import_piano_abitativo_ms"])
        + _num(r["prima_chiamata_ms"])
        for r in runs
    )
    calls = served["chiamate_calde_ms"]
    warm = statistics.median(_num(x) for x in calls) if isinstance(calls, list) else 0.0
    return {
        "freddo_ms": cold,
        "processo_ms": med("processo_ms"),
        "import_ms": imports,
        "import_xlwings_ms": med("import_xlwings_ms"),
        "import_piano_abitativo_ms": med("import_piano_abitativo_ms"),
        "prima_chiamata_ms": med("prima_chiamata_ms"),
        "caldo_ms": warm,
        "quota_import": (cold - warm) / cold if cold else 0.0,
        "python_vuoto_ms": bare,
        "moduli_import": med("moduli_import"),
        "moduli_prima_chiamata": med("moduli_prima_chiamata"),
        "moduli_caldo": _num(served["moduli_chiamate_calde"]),
        "pandas": 1.0 if any(r["pandas_importato"] for r in runs) else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="processi freddi (mediana)")
    ap.add_argument("--pulsante", choices=PULSANTI, default="consolida")
    args = ap.parse_args(argv)
    import xlwings

    print(
        f"piano-abitativo bench_clic: pulsante {args.pulsante}, Ambito Cremasco 2025 "
        f"(49 enti, 26 risposte); Python {platform.python_version()}, xlwings "
        f"{xlwings.__version__} (motore remote), {os.cpu_count()} CPU; {args.repeat} "
        "processi (mediana)"
    )
    m = measure_click(repeat=args.repeat, pulsante=args.pulsante)
    rows = [
        ("clic a freddo: import + prima chiamata", m["freddo_ms"]),
        ("  import di xlwings", m["import_xlwings_ms"]),
        ("  import di piano_abitativo.excel", m["import_piano_abitativo_ms"]),
        ("  prima chiamata (con i suoi import)", m["prima_chiamata_ms"]),
        ("processo intero (avvio e uscita compresi)", m["processo_ms"]),
        ("python -c pass", m["python_vuoto_ms"]),
        ("clic a caldo (server UDF)", m["caldo_ms"]),
    ]
    for label, ms in rows:
        print(f"{label:<44}{ms:>9.0f} ms")
    print(
        f"quota risparmiata da un clic a caldo: {m['quota_import']:.0%}; moduli importati: "
        f"{m['moduli_import']:.0f} prima della chiamata, {m['moduli_prima_chiamata']:.0f} "
        f"nella prima, {m['moduli_caldo']:.0f} nelle successive"
    )
    print(f"pandas importato da xlwings: {'sì' if m['pandas'] else 'no'}")
    verdict = "PASS" if m["moduli_caldo"] == 0 else "FAIL"
    print(f"clic dopo il primo senza import: {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
