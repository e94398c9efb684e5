"""What the capofila decided and corrected, in the master: the sheet *Decisioni e
rettifiche* (every record, in order) and the rows of *Anomalie* about files in verifica,
rettifiche no longer applied, senders not in the registry, PEC envelopes that do not
certify and a damaged ledger."""

from __future__ import annotations

import math

from piano_abitativo.archive.decisions import ACCETTA, RIPRISTINA, SCARTA, short_id
from piano_abitativo.archive.store import Receipt
from piano_abitativo.consolidation.consolidate import MITTENTE_NON_VERIFICATO, Consolidation
from piano_abitativo.core.problems import Problem, problem
from piano_abitativo.master.model import (
    SHEET_DECISIONI,
    TABLE_DECISIONI,
    CellSink,
    SheetLayout,
    TableSpec,
    Value,
    _fit_widths,
    _local,
    cell_value,
    start_list_sheet,
)

DECISIONI_HEADER_ROW = 2
DECISIONI_HEADERS = (
    "Data e ora",
    "Decisione",
    "Ente",
    "File (ID)",
    "Campo",
    "Valore dell'ente",
    "Valore corretto",
    "Motivo",
    "Utente",
    "Stato",
)
_AZIONI = {ACCETTA: "Accettazione", SCARTA: "Scarto", RIPRISTINA: "Ripristino"}

#: verification levels of a PEC envelope that do not certify its time
PEC_NOT_CERTIFIED = ("non_valida", "assente")


def _files(cons: Consolidation) -> dict[str, str]:
    """sha256 → file name of every file the consolidation knows."""
    out: dict[str, str] = {}
    for s in cons.enti:
        for v in s.versions:
            out[v.sha256] = v.nome
        for h in s.in_verifica:
            out[h.receipt.sha256] = h.receipt.nome
    for rc in cons.non_attribuiti:
        out[rc.sha256] = rc.nome
    for rc, _ in cons.scartati:
        out[rc.sha256] = rc.nome
    return out


def decisioni_sheet(cons: Consolidation, sink: CellSink | None = None) -> SheetLayout:
    sh = start_list_sheet(
        SHEET_DECISIONI,
        DECISIONI_HEADER_ROW,
        "Decisioni e rettifiche del Comune capofila",
        "Ogni decisione sui file ricevuti e ogni correzione di un valore, in ordine, con chi, "
        "quando e perché. Nulla si cancella: una decisione si annulla con un'altra.",
        DECISIONI_HEADERS,
        sink,
    )
    names = {s.ente.codice: s.ente.nome_completo for s in cons.enti}
    files = _files(cons)
    used = {s.ente.codice: s.used.sha256 for s in cons.enti if s.used is not None}
    rows: list[tuple[int, tuple[Value, ...]]] = []
    for d in cons.decisioni.decisions:
        ident = f"{short_id(d.sha256)} — {files.get(d.sha256, '')}"
        rows.append(
            (
                d.seq,
                (
                    _local(d.il),
                    _AZIONI.get(d.azione, d.azione),
                    names.get(d.ente or "", d.ente),
                    ident,
                    None,
                    None,
                    None,
                    d.motivo,
                    d.utente,
                    None,
                ),
            )
        )
    for rt in cons.decisioni.rettifiche:
        applied = used.get(rt.ente) == rt.versione
        rows.append(
            (
                rt.seq,
                (
                    _local(rt.il),
                    "Rettifica" + (" (dal foglio Dati)" if rt.origine != "comando" else ""),
                    names.get(rt.ente, rt.ente),
                    f"{short_id(rt.versione)} — {files.get(rt.versione, '')}",
                    rt.campo,
                    cell_value(rt.valore_precedente),
                    cell_value(rt.valore),
                    rt.motivo,
                    rt.utente,
                    "applicata" if applied else "non più applicata (versione più recente)",
                ),
            )
        )
    r = DECISIONI_HEADER_ROW
    for _, values in sorted(rows, key=lambda x: x[0]):
        r += 1
        for c, v in enumerate(values):
            style = "datetime_s" if c == 0 else ("wrap" if c == 7 else "text")
            if c in (5, 6) and isinstance(v, int | float):
                style = "general"
            sh.put(r, c, v, style=style)
    if not rows:
        r += 1
        sh.put(r, 0, "Nessuna decisione né rettifica", style="empty")
    last_col = len(DECISIONI_HEADERS) - 1
    sh.tables.append(
        TableSpec(TABLE_DECISIONI, DECISIONI_HEADER_ROW, 0, r, last_col, DECISIONI_HEADERS)
    )
    _fit_widths(sh, {0: 19, 2: 34, 3: 60, 7: 60, 9: 34}, header_cap=14)
    return sh


