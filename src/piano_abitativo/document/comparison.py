"""The document's chapter comparing the plan with last year's (`Confronto`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from docx.enum.text import WD_ALIGN_PARAGRAPH

from piano_abitativo.consolidation.confronto import like_for_like
from piano_abitativo.core.schema import Kind
from piano_abitativo.document.measure import _signed, _value_text, number_text
from piano_abitativo.master.sheets import confronto_waiting_note, dati_header

if TYPE_CHECKING:
    from docx.text.paragraph import Paragraph

    from piano_abitativo.consolidation.changes import Confronto
    from piano_abitativo.consolidation.consolidate import Consolidation


class ChapterWriter(Protocol):
    """What a chapter needs of the document being built (`builder._Builder`)."""

    cons: Consolidation
    confronto: Confronto | None

    def heading(self, number: str, title: str, level: int) -> Paragraph: ...

    def para(self, *args: Any, **kwargs: Any) -> Paragraph: ...

    def table(self, *args: Any, **kwargs: Any) -> Any: ...


def write_comparison(self: ChapterWriter, number: str) -> None:
    """The chapter comparing the plan with last year's: the ambito's totals, each ente's
    changes, who answered in one year only."""
    confronto = self.confronto
    if confronto is None:  # pragma: no cover - called only with a comparison
        return
    prev, cur = confronto.anno_precedente, self.cons.anno
    self.heading(number, f"CONFRONTO CON IL PIANO {prev}", 2)
    where = (
        f" (raccolta nella cartella «{confronto.raccolta_precedente.name}»)"
        if confronto.raccolta_precedente.name
        else ""
    )
    self.para(
        f"Variazioni rispetto ai dati del Piano {prev}{where}. Una variazione "
        f"positiva è un aumento nel {cur}.",
        after=6,
    ).alignment = WD_ALIGN_PARAGRAPH.JUSTIFY
    # like with like: only the enti with a valid return in both years (while the raccolta
    # is open, last year's 26 against this year's first 6 is not a drop)
    same = like_for_like(confronto)
    rows = []
    for fid, (before, after) in same.totals.items():
        f = self.cons.schema.field_by_id.get(fid)
        if f is None:
            continue
        rows.append(
            [dati_header(f), number_text(before), number_text(after), _signed(after - before)]
        )
    if rows:
        self.para(
            f"Totali dei {same.both} enti presenti in entrambi gli anni",
            bold=True,
            keep=True,
            before=6,
            after=4,
        )
        self.table(
            ("Voce", str(prev), str(cur), "Variazione"),
            rows,
            (8.5, 2.5, 2.5, 3.0),
            numeric={1, 2, 3},
        )
        self.para(
            confronto_waiting_note(same.waiting, same.new, prev, cur),
            italic=True,
            before=4,
        )
    only_now = [
        e.ente.nome_completo
        for e in confronto.enti
        if e.answered_current and not e.answered_previous
    ]
    only_before = [
        e.ente.nome_completo
        for e in confronto.enti
        if e.answered_previous and not e.answered_current
    ]
    gone = [e.ente.nome_completo for e in confronto.solo_precedente]
    changes: list[list[str]] = []
    for e in confronto.enti:
        if not (e.answered_current and e.answered_previous):
            continue
        first = True
        for fc in e.fields:
            f = self.cons.schema.field_by_id.get(fc.field_id)
            if f is None or fc.previous == fc.current or f.kind is Kind.TEXT:
                continue
            delta = fc.delta
            changes.append(
                [
                    e.ente.nome_completo if first else "",
                    dati_header(f),
                    _value_text(fc.previous),
                    _value_text(fc.current),
                    _signed(delta) if delta is not None else "",
                ]
            )
            first = False
    self.para("Variazioni per ente", bold=True, keep=True, before=10, after=4)
    if changes:
        self.table(
            ("Ente", "Voce", str(prev), str(cur), "Variazione"),
            changes,
            (5.4, 5.6, 2.0, 2.0, 2.0),
            numeric={2, 3, 4},
            font=9,
        )
    else:
        self.para(
            "Nessuna variazione dei dati degli enti che hanno risposto in entrambi gli anni.",
            italic=True,
        )
    if only_now:
        self.para(
            f"Hanno trasmesso i dati nel {cur} ma non nel {prev}: " + ", ".join(only_now) + ".",
            before=6,
        )
    if only_before:
        self.para(
            f"Hanno trasmesso i dati nel {prev} ma non (ancora) nel {cur}: "
            + ", ".join(only_before)
            + ".",
            before=6,
        )
    if gone:
        self.para(
            f"Enti del Piano {prev} che non sono più nell'elenco degli enti del "
            f"{cur} (i loro dati sono compresi nei totali del {prev}): " + ", ".join(gone) + ".",
            before=6,
        )
