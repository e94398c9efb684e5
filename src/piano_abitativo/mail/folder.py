"""Returns imported from files and folders (`importa --da`): workbooks are archived,
validated and recorded here; a saved message (.eml, .msg) goes through `mail.ingest` like
one read from the mailbox, and a signed file (.p7m) is opened and recorded with its signer.
The raccolta's own outputs (its master, its unfilled templates, its documents: see
`mail.generated`) are archived too but recorded as generated, never as a return."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from piano_abitativo.archive import quarantine
from piano_abitativo.archive.decisions import TIPO_GENERATO
from piano_abitativo.archive.store import (
    CANALE_CARTELLA,
    FILES_DIR,
    FONTE_FILE,
    FONTE_RECUPERO,
    MAIL_SUFFIXES,
    MAX_FILE_BYTES,
    RETURN_SUFFIXES,
    TZ,
    ArchiveError,
    ImportOutcome,
    ImportResult,
    Receipt,
    _mtime,
    append_records,
    archive_dir,
    blob_relpath,
    locked,
    make_receipt,
    now,
    read_ledger,
    store_blob,
)
from piano_abitativo.consolidation.checking import validation_context
from piano_abitativo.consolidation.context import context_fingerprint
from piano_abitativo.core.errors import os_reason
from piano_abitativo.core.files import skip_reason
from piano_abitativo.core.problems import Report
from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.mail import p7m, probe
from piano_abitativo.mail.generated import own_output
from piano_abitativo.mail.ingest import (
    CANALE_EMAIL,
    CANALE_PEC,
    GIA_IMPORTATO,
    NON_APERTO,
    RICEVUTA,
    SENZA_ALLEGATI,
    IngestState,
    MessageOutcome,
    Provenance,
    ingest_message,
    signature_json,
    store_original,
)
from piano_abitativo.mail.outbox import OUTBOX_DIR, POSTA_DIR
from piano_abitativo.validation.validate import ValidationContext

#: the esito of an own output of the raccolta (`ImportOutcome.esito`): a note, not an error
ESITO_GENERATO = "generato"
#: said of an own output that an earlier import had recorded as a return
_ORA_ESCLUSO = " (era stato registrato come risposta: ora è escluso)"


#: why a file of another kind found in a folder given to `importa --da` is not examined
NOT_A_RETURN = "non è una cartella di lavoro né un messaggio"


def iter_sources(
    paths: Iterable[Path],
    *,
    exclude: Sequence[Path] = (),
    skipped: list[tuple[Path, str]] | None = None,
) -> Iterator[Path]:
    """Files given explicitly, and the returnable files found in given folders, except
    those inside the `exclude` folders (the raccolta's archive and outbox). The other
    files found in the folders are appended to `skipped` with the reason."""
    skip = [x.resolve() for x in exclude]
    accepted = (*RETURN_SUFFIXES, *MAIL_SUFFIXES)
    for p in paths:
        if p.is_dir():
            for child in sorted(p.rglob("*")):
                if child.is_symlink():  # never followed: import_files notes it
                    if child.suffix.lower() in accepted:
                        yield child
                    continue
                if not child.is_file() or any(child.resolve().is_relative_to(x) for x in skip):
                    continue
                why = skip_reason(child, accepted, NOT_A_RETURN)
                if why is None:
                    yield child
                elif skipped is not None:
                    skipped.append((child, why))
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
    An own output of the raccolta gets a «generato» record instead of a receipt (also
    when an earlier import recorded it as a return: the record then excludes it).
    """
    result = ImportResult()
    ctx = validation_context(r)
    fp = context_fingerprint(r)
    with locked(r.path, timeout=timeout, waiting=waiting):
        records = read_ledger(r.path, letture=True).records
        marked, suspects = quarantine.triage(records)
        known = quarantine.known_shas(records) | set(marked)
        generati = {
            rec["sha256"]: str(rec.get("motivo") or "")
            for rec in records
            if rec.get("tipo") == TIPO_GENERATO and isinstance(rec.get("sha256"), str)
        }
        received = {rec["sha256"]: rec for rec in records if rec.get("tipo") == "ricezione"}
        del records
        own_dirs = [archive_dir(r.path), r.path / POSTA_DIR / OUTBOX_DIR]
        skipped: list[tuple[Path, str]] = []
        for src in iter_sources(paths, exclude=own_dirs, skipped=skipped):
            if progress is not None:
                progress(src)
            nome = readable(src.name)
            if src.is_symlink() and src not in paths:
                result.outcomes.append(
                    ImportOutcome(
                        readable(str(src)),
                        "non importato",
                        messaggio=f"{nome}: collegamento simbolico, non seguito (copiare "
                        "il file vero nella cartella per importarlo)",
                    )
                )
                continue
            origine = readable(str(src.resolve()))
            try:
                st = src.stat()
                if st.st_size > MAX_FILE_BYTES:
                    result.outcomes.append(
                        ImportOutcome(
                            origine,
                            "illeggibile",
                            messaggio=f"{nome}: file troppo grande "
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
                        messaggio=f"{readable(str(src))}: impossibile leggere il file "
                        f"({os_reason(exc)})",
                    )
                )
                continue
            sha = hashlib.sha256(data).hexdigest()
            child = partial(probe.survives, r, data, nome, probe.kind_of(nome))
            if not quarantine.may_read(r.path, sha, marked, suspects, child):
                result.outcomes.append(
                    ImportOutcome(origine, "illeggibile", messaggio=quarantine.SKIPPED)
                )
                continue
            if src.suffix.lower() in MAIL_SUFFIXES:  # archived and recorded by ingest
                with (
                    contextlib.nullcontext()
                    if sha in known
                    else quarantine.reading(r.path, sha, nome, origine)
                ):
                    result.outcomes.extend(
                        import_mail_file(r, src, data, st, known=known, ctx=ctx, fingerprint=fp)
                    )
                continue
            try:
                sha, rel = store_blob(r.path, data, suffix=src.suffix, mtime=st.st_mtime)
            except OSError as exc:
                raise ArchiveError(
                    f"Impossibile archiviare {nome}: "
                    f"{os_reason(exc)}. Nessun file è andato perso: "
                    "ripetere l'importazione."
                ) from exc
            if sha in generati:
                result.outcomes.append(_generated(origine, src.name, generati[sha]))
                continue
            if sha in known:
                motivo = _recorded_own_output(r, src, data, received.get(sha))
                if motivo is None:
                    result.outcomes.append(ImportOutcome(origine, "già importato"))
                    continue
                append_records(r.path, [_generated_record(sha, src.name, motivo, origine)])
                generati[sha] = motivo
                result.outcomes.append(_generated(origine, src.name, motivo + _ORA_ESCLUSO))
                continue
            with quarantine.reading(r.path, sha, nome, origine):
                outcome, motivo = _record_new(r, src, data, st, sha, rel, nome, origine, ctx, fp)
            result.outcomes.append(outcome)
            known.add(sha)
            if motivo is not None:
                generati[sha] = motivo
        result.recovered = _recover_orphans(r, known, ctx, fp, (marked, suspects))
    result.non_esaminati = [(readable(str(f)), why) for f, why in skipped]
    return result


def readable(name: str) -> str:
    """A file name as text that can be written anywhere: bytes that are not UTF-8 (a
    name made on another system) become U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _record_new(
    r: Raccolta,
    src: Path,
    data: bytes,
    st: os.stat_result,
    sha: str,
    rel: str,
    nome: str,
    origine: str,
    ctx: ValidationContext,
    fp: str,
) -> tuple[ImportOutcome, str | None]:
    """Validate a new file and record it: as a receipt, or as generated when it is an own
    output of the raccolta (then with why)."""
    rc = make_receipt(
        r,
        data,
        nome=nome,
        blob=rel,
        sha=sha,
        ricevuto_il=_mtime(src, st),
        fonte_data=FONTE_FILE,
        canale=CANALE_CARTELLA,
        origine=origine,
        ctx=ctx,
        fingerprint=fp,
    )
    motivo = own_output(r, nome, data, rc.report, source=src)
    if motivo is not None:
        append_records(r.path, [_generated_record(sha, nome, motivo, origine)])
        return _generated(origine, nome, motivo), motivo
    append_records(r.path, [rc.to_record()])
    return ImportOutcome(origine, "importato", rc), None


def _generated_record(sha: str, nome: str, motivo: str, origine: str) -> dict[str, Any]:
    """The ledger record of an own output: its sha256 is known, so it is never recovered
    as an orphan, and consolidation skips any receipt of the same content."""
    return {
        "tipo": TIPO_GENERATO,
        "versione": 1,
        "sha256": sha,
        "nome": nome,
        "motivo": motivo,
        "origine": origine,
        "importato_il": now().isoformat(),
    }


def _generated(origine: str, nome: str, motivo: str) -> ImportOutcome:
    return ImportOutcome(origine, ESITO_GENERATO, messaggio=f"{nome}: {motivo}")


def _recorded_own_output(
    r: Raccolta, src: Path, data: bytes, rec: dict[str, Any] | None
) -> str | None:
    """Why a content an earlier import recorded as a return is an own output (judged on
    the report it was recorded with), or None."""
    if rec is None:
        return None
    try:
        report = Report.from_record(rec["report"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return own_output(r, src.name, data, report, source=src)


def _recover_orphans(
    r: Raccolta,
    known: set[Any],
    ctx: ValidationContext,
    fp: str,
    quarantined: tuple[dict[str, Any], dict[str, Any]] = ({}, {}),
) -> list[Receipt]:
    """Files archived but not recorded (a run that stopped in between, or a ledger line
    that cannot be read any more) get their record now. When the message that brought the
    file is still in the ledger, the file takes back its facts from it (name, time and its
    source, channel, sender, PEC verification); otherwise it counts at its file's time."""
    files = archive_dir(r.path) / FILES_DIR
    out: list[Receipt] = []
    if not files.is_dir():
        return out
    carried = _attachments_of_messages(r)
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
        facts = carried.get(sha)
        child = partial(probe.survives, r, data, blob.name)
        if not quarantine.may_read(r.path, sha, *quarantined, child):
            continue
        with quarantine.reading(r.path, sha, blob.name, rel):
            rc = _recovered(r, data, rel, sha, blob, st, facts, ctx, fp)
            append_records(r.path, [rc.to_record()])
        known.add(sha)
        out.append(rc)
    return out


def _recovered(
    r: Raccolta,
    data: bytes,
    rel: str,
    sha: str,
    blob: Path,
    st: os.stat_result,
    facts: dict[str, Any] | None,
    ctx: ValidationContext,
    fp: str,
) -> Receipt:
    if facts is not None:
        return make_receipt(r, data, blob=rel, sha=sha, ctx=ctx, fingerprint=fp, **facts)
    return make_receipt(
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


def _attachments_of_messages(r: Raccolta) -> dict[str, dict[str, Any]]:
    """sha256 of each file a recorded message brought → the facts of its receipt."""
    out: dict[str, dict[str, Any]] = {}
    for rec in read_ledger(r.path).records:
        if rec.get("tipo") != "messaggio" or not isinstance(rec.get("allegati"), list):
            continue
        try:
            when = dt.datetime.fromisoformat(rec["ricevuto_il"])
        except (KeyError, TypeError, ValueError):
            continue
        if when.tzinfo is None:
            continue
        extra = {
            k: rec[v]
            for k, v in (
                ("mittente", "mittente"),
                ("ente_mittente", "ente_mittente"),
                ("messaggio", "sha256"),
                ("message_id", "message_id"),
                ("oggetto", "oggetto"),
                ("genere_messaggio", "genere"),
                ("identificativo_pec", "identificativo_pec"),
                ("verifica_pec", "verifica_pec"),
            )
            if rec.get(v) is not None
        }
        for a in rec["allegati"]:
            if not isinstance(a, dict) or not isinstance(a.get("sha256"), str):
                continue
            out.setdefault(
                a["sha256"],
                {
                    "nome": str(a.get("nome") or a["sha256"]),
                    "ricevuto_il": when,
                    "fonte_data": f"{rec.get('fonte_data') or FONTE_RECUPERO} (recuperato "
                    "dall'archivio)",
                    "canale": CANALE_PEC if rec.get("genere") == "pec" else CANALE_EMAIL,
                    "origine": str(rec.get("origine") or ""),
                    "certificato": bool(rec.get("certificato")),
                    "extra": extra,
                },
            )
    return out


# ------------------------------------------------------------- messages and signed files


def import_mail_file(
    r: Raccolta,
    src: Path,
    data: bytes,
    st: os.stat_result,
    *,
    known: set[Any],
    ctx: ValidationContext,
    fingerprint: str,
) -> list[ImportOutcome]:
    """An .eml/.msg/.p7m file given to `importa --da`. Called by :func:`import_files`
    with the lock held; ``known`` is its set of recorded sha256 and is kept up to date."""
    state = IngestState(r, known, ctx=ctx, fingerprint=fingerprint)
    origine = str(src.resolve())
    mtime = dt.datetime.fromtimestamp(st.st_mtime, TZ)
    if src.suffix.lower() == ".p7m":
        return [_import_signed_file(state, src, data, mtime)]
    msg = ingest_message(state, data, Provenance(origine, file_mtime=mtime))
    return import_outcomes(msg)


def import_outcomes(msg: MessageOutcome) -> list[ImportOutcome]:
    """A message as rows of the file import's result."""
    notes = "; ".join(msg.note)
    if msg.esito == GIA_IMPORTATO:
        return [ImportOutcome(msg.origine, "già importato")]
    if msg.esito == RICEVUTA:
        return [
            ImportOutcome(
                msg.origine,
                "ricevuta PEC",
                messaggio=(
                    f"{Path(msg.origine).name}: ricevuta PEC, non è una risposta di un ente"
                ),
            )
        ]
    if msg.esito == NON_APERTO:
        return [
            ImportOutcome(msg.origine, NON_APERTO, messaggio=f"{Path(msg.origine).name}: {notes}")
        ]
    if msg.esito == SENZA_ALLEGATI:
        return [
            ImportOutcome(
                msg.origine,
                "senza allegati",
                messaggio=(
                    f"{Path(msg.origine).name}: messaggio senza il modello compilato"
                    + (f" ({notes})" if notes else "")
                ),
            )
        ]
    rows = [
        ImportOutcome(f"{msg.origine} › {rc.nome}", "importato", rc, messaggio=notes)
        for rc in msg.receipts
    ]
    rows += [ImportOutcome(f"{msg.origine} › {name}", "già importato") for name in msg.gia_ricevuti]
    return rows


def _import_signed_file(
    state: IngestState, src: Path, data: bytes, mtime: dt.datetime
) -> ImportOutcome:
    r = state.r
    origine = str(src.resolve())
    p7m_sha, p7m_rel = store_original(r.path, data, suffix=".p7m", mtime=mtime)
    try:
        content, signatures = p7m.unwrap(data)
    except p7m.P7mError as exc:
        return ImportOutcome(
            origine, "illeggibile", messaggio=f"{src.name}: file firmato non leggibile: {exc}"
        )
    name = p7m.strip_p7m_suffix(src.name)
    sha = hashlib.sha256(content).hexdigest()
    if sha in state.known:
        return ImportOutcome(origine, "già importato")
    suffix = Path(name).suffix
    extra: dict[str, Any] = {"originale": {"sha256": p7m_sha, "blob": p7m_rel, "nome": src.name}}
    if signatures:
        extra["firma"] = signature_json(signatures[0])
    if len(signatures) > 1:
        extra["firme"] = [signature_json(s) for s in signatures]
    rc = make_receipt(
        r,
        content,
        nome=name,
        blob=blob_relpath(sha, suffix),
        sha=sha,
        ricevuto_il=mtime,
        fonte_data=FONTE_FILE,
        canale=CANALE_CARTELLA,
        origine=origine,
        extra=extra,
        ctx=state.ctx,
        fingerprint=state.fp,
    )
    store_blob(r.path, content, suffix=suffix, mtime=mtime.timestamp())
    append_records(r.path, [rc.to_record()])
    state.known.add(sha)
    notes = [s.detail for s in signatures if s.valid is not True]
    return ImportOutcome(origine, "importato", rc, messaggio="; ".join(notes))
