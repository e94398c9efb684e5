"""The operations of the capofila, one function per command of the CLI.

They are what the command line, the Excel buttons and a Python script call (the library
face, `import piano_abitativo`), and nothing else: each takes the raccolta (loaded, or the
path of its folder) and keyword-only options, and returns a result that the faces render.
Errors are `PianoError` with an Italian message (see `piano_abitativo.core.errors`).

The mail commands (invia, solleciti, esiti) are in `piano_abitativo.app.posta`, stato in
`piano_abitativo.app.stato`; the demo, which plays the whole cycle through these
functions, is `piano_abitativo.simulation.demo.run_demo`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from piano_abitativo.app.loading import (
    PathLike,
    RaccoltaLike,
    existing_paths,
    folder,
    load_raccolta,
)
from piano_abitativo.core import raccolta as rc
from piano_abitativo.core.errors import MasterEdited, RaccoltaError
from piano_abitativo.core.raccolta import Raccolta

# the decisions, the consolidation, the mail, the document and the master are imported
# by the functions that use them: ``valida`` imports only what it needs
# (tests/test_imports.py)
if TYPE_CHECKING:
    from piano_abitativo.app.decisioni import Modifica
    from piano_abitativo.app.importing import ImportaResult as ImportaResult
    from piano_abitativo.app.importing import importa as importa
    from piano_abitativo.archive.decisions import Rettifica
    from piano_abitativo.consolidation.consolidate import Consolidation
    from piano_abitativo.core.problems import Report
    from piano_abitativo.document.docx import DocumentResult
    from piano_abitativo.master.xlsm import BlankMaster

__all__ = [
    "ConsolidaResult",
    "ImportaResult",
    "collega",
    "consolida",
    "consolidation",
    "crea",
    "documento",
    "importa",
    "master_vuoto",
    "modelli",
    "modello_vuoto",
    "valida",
]


def crea(
    cartella: PathLike,
    *,
    anno: int,
    registry_csv: PathLike | None = None,
    scadenza: dt.date | str | None = None,
    ambito: str | None = None,
    contatto: str = "",
    precedente: PathLike | None = None,
) -> Raccolta:
    """Create the folder of a new raccolta for the Piano of year `anno`: its commented
    ``raccolta.toml``, the registry of the enti (``registry_csv``, a CSV; the Ambito
    Cremasco when omitted) and the editable texts of its messages in ``messaggi/``.

    `scadenza` is the deadline of the enti (a date or ``GG/MM/AAAA``), `ambito` the name
    of the ambito territoriale, `contatto` who to contact, `precedente` last year's
    raccolta to compare with. Refuses to touch an existing raccolta."""
    from piano_abitativo.mail.texts import write_message_templates

    if isinstance(scadenza, str):
        scadenza = rc.parse_date(scadenza)
    r = rc.create(
        Path(cartella),
        anno=anno,
        registry_csv=Path(registry_csv) if registry_csv is not None else None,
        scadenza=scadenza,
        ambito=ambito,
        contatto=contatto,
        precedente=Path(precedente) if precedente is not None else None,
    )
    write_message_templates(r.path)
    return r


def collega(raccolta: PathLike, *, precedente: PathLike) -> Raccolta:
    """Link the raccolta in folder `raccolta` to last year's (`precedente`, a raccolta of
    an earlier year): ``[confronto] precedente`` is rewritten in raccolta.toml, every other
    line kept as it was. Returns the raccolta as now loaded."""
    folder(raccolta)
    folder(precedente, "la cartella della raccolta dell'anno precedente")
    return rc.collega(Path(raccolta), Path(precedente))


def modelli(raccolta: RaccoltaLike, *, progress: Callable[[str], None] | None = None) -> list[Path]:
    """Write one personalised template per ente of the registry into the raccolta's
    ``modelli/`` folder; the paths written. `progress` gets the name of each ente."""
    from piano_abitativo.template.workbook import generate_templates

    r = load_raccolta(raccolta)
    return generate_templates(
        r, progress=None if progress is None else (lambda e: progress(e.nome_completo))
    )


def valida(percorsi: Iterable[PathLike], *, raccolta: RaccoltaLike | None = None) -> list[Report]:
    """Validate the returned workbooks at `percorsi` (files, or folders searched for
    .xlsx/.xlsm/.xls/.ods), one report each; nothing is archived. They are checked against
    `raccolta` (year, id, enti, rules, last year's data), by default the raccolta that
    contains the first of them, else against the rules alone."""
    from piano_abitativo.reading.reader import iter_workbook_files
    from piano_abitativo.validation.batch import validate_files
    from piano_abitativo.validation.validate import ValidationContext

    paths = existing_paths(percorsi)
    r: Raccolta | None = None
    if raccolta is not None:
        r = load_raccolta(raccolta)
    else:
        for p in paths:
            found = rc.find_raccolta(p if p.is_dir() else p.parent)
            if found is not None:
                r = rc.load(found)
                break
    ctx = ValidationContext()
    if r is not None:  # last year's values come from the raccolta's consolidation
        from piano_abitativo.consolidation.checking import validation_context

        ctx = validation_context(r)
    return validate_files(list(iter_workbook_files(paths)), ctx)


def __getattr__(name: str) -> object:
    """`importa` and `ImportaResult` live in `app.importing` (the archive's store, which
    ``valida`` does not need); they are still found here (PEP 562)."""
    if name in ("importa", "ImportaResult"):
        from piano_abitativo.app import importing

        return getattr(importing, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def consolidation(raccolta: RaccoltaLike) -> Consolidation:
    """The current consolidation of the raccolta (nothing written): the latest valid
    return of each ente, validated again with the current rules, and the comparison with
    last year's raccolta when it is linked and usable."""
    from piano_abitativo.consolidation.confronto import confronta
    from piano_abitativo.consolidation.context import consolidate_raccolta

    r = load_raccolta(raccolta)
    cons = consolidate_raccolta(r)
    cons.confronto = confronta(r, cons)
    return cons


@dataclass(frozen=True)
class ConsolidaResult:
    """What `consolida` wrote: the master workbook and the consolidation it holds."""

    master: Path
    consolidation: Consolidation
    #: why last year's raccolta could not be compared, if it is linked but unusable
    note: tuple[str, ...] = field(default=())
    #: values changed by hand in Dati and now recorded as rettifiche
    rettifiche: tuple[Rettifica, ...] = ()
    #: values changed by hand in Dati and discarded (``scarta_modifiche``)
    modifiche_scartate: tuple[Modifica, ...] = ()


def master_modifiche(r: Raccolta, cons: Consolidation | None = None) -> list[Modifica]:
    """The values of the master's *Dati* changed by hand since `consolida` wrote them."""
    from piano_abitativo.app.decisioni import Modifica
    from piano_abitativo.master.edits import master_edits_on_disk
    from piano_abitativo.master.model import dati_header

    cons = cons or consolidation(r)
    names = {s.ente.codice: s.ente.nome_completo for s in cons.enti}
    return [
        Modifica(codice, names[codice], f.id, dati_header(f), old, new)
        for codice, f, old, new in master_edits_on_disk(cons, r.path)
    ]


def modifiche_text(r: Raccolta, modifiche: Sequence[Modifica]) -> str:
    """The Italian message that stops `consolida` when Dati was changed by hand."""
    from piano_abitativo.core.formatting import it_number
    from piano_abitativo.master.model import master_path

    def show(v: object) -> str:
        if v is None:
            return "vuoto"
        return it_number(v) if isinstance(v, int | float) else f"«{v}»"

    lines = [
        f"Nel foglio Dati di {master_path(r.path, r.anno, '.xlsm').name} "
        + (
            "c'è 1 valore modificato a mano"
            if len(modifiche) == 1
            else f"ci sono {len(modifiche)} valori modificati a mano"
        )
        + " dopo l'ultimo consolidamento; il consolidato non è stato riscritto:"
    ]
    lines += [
        f"- {m.denominazione}, {m.etichetta} ({m.campo}): {show(m.vecchio)} → {show(m.nuovo)}"
        for m in modifiche
    ]
    lines.append(
        f'Per registrarli come rettifiche: piano-abitativo consolida "{r.path}" '
        '--registra-rettifiche --motivo "…"; per scartarli e riscrivere i dati degli enti: '
        f'piano-abitativo consolida "{r.path}" --scarta-modifiche'
    )
    return "\n".join(lines)


def consolida(
    raccolta: RaccoltaLike,
    *,
    waiting: Callable[[str], None] | None = None,
    registra_rettifiche: bool = False,
    scarta_modifiche: bool = False,
    motivo: str | None = None,
) -> ConsolidaResult:
    """Write the master workbook (.xlsm with its buttons: tables a)–k) with totals as
    formulas, Cruscotto, Anomalie, Report) from the latest valid return of each ente.

    A value changed by hand in the master's *Dati* is never silently overwritten: when
    there are such changes `consolida` stops (`MasterEdited`, listing them) unless
    ``registra_rettifiche`` (they are recorded as rettifiche with `motivo`, then the
    master is written) or ``scarta_modifiche`` (the enti's values are written again)."""
    from piano_abitativo.app.decisioni import registra_rettifiche as registra
    from piano_abitativo.archive.decisions import ORIGINE_MASTER
    from piano_abitativo.consolidation.context import previous_notice
    from piano_abitativo.master.edits import begin_write, write_snapshot
    from piano_abitativo.master.xlsm import write_master_xlsm

    r = load_raccolta(raccolta)
    if registra_rettifiche and scarta_modifiche:
        raise RaccoltaError("--registra-rettifiche e --scarta-modifiche non vanno usati insieme")
    if registra_rettifiche and not (motivo or "").strip():
        raise RaccoltaError("con --registra-rettifiche indicare il motivo: --motivo TESTO")
    from piano_abitativo.archive import store as archive

    def write(cons: Consolidation) -> Path:
        begin_write(cons, r.path)  # killed after the master is written: still known
        target = write_master_xlsm(cons, r.path)
        write_snapshot(cons, r.path)
        return target

    recorded: tuple[Rettifica, ...] = ()
    # one consolidation, under the lock, both for the check of Dati and for the master
    # (the check alone costs a consolidation); only rettifiche to record, which take the
    # lock themselves, need another after them
    with archive.locked(r.path, waiting=waiting):
        cons = consolidation(r)
        modifiche = master_modifiche(r, cons)
        if modifiche and not (registra_rettifiche or scarta_modifiche):
            raise MasterEdited(modifiche_text(r, modifiche))
        if not (modifiche and registra_rettifiche):
            target = write(cons)
    if modifiche and registra_rettifiche:
        del cons  # not held while the next one is computed
        recorded = registra(r, modifiche, motivo=motivo or "", origine=ORIGINE_MASTER).rettifiche
        with archive.locked(r.path, waiting=waiting):
            cons = consolidation(r)
            target = write(cons)
    notice = previous_notice(r)
    discarded = tuple(modifiche) if scarta_modifiche else ()
    return ConsolidaResult(target, cons, (notice,) if notice else (), recorded, discarded)


def documento(
    raccolta: RaccoltaLike, *, pdf: bool = True, progress: Callable[[str], None] | None = None
) -> DocumentResult:
    """Write the document of the Piano annuale (.docx, and .pdf through LibreOffice when
    `pdf`) into the raccolta's ``documento/`` folder from the current consolidation, with
    the comparison with last year when the raccolta is linked to last year's (a link that
    cannot be used is one more note). `progress` gets each step, in Italian."""
    from piano_abitativo.consolidation.context import previous_notice
    from piano_abitativo.document.docx import write_document

    r = load_raccolta(raccolta)
    cons = consolidation(r)
    res = write_document(r, cons, confronto=cons.confronto, pdf=pdf, progress=progress)
    notice = previous_notice(r)
    review = tuple(review_notes(cons))
    notes = (*((notice,) if notice else ()), *review, *res.note)
    return replace(res, note=notes) if notes != res.note else res


def review_notes(cons: Consolidation) -> list[str]:
    """What the capofila must know before using the data (Italian): a damaged ledger,
    files in verifica, rettifiche no longer applied."""
    from piano_abitativo.archive.decisions import short_id

    out = [f"registro dell'archivio danneggiato, {d}" for d in cons.registro_danneggiato]
    out += [
        f"il file {h.receipt.nome} (ID {short_id(h.receipt.sha256)}) è in verifica e non è "
        f"nel documento: {h.motivo}"
        for h in cons.in_verifica
    ]
    out += [
        f"la rettifica di {rt.campo} dell'ente {rt.ente} non si applica più: l'ente ha "
        "inviato una versione più recente"
        for rt in cons.rettifiche_superate
    ]
    out += [
        f"il file {x.get('nome')} (ID {short_id(str(x.get('sha256')))}) non è nel documento: "
        "lettura non riuscita (il programma si è interrotto leggendo questo file)"
        for x in cons.letture_non_riuscite
    ]
    return out


def master_vuoto(output: PathLike) -> BlankMaster:
    """Write the blank master workbook with its buttons (the one in ``workbook/``) at
    `output` and the text of its macros in the ``vba/`` folder beside it."""
    from piano_abitativo.master.xlsm import write_blank_master

    return write_blank_master(_writable_file(output))


def modello_vuoto(output: PathLike) -> Path:
    """Write the blank standard template (the one in ``templates/``) at `output`."""
    from piano_abitativo.template.workbook import write_standard_template

    return write_standard_template(_writable_file(output))


def _writable_file(output: PathLike) -> Path:
    from piano_abitativo.core.errors import PathError

    p = Path(output)
    if p.is_dir():
        raise PathError(f"{p} è una cartella: indicare il nome del file da scrivere.")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise PathError(
                    f"{parent} è un file, non una cartella: indicare un altro percorso."
                )
            break
    return p
