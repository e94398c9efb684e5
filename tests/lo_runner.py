"""Drive LibreOffice Calc from the test-suite.

The project's interpreter cannot import ``uno`` reliably, so the UNO work runs in
``tests/lo/driver.py`` under the system interpreter (``/usr/bin/python3``, which
has Debian's python3-uno): one headless soffice per batch of jobs.

* :func:`run_batch` — open workbooks, set cells (by defined name or
  ``Sheet.A1``), insert rows/columns, recalculate, read values back, save as
  xlsx/ods/xls (optionally encrypted).  The job format is documented at the top of
  ``tests/lo/driver.py``.
* :func:`recalculate` — plain ``soffice --convert-to xlsx`` of many files at once,
  with every formula recalculated on load.
* :func:`require_libreoffice` — skip (or, with ``CI=true``, fail) a test when
  LibreOffice or python3-uno is missing.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

DRIVER = Path(__file__).resolve().parent / "lo" / "driver.py"
UNO_PYTHON = os.environ.get("LO_PYTHON", "/usr/bin/python3")
XLSX_FILTER = "Calc MS Excel 2007 XML"

_SOFFICE_CANDIDATES = (
    "/usr/bin/soffice",
    "/usr/lib/libreoffice/program/soffice",
    "/opt/libreoffice/program/soffice",
    "/usr/local/bin/soffice",
    "/Applications/LibreOffice.app/Contents/MacOS/soffice",
)

# The driver's private profile: recalculate everything on load, macros disabled.
_REGISTRY_XCU = (Path(__file__).parent / "lo" / "profile.xcu").read_text(encoding="utf-8")


class LibreOfficeMissing(RuntimeError):
    """LibreOffice (soffice) or the system python3-uno is not available."""


class LibreOfficeFailed(RuntimeError):
    """The driver or soffice itself failed (not a single job: those report errors)."""


def find_soffice() -> str | None:
    """Path of the ``soffice`` executable, or None (``$SOFFICE`` wins if set)."""
    env = os.environ.get("SOFFICE")
    if env and os.access(env, os.X_OK):
        return env
    for name in ("soffice", "libreoffice"):
        found = shutil.which(name)
        if found:
            return found
    for candidate in _SOFFICE_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


@functools.cache
def _uno_python_ok() -> bool:
    if not os.access(UNO_PYTHON, os.X_OK):
        return False
    try:
        proc = subprocess.run(
            [UNO_PYTHON, "-c", "import uno"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _missing_reason() -> str | None:
    if find_soffice() is None:
        return "LibreOffice (soffice) not found; install the libreoffice-calc package"
    if not _uno_python_ok():
        return f"{UNO_PYTHON} cannot 'import uno'; install the python3-uno package"
    return None


def require_libreoffice() -> None:
    """Skip the calling test without LibreOffice + python3-uno; fail instead on CI."""
    reason = _missing_reason()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"LibreOffice is required on CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _run_group(
    cmd: list[str], *, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in its own process group; on timeout kill the whole group
    (soffice forks soffice.bin, which a plain ``kill`` of the child would leave)."""
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # SIGTERM first: the driver then kills its soffice and removes its files;
        # then SIGKILL for whatever is left of the group.
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise LibreOfficeFailed(
            f"{cmd[0]} did not finish within {timeout:.0f} s\n"
            f"--- stderr ---\n{err.strip()}\n--- stdout ---\n{out.strip()}"
        ) from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def run_batch(jobs: list[dict[str, Any]], *, timeout: float = 600) -> list[dict[str, Any]]:
    """Run ``jobs`` in one LibreOffice and return one result per job, in order.

    Each result is ``{"reads": {...}, "saved": [...], "error": None | str}``; a
    failing job (corrupt file, unknown name, ...) only sets its own ``error``.
    Raises :class:`LibreOfficeMissing` when LibreOffice/python3-uno are absent and
    :class:`LibreOfficeFailed` (with the driver's stderr) when the batch itself fails.
    """
    reason = _missing_reason()
    if reason is not None:
        raise LibreOfficeMissing(reason)
    if not jobs:
        return []
    with tempfile.TemporaryDirectory(prefix="lo-batch-") as tmp:
        job_file = Path(tmp) / "job.json"
        result_file = Path(tmp) / "result.json"
        job_file.write_text(
            json.dumps({"jobs": jobs, "soffice": find_soffice()}, ensure_ascii=False),
            encoding="utf-8",
        )
        # The driver's soffice profile goes under tmp too, so it is removed even
        # if the driver has to be killed.
        env = dict(os.environ, TMPDIR=tmp)
        proc = _run_group(
            [UNO_PYTHON, str(DRIVER), str(job_file), str(result_file)],
            timeout=timeout,
            env=env,
        )
        if proc.returncode != 0 or not result_file.exists():
            raise LibreOfficeFailed(
                f"LibreOffice driver failed (exit status {proc.returncode})\n"
                f"--- stderr ---\n{proc.stderr.strip()}\n--- stdout ---\n{proc.stdout.strip()}"
            )
        data = json.loads(result_file.read_text(encoding="utf-8"))
    results: list[dict[str, Any]] = data["results"]
    if len(results) != len(jobs):
        raise LibreOfficeFailed(
            f"driver returned {len(results)} results for {len(jobs)} jobs\n{proc.stderr}"
        )
    return results


def recalculate(paths: list[Path], outdir: Path, *, timeout: float = 600) -> list[Path]:
    """Convert ``paths`` to xlsx in ``outdir`` with one soffice call, recalculating
    every formula on load; returns the converted files in the order of ``paths``."""
    soffice = find_soffice()
    if soffice is None:
        raise LibreOfficeMissing("LibreOffice (soffice) not found")
    if not paths:
        return []
    sources = [Path(p).resolve() for p in paths]
    outdir = Path(outdir).resolve()
    targets = [outdir / (p.stem + ".xlsx") for p in sources]
    if len(set(targets)) != len(targets):
        raise ValueError(f"two inputs would convert to the same file name: {paths}")
    clobbered = [p for p in sources if p in targets]
    if clobbered:
        raise ValueError(f"converting into {outdir} would overwrite the inputs {clobbered}")
    outdir.mkdir(parents=True, exist_ok=True)
    for target in targets:
        target.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="lo-convert-") as tmp:
        user = Path(tmp) / "profile" / "user"
        user.mkdir(parents=True)
        (user / "registrymodifications.xcu").write_text(_REGISTRY_XCU, encoding="utf-8")
        cmd = [
            soffice,
            "--headless",
            "--invisible",
            "--nologo",
            "--norestore",
            "--nodefault",
            "--nolockcheck",
            f"-env:UserInstallation={(Path(tmp) / 'profile').as_uri()}",
            "--convert-to",
            f"xlsx:{XLSX_FILTER}",
            "--outdir",
            str(outdir),
            *(str(p) for p in sources),
        ]
        proc = _run_group(cmd, timeout=timeout, env=dict(os.environ, TMPDIR=tmp))
    missing = [t for t in targets if not t.exists()]
    if proc.returncode != 0 or missing:
        raise LibreOfficeFailed(
            f"soffice --convert-to failed (exit status {proc.returncode}); "
            f"not produced: {[str(m) for m in missing]}\n"
            f"--- stderr ---\n{proc.stderr.strip()}\n--- stdout ---\n{proc.stdout.strip()}"
        )
    return targets