def review_rows(cons: Consolidation) -> list[tuple[str, Receipt | None, Problem]]:
    """The Anomalie rows of the capofila's review (see the module)."""
    rows: list[tuple[str, Receipt | None, Problem]] = []
    names = {s.ente.codice: s.ente.nome_completo for s in cons.enti}
    for d in cons.registro_danneggiato:
        rows.append(
            ("Archivio", None, problem("D03", "registro.jsonl", f"Registro danneggiato, {d}"))
        )
    for x in cons.letture_non_riuscite:
        nome = str(x.get("nome") or "")
        msg = (
            f"File {nome} (ID {short_id(str(x.get('sha256')))}, da {x.get('origine')}): "
            "lettura non riuscita (il programma si è interrotto leggendo questo file)"
        )
        rows.append(("Archivio", None, problem("D08", nome, msg)))
    for h in cons.in_verifica:
        rc = h.receipt
        msg = f"File {rc.nome} (ID {short_id(rc.sha256)}) in verifica: {h.motivo}"
        rows.append((names.get(h.ente or "", str(h.ente)), rc, problem("D01", rc.nome, msg)))
    for rt in cons.rettifiche_superate:
        msg = (
            f"La rettifica di {rt.campo} ({rt.valore}; motivo: {rt.motivo}) correggeva la "
            f"versione {short_id(rt.versione)}, che non è più quella usata"
        )
        rows.append((names.get(rt.ente, rt.ente), None, problem("D02", "", msg, field=rt.campo)))
    for s in cons.enti:
        for fid, v in s.values.items():
            if isinstance(v, float) and not math.isfinite(v):
                msg = f"Il valore di {fid} non è un numero finito ({v}): non è stato usato"
                rows.append((s.ente.nome_completo, s.used, problem("D09", "", msg, field=fid)))
    unverified = 0
    for s in cons.enti:
        last = s.latest
        level = last.extra.get("verifica_pec") if last is not None else None
        if last is not None and level in PEC_NOT_CERTIFIED:
            msg = (
                f"La busta PEC di {last.nome} non ha una firma valida del gestore ({level}): "
                f"vale l'orario di arrivo, {_local(last.ricevuto_il):%d/%m/%Y %H:%M}"
            )
            rows.append((s.ente.nome_completo, last, problem("D06", last.nome, msg)))
        unverified += level == "gestore_non_verificato"
        used = s.used
        if used is None:
            continue
        if s.mittente_sconosciuto:
            who = used.extra.get("mittente") or "senza indirizzo"
            msg = f"La versione usata è arrivata da {who}, che non è un indirizzo dell'ente"
            if s.mittente_usata == MITTENTE_NON_VERIFICATO:
                msg = (
                    "La versione usata è arrivata in una busta PEC senza una firma valida "
                    f"del gestore: il mittente dichiarato ({who}) non è verificato"
                )
            rows.append((s.ente.nome_completo, used, problem("D04", used.nome, msg)))
        for rt in s.rettifiche:
            msg = f"{rt.campo}: {rt.valore_precedente} → {rt.valore} (motivo: {rt.motivo})"
            rows.append(
                (s.ente.nome_completo, used, problem("D05", used.nome, msg, field=rt.campo))
            )
    if unverified:
        msg = (
            f"{unverified} buste PEC hanno una firma valida, ma nessun elenco dei gestori è "
            "configurato ([posta] gestori_pec): il gestore non è stato verificato"
        )
        rows.append(("Tutti gli enti", None, problem("D07", "raccolta.toml", msg)))
    return rows
