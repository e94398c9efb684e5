"""The command line, ``piano-abitativo COMANDO …``: a thin face over `piano_abitativo.app`.

Each command parses its arguments (`cli.parser`), calls one function of the application
layer and renders its result (`cli.terminal`, `cli.terminal_posta`). The modules of a command
are imported only once its arguments are parsed, so a wrong argument or ``--help`` costs
no start-up time.

Errors never reach the user as a traceback (`main`): a `PianoError` or an error of the
operating system is one line ``Errore: …`` on stderr; anything else is ``Errore
imprevisto: …`` with the path of ``piano-abitativo.log`` (in the raccolta when known),
where the traceback is written. Exit codes: 0 done, 1 done but some file has errors or
some message failed, 2 error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from piano_abitativo.cli.parser import parse
from piano_abitativo.core.errors import expected_message, log_unexpected, unexpected_message
from piano_abitativo.core.version import __version__

if TYPE_CHECKING:
    from rich.console import Console

    from piano_abitativo.app.importing import ImportaResult
    from piano_abitativo.archive.store import ImportOutcome, Receipt

#: exit code of an error (a wrong argument, a PianoError, an unexpected exception)
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` (default: sys.argv[1:]); the exit code. Never
    raises: argparse's exits (help, version, wrong arguments) become their code too."""
    try:
        args = parse(argv)
    except SystemExit as exc:  # --help, --version, or a wrong argument (already said)
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    try:
        return int(_dispatch(args))
    except KeyboardInterrupt:
        print("Interrotto.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        message = expected_message(exc)
        if message is None:
            log = log_unexpected(
                exc, what=f"comando {args.comando}", folder=_log_folder(args), version=__version__
            )
            message = unexpected_message(exc, log)
        else:
            message = f"Errore: {message}"
        _say(message)
        return EXIT_ERROR


def _say(message: str) -> None:
    """One line on stderr, even when stderr cannot encode it (a Windows console)."""
    stream = sys.stderr
    from piano_abitativo.cli.safe import safe

    encoding = getattr(stream, "encoding", None) or "utf-8"
    text = safe(message).encode(encoding, errors="replace").decode(encoding, errors="replace")
    with contextlib.suppress(OSError):  # stderr itself is gone: nothing more can be said
        print(text, file=stream)


def _log_folder(args: argparse.Namespace) -> Path | None:
    """The raccolta folder of the command, when it names one, for the log."""
    from piano_abitativo.core.raccolta import CONFIG_NAME

    for name in ("cartella", "raccolta"):
        value = getattr(args, name, None)
        if isinstance(value, Path):
            try:
                if (value / CONFIG_NAME).is_file():
                    return value
            except OSError:
                continue
    return None


def _console(*, stderr: bool = False) -> Console:
    """A console that never reads markup; untrusted text goes through `cli.safe.plain`."""
    from piano_abitativo.cli.safe import console

    return console(stderr=stderr)


def _print(con: Console, text: object, style: str = "", *, soft_wrap: bool = False) -> None:
    """`text` printed as written, its control characters escaped (`cli.safe`);
    `soft_wrap` leaves a long line to the terminal, so a path in it is never broken."""
    from piano_abitativo.cli.safe import plain

    con.print(plain(text, style), soft_wrap=soft_wrap)


def _json(data: Any) -> None:
    import json

    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def _dispatch(args: argparse.Namespace) -> int:
    handler = _HANDLERS[args.comando]
    return handler(args)


def _crea(args: argparse.Namespace) -> int:
    from piano_abitativo.app.commands import crea

    r = crea(
        args.cartella,
        anno=args.anno,
        registry_csv=args.enti,
        scadenza=args.scadenza,
        ambito=args.ambito,
        contatto=args.contatto,
        precedente=args.precedente,
    )
    _print(
        _console(),
        f"Raccolta {r.anno} creata in {r.path} ({len(r.registry)} enti). "
        f"Configurazione: {r.config_path}.\nPasso successivo: "
        f"piano-abitativo modelli {r.path}",
    )
    return 0


def _collega(args: argparse.Namespace) -> int:
    from piano_abitativo.app.commands import collega

    r = collega(args.cartella, precedente=args.precedente)
    _print(
        _console(),
        f"Raccolta {r.anno} collegata alla raccolta dell'anno precedente "
        f"({r.precedente_path}). I file già importati saranno confrontati con "
        "l'anno precedente al prossimo consolidamento.",
    )
    return 0


def _modelli(args: argparse.Namespace) -> int:
    from piano_abitativo.app.commands import modelli
    from piano_abitativo.app.loading import load_raccolta

    r = load_raccolta(args.cartella)
    paths = modelli(r)
    _print(_console(), f"{len(paths)} modelli scritti in {r.modelli_dir}.")
    return 0


def _valida(args: argparse.Namespace) -> int:
    from piano_abitativo.app.commands import valida
    from piano_abitativo.cli.skipped import skipped_files

    reports = valida(args.percorsi, raccolta=args.raccolta)
    skipped = skipped_files(args.percorsi, [Path(r.file) for r in reports])
    if args.json:
        _json(
            {
                "files": [r.to_json() for r in reports],
                "non_esaminati": [{"file": str(f), "motivo": why} for f, why in skipped],
            }
        )
    else:
        from piano_abitativo.cli.terminal import print_reports

        con = _console()
        if not reports:
            con.print("Nessun file .xlsx, .xlsm, .xls o .ods trovato.")
        print_reports(reports, con, skipped=skipped)
    return 1 if any(not r.valid for r in reports) else 0


def _importa(args: argparse.Namespace) -> int:
    from piano_abitativo.app.importing import importa
    from piano_abitativo.app.loading import load_raccolta

    r = load_raccolta(args.cartella)
    err = _console(stderr=True)
    res = importa(
        r,
        args.da or (),
        imap=args.imap,
        sposta=args.sposta,
        waiting=lambda m: _print(err, m),
    )
    if args.json:
        _json(
            _importa_json(res, bool(args.da))
            | {"registro_danneggiato": [d.to_json() for d in archive_damage(r)]}
        )
    else:
        con = _console()
        if args.da:
            from piano_abitativo.cli.terminal import print_import

            print_import(res, r, con)
            for o in res.outcomes:
                if o.receipt is not None and o.messaggio:
                    note = o.messaggio
                    prefix = f"{o.receipt.nome}: "
                    while note.startswith(prefix):
                        note = note[len(prefix) :]
                    _print(con, f"  {o.receipt.nome}: {note}")
        if res.posta is not None:
            from piano_abitativo.cli.terminal_posta import print_ingest

            print_ingest(res.posta, r, con)
        if res.receipts:  # what the new files need from the capofila (in verifica…)
            from piano_abitativo.app.commands import consolidation
            from piano_abitativo.cli.terminal_decisioni import print_attention

            print_attention(consolidation(r), con)
        else:
            for d in archive_damage(r):
                _print(con, f"Registro dell'archivio danneggiato, {d}.", "red")
        if res.esiti_preparati:
            _print(
                con,
                f"Risposte agli enti preparate, non inviate: {res.esiti_preparati} "
                f"in {res.cartella_esiti}. Per inviarle: piano-abitativo esiti "
                f"{r.path} --davvero",
            )
    return 0 if res.valid else 1


def archive_damage(r: Any) -> list[Any]:
    """The damaged lines of the raccolta's ledger (`archive.store.LedgerDamage`)."""
    from piano_abitativo.archive.store import read_ledger

    return read_ledger(r.path).damage


def _importa_json(res: ImportaResult, files: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if files:
        out["file"] = [_outcome_json(o) for o in res.outcomes]
        out["recuperati"] = [_receipt_json(x) for x in res.recovered]
        out["non_esaminati"] = [{"file": f, "motivo": why} for f, why in res.non_esaminati]
    if res.posta is not None:
        out["posta"] = res.posta.to_json()
    if res.esiti is not None:
        out["esiti_preparati"] = res.esiti_preparati
    return out


def _receipt_json(x: Receipt) -> dict[str, Any]:
    return {
        "id": x.sha256[:8],
        "sha256": x.sha256,
        "nome": x.nome,
        "ente": x.report.ente,
        "ricevuto_il": x.ricevuto_il.isoformat(),
        "fonte_data": x.fonte_data,
        "valido": x.report.valid,
        "errori": len(x.report.errors),
        "avvisi": len(x.report.warnings),
        "problemi": [p.to_json() for p in x.report.problems],
    }


def _outcome_json(o: ImportOutcome) -> dict[str, Any]:
    out: dict[str, Any] = {"origine": o.origine, "esito": o.esito}
    if o.messaggio:
        out["messaggio"] = o.messaggio
    if o.receipt is not None:
        out.update(_receipt_json(o.receipt))
    return out


def _posta(args: argparse.Namespace) -> int:
    from piano_abitativo.app import posta
    from piano_abitativo.app.loading import load_raccolta
    from piano_abitativo.cli.terminal_posta import print_send
    from piano_abitativo.mail.send import FALLITO

    r = load_raccolta(args.cartella)
    err = _console(stderr=True)
    options: dict[str, Any] = {
        "davvero": args.davvero,
        "limite": args.limite,
        "ripeti": args.ripeti,
        "waiting": lambda m: _print(err, m),
    }
    if args.comando == "invia":
        res = posta.invia(r, enti=args.enti, **options)
    elif args.comando == "solleciti":
        res = posta.solleciti(r, enti=args.enti, **options)
    else:
        res = posta.esiti(r, **options)
    if args.json:
        _json(res.to_json())
    else:
        con = _console()
        print_send(res, r, con)
        for d in archive_damage(r):
            _print(con, f"Registro dell'archivio danneggiato, {d}.", "red")
    return 1 if res.count(FALLITO) else 0


def _stato(args: argparse.Namespace) -> int:
    from piano_abitativo.app.stato import stato

    st = stato(args.cartella)
    if args.json:
        _json(st.to_json())
    else:
        from piano_abitativo.cli.terminal_posta import print_stato

        print_stato(st, _console())
    return 0


def _consolida(args: argparse.Namespace) -> int:
    from piano_abitativo.app.commands import consolida

    err = _console(stderr=True)
    res = consolida(
        args.cartella,
        waiting=lambda m: _print(err, m),
        registra_rettifiche=args.registra_rettifiche,
        scarta_modifiche=args.scarta_modifiche,
        motivo=args.motivo,
    )
    for note in res.note:
        _print(err, f"Avviso: {note}")
    if res.rettifiche:
        _print(err, f"Rettifiche registrate dal foglio Dati: {len(res.rettifiche)}.")
    if res.modifiche_scartate:
        _print(err, f"Modifiche del foglio Dati scartate: {len(res.modifiche_scartate)}.")
    if args.json:
        _json({"master": str(res.master), "totali": res.consolidation.totals})
    else:
        from piano_abitativo.cli.terminal import print_consolidation

        print_consolidation(res.consolidation, res.master, _console())
    return 0


def _esporta(args: argparse.Namespace) -> int:
    from piano_abitativo.app.dati import esporta

    res = esporta(
        args.cartella, formato=args.formato, output=args.output, separatore=args.separatore
    )
    enti = "1 ente" if res.righe == 1 else f"{res.righe} enti"
    _print(_console(), f"Dati esportati in {res.path} ({res.formato}, {enti}).")
    return 0


def _decisione(args: argparse.Namespace) -> int:
    from piano_abitativo.app import decisioni
    from piano_abitativo.cli.terminal_decisioni import print_decision

    if args.comando == "accetta":
        res = decisioni.accetta(args.cartella, args.id, motivo=args.motivo, ente=args.ente)
    elif args.comando == "scarta":
        res = decisioni.scarta(args.cartella, args.id, motivo=args.motivo)
    else:
        res = decisioni.ripristina(args.cartella, args.id, motivo=args.motivo)
    print_decision(res, _console())
    return 0


def _rettifica(args: argparse.Namespace) -> int:
    from piano_abitativo.app import decisioni
    from piano_abitativo.cli.terminal_decisioni import print_rettifica

    res = decisioni.rettifica(
        args.cartella, ente=args.ente, campo=args.campo, valore=args.valore, motivo=args.motivo
    )
    print_rettifica(res, _console())
    return 0 if all(r.valid for r in res.reports) else 1


def _documento(args: argparse.Namespace) -> int:
    from piano_abitativo.app.commands import documento
    from piano_abitativo.app.loading import load_raccolta
    from piano_abitativo.document.docx import TESTI_DIR

    r = load_raccolta(args.cartella)
    err = _console(stderr=True)
    res = documento(r, pdf=not args.senza_pdf, progress=lambda m: _print(err, m))
    if args.json:
        _json(res.to_json())
        return 0
    con = _console()
    _print(con, f"Documento del Piano annuale {r.anno} scritto:")
    for path in (res.docx, res.pdf):
        if path is not None:
            _print(con, f"  {path}")
    for note in res.note:
        _print(con, f"Nota: {note}")
    _print(
        con,
        f"I testi delle sezioni descrittive sono in {r.path / TESTI_DIR}: modificarli e "
        f"ripetere il comando.",
    )
    return 0


def _master_vuoto(args: argparse.Namespace) -> int:
    from piano_abitativo.app.commands import master_vuoto

    out = master_vuoto(args.output)
    _print(
        _console(),
        f"Cartella di lavoro riepilogativa vuota scritta in {out.master}; macro in {out.vba_dir}.",
    )
    return 0


def _modello_vuoto(args: argparse.Namespace) -> int:
    from piano_abitativo.app.commands import modello_vuoto

    path = modello_vuoto(args.output)
    _print(_console(), f"Modello standard scritto in {path}.")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from piano_abitativo.cli.terminal import print_demo, step_progress
    from piano_abitativo.simulation.demo import run_demo

    con = _console()
    with step_progress(con) as progress:
        res = run_demo(
            args.cartella, log=lambda m: _print(con, m, soft_wrap=True), progress=progress
        )
    print_demo(res, con)
    return 0


_HANDLERS = {
    "crea": _crea,
    "collega": _collega,
    "modelli": _modelli,
    "valida": _valida,
    "importa": _importa,
    "invia": _posta,
    "solleciti": _posta,
    "esiti": _posta,
    "stato": _stato,
    "consolida": _consolida,
    "esporta": _esporta,
    "accetta": _decisione,
    "scarta": _decisione,
    "ripristina": _decisione,
    "rettifica": _rettifica,
    "documento": _documento,
    "master-vuoto": _master_vuoto,
    "modello-vuoto": _modello_vuoto,
    "demo": _demo,
}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
