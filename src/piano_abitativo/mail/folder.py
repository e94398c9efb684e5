"""Returns imported from files and folders (`importa --da`): workbooks are archived,
validated and recorded here; saved messages (.eml, .msg) and signed files go through
`mail.ingest`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from piano_abitativo.archive.store import (
    CANALE_CARTELLA,
    FILES_DIR,
    FONTE_FILE,
    FONTE_RECUPERO,
    MAIL_SUFFIXES,
    MAX_FILE_BYTES,
    RETURN_SUFFIXES,
    ArchiveError,
    ImportOutcome,
    ImportResult,
    Receipt,
    _mtime,
    append_records,
    archive_dir,
    locked,
    make_receipt,
    read_ledger,
    store_blob,
)
from piano_abitativo.consolidation.context import context_fingerprint, validation_context
from piano_abitativo.core.errors import os_reason
from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.mail.ingest import import_mail_file
from piano_abitativo.validation.validate import ValidationContext


def iter_sources(paths: Iterable[Path]) -> Iterator[Path]:
    """Files given explicitly, and the returnable files found in given folders."""
    for p in paths:
        if p.is_dir():
            for child in sorted(p.rglob("*")):
                if (
                    child.is_file()
                    and not child.name.startswith((".", "~$"))
                    and child.suffix.lower() in (*RETURN_SUFFIXES, *MAIL_SUFFIXES)
                ):
                    yield child
        else:
            yield p


def import_files(
    r: Raccolta,
    paths: Sequence[Path],
    *,
    timeout: float = 60.0,
    progress: Callable[[Path], None] | None = None,
    waiting: Callable[[str], None] | None = None,
) -> ImportResult:
    """Archive, identify, validate and record returned files (files or folders).

    Each file is archived before it is read; a content already in the ledger is skipped.
    """
    result = ImportResult()
    ctx = validation_context(r)
    fp = context_fingerprint(r)
    with locked(r.path, timeout=timeout, waiting=waiting):
        known = {rec.get("sha256") for rec in read_ledger(r.path).records}
        for src in iter_sources(paths):
            if progress is not None:
                progress(src)
            origine = str(src.resolve())
            try:
                st = src.stat()
                if st.st_size > MAX_FILE_BYTES:
                    result.outcomes.append(
                        ImportOutcome(
                            origine,
                            "illeggibile",
                            messaggio=f"{src.name}: file troppo grande "
                            f"({st.st_size // 1_000_000} MB), non importato",
                        )
                    )
                    continue
                data = src.read_bytes()
            except OSError as exc:
                result.outcomes.append(
                    ImportOutcome(
                        origine,
                        "illeggibile",
                        messaggio=f"{src}: impossibile leggere il file ({os_reason(exc)})",
                    )
                )
                continue
            if src.suffix.lower() in MAIL_SUFFIXES:  # archived and recorded by ingest
                result.outcomes.extend(
                    import_mail_file(r, src, data, st, known=known, ctx=ctx, fingerprint=fp)
                )
                continue
            try:
                sha, rel = store_blob(r.path, data, suffix=src.suffix, mtime=st.st_mtime)
            except OSError as exc:
                raise ArchiveError(
                    f"Impossibile archiviare {src.name}: "
                    f"{os_reason(exc)}. Nessun file è andato perso: "
                    "ripetere l'importazione."
                ) from exc
            if sha in known:
                result.outcomes.append(ImportOutcome(origine, "già importato"))
                continue
            rc = make_receipt(
                r,
                data,
                nome=src.name,
                blob=rel,
                sha=sha,
                ricevuto_il=_mtime(src, st),
                fonte_data=FONTE_FILE,
                canale=CANALE_CARTELLA,
                origine=origine,
                ctx=ctx,
                fingerprint=fp,
            )
            append_records(r.path, [rc.to_record()])
            known.add(sha)
            result.outcomes.append(ImportOutcome(origine, "importato", rc))
        result.recovered = _recover_orphans(r, known, ctx, fp)
    return result


def _recover_orphans(
    r: Raccolta, known: set[Any], ctx: ValidationContext, fp: str
) -> list[Receipt]:
    """Files archived by a run that stopped before recording them get their record now."""
    files = archive_dir(r.path) / FILES_DIR
    out: list[Receipt] = []
    if not files.is_dir():
        return out
    for blob in sorted(files.glob("??/*")):
        if blob.name.startswith(".") or not blob.is_file():
            continue
        sha = blob.name.split(".", 1)[0]
        if sha in known or len(sha) != 64:
            continue
        try:
            data = blob.read_bytes()
            st = blob.stat()
        except OSError:
            continue
        if hashlib.sha256(data).hexdigest() != sha:
            continue  # cannot happen with atomic renames; never trust a damaged copy
        rel = blob.relative_to(r.path).as_posix()
        rc = make_receipt(
            r,
            data,
            nome=blob.name,
            blob=rel,
            sha=sha,
            ricevuto_il=_mtime(blob, st),
            fonte_data=FONTE_RECUPERO,
            canale=CANALE_CARTELLA,
            origine=rel,
            ctx=ctx,
            fingerprint=fp,
        )
        append_records(r.path, [rc.to_record()])
        known.add(sha)
        out.append(rc)
    return out
