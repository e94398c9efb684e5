"""Converting the .docx to PDF with LibreOffice headless (found on PATH, in the usual
places or in ``PIANO_ABITATIVO_SOFFICE``), with a watchdog."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from piano_abitativo.core.errors import os_reason
from piano_abitativo.document.base import (
    ENV_SOFFICE,
    PDF_TIMEOUT,
    PdfError,
    _write,
)

if TYPE_CHECKING:
    pass


# --------------------------------------------------------------------------- LibreOffice


def _soffice_candidates() -> list[Path]:
    cands = [
        Path("/usr/bin/soffice"),
        Path("/usr/lib/libreoffice/program/soffice"),
        Path("/usr/local/bin/soffice"),
        Path("/snap/bin/libreoffice"),
        Path("/Applications/LibreOffice.app/Contents/MacOS/soffice"),
    ]
    cands += sorted(Path("/opt").glob("libreoffice*/program/soffice"), reverse=True)
    for env in ("ProgramFiles", "ProgramFiles(x86)", "ProgramW6432"):
        base = os.environ.get(env)
        if base:
            cands.append(Path(base) / "LibreOffice" / "program" / "soffice.exe")
    cands += [
        Path(r"C:\Program Files\LibreOffice\program\soffice.exe"),
        Path(r"C:\Program Files (x86)\LibreOffice\program\soffice.exe"),
    ]
    return cands


def _windows_console(path: Path) -> Path:
    """On Windows soffice.com waits for the conversion to end (soffice.exe may not)."""
    com = path.with_suffix(".com")
    return com if path.suffix.lower() == ".exe" and com.is_file() else path


def find_soffice() -> Path | None:
    """LibreOffice's soffice: ``$PIANO_ABITATIVO_SOFFICE`` if set (the program, or the
    folder that holds it; returned even when wrong, so that the note names it), else the
    PATH, else the usual install folders."""
    env = os.environ.get(ENV_SOFFICE, "").strip().strip('"')
    if env:
        given = Path(env)
        if given.is_dir():
            for name in ("soffice.exe", "soffice"):
                if (given / name).is_file():
                    return _windows_console(given / name)
        return _windows_console(given)
    for name in ("soffice", "libreoffice"):
        found = shutil.which(name)
        if found:
            return _windows_console(Path(found))
    for cand in _soffice_candidates():
        if cand.is_file() and os.access(cand, os.X_OK):
            return _windows_console(cand)
    return None


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    if os.name == "nt":  # pragma: no cover - Windows only
        subprocess.run(
            ["taskkill", "/F", "/T", "/PID", str(proc.pid)],
            capture_output=True,
            check=False,
            timeout=30,
        )
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.kill()
        proc.wait(timeout=10)


def convert_to_pdf(
    source: Path, target: Path, *, soffice: Path, timeout: float = PDF_TIMEOUT
) -> Path:
    """Convert the .docx `source` to the PDF `target` (written atomically) with LibreOffice
    headless and a private temporary profile, so that a LibreOffice already open on the PC
    is neither used nor disturbed. Raises `PdfError` with an Italian message."""
    if not soffice.is_file():
        raise PdfError(
            f"LibreOffice non trovato in {soffice} (variabile {ENV_SOFFICE}): "
            "scritto solo il .docx. Correggere il percorso di soffice."
        )
    with tempfile.TemporaryDirectory(prefix="piano-abitativo-pdf-") as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / "documento.docx"
        shutil.copyfile(source, src)
        outdir = tmp / "pdf"
        profile = tmp / "profilo"
        cmd = [
            str(soffice),
            "--headless",
            "--invisible",
            "--nologo",
            "--norestore",
            "--nodefault",
            "--nolockcheck",
            "--nofirststartwizard",
            f"-env:UserInstallation={profile.as_uri()}",
            "--convert-to",
            "pdf:writer_pdf_Export",
            "--outdir",
            str(outdir),
            str(src),
        ]
        env = dict(os.environ, TMPDIR=str(tmp), TMP=str(tmp), TEMP=str(tmp))
        kw: dict[str, Any] = {}
        if os.name == "nt":  # pragma: no cover - Windows only
            kw["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        else:
            kw["start_new_session"] = True
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=tmp,
                **kw,
            )
        except OSError as exc:
            raise PdfError(
                f"Impossibile avviare LibreOffice ({soffice}): "
                f"{os_reason(exc)}. Scritto solo il .docx."
            ) from exc
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            raise PdfError(
                f"LibreOffice non ha finito la conversione in PDF entro "
                f"{timeout:.0f} secondi ed è stato fermato: scritto solo il .docx. "
                "Riprovare, oppure aprire il .docx e salvarlo in PDF."
            ) from None
        if os.name != "nt":  # soffice.bin may outlive its launcher: the group goes too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        produced = outdir / "documento.pdf"
        if not produced.is_file() or produced.stat().st_size == 0:
            detail = (err or out or b"").decode("utf-8", "replace").strip().splitlines()
            last = next((ln for ln in reversed(detail) if "javaldx" not in ln), "")
            raise PdfError(
                f"LibreOffice non ha prodotto il PDF (codice di uscita "
                f"{proc.returncode}{': ' + last[:200] if last else ''}): scritto "
                "solo il .docx. Aprire il .docx e salvarlo in PDF."
            )
        data = produced.read_bytes()
    _write(target, data)
    return target


# --------------------------------------------------------------------------- page numbers

_OBJ = re.compile(rb"(\d+) 0 obj\s*<<(.*?)>>\s*endobj", re.DOTALL)
_TITLE = re.compile(rb"/Title\s*<([0-9A-Fa-f\s]+)>")
_DEST = re.compile(rb"/Dest\s*\[\s*(\d+) 0 R")
_KIDS = re.compile(rb"/Type\s*/Pages\b.*?/Kids\s*\[([^\]]*)\]", re.DOTALL)


def outline_pages(pdf: bytes) -> dict[str, int]:
    """The page (from 1) of each entry of the outline LibreOffice writes for the headings
    of the document (title → page); empty when the PDF is not laid out as LibreOffice
    writes it (one flat page tree, outline entries with a UTF-16 title and a /Dest)."""
    kids = _KIDS.findall(pdf)
    if len(kids) != 1:
        return {}
    page_of = {int(n): i for i, n in enumerate(re.findall(rb"(\d+) 0 R", kids[0]), start=1)}
    out: dict[str, int] = {}
    for m in _OBJ.finditer(pdf):
        body = m.group(2)
        title, dest = _TITLE.search(body), _DEST.search(body)
        if title is None or dest is None or int(dest.group(1)) not in page_of:
            continue
        try:
            text = bytes.fromhex(title.group(1).decode("ascii")).decode("utf-16")
        except (ValueError, UnicodeDecodeError):
            continue
        out.setdefault(text, page_of[int(dest.group(1))])
    return out
