"""Command line: thin adapters over the core, messages in Italian."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from piano_abitativo import __version__
from piano_abitativo.app import commands as actions
from piano_abitativo.app import stato as status
from piano_abitativo.app.commands import crea
from piano_abitativo.archive import store as archive
from piano_abitativo.cli.render import (
    print_consolidation,
    print_demo,
    print_import,
    print_reports,
    step_progress,
)
from piano_abitativo.cli.render_posta import print_ingest, print_send, print_stato
from piano_abitativo.consolidation import context
from piano_abitativo.consolidation.context import validation_context
from piano_abitativo.core import raccolta as rc
from piano_abitativo.core.registry import RegistryError
from piano_abitativo.mail import imap
from piano_abitativo.mail import send as mail
from piano_abitativo.mail.outbox import outbox_dir
from piano_abitativo.master.xlsm import BLANK_MASTER_NAME, write_blank_master
from piano_abitativo.reading.reader import iter_workbook_files
from piano_abitativo.simulation.demo import run_demo
from piano_abitativo.template.workbook import (
    STANDARD_TEMPLATE_NAME,
    generate_templates,
    write_standard_template,
)
from piano_abitativo.validation.validate import ValidationContext, validate_file


class _ItalianParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        message = (
            message.replace(
                "the following arguments are required", "mancano gli argomenti obbligatori"
            )
            .replace("invalid choice", "scelta non valida")
            .replace("unrecognized arguments", "argomenti non riconosciuti")
            .replace("expected one argument", "serve un valore")
            .replace("invalid int value", "numero intero non valido")
        )
        self.print_usage(sys.stderr)
        self.exit(2, f"Errore: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _ItalianParser(
        prog="piano-abitativo",
        description="Raccolta dei dati del Piano annuale dell'offerta abitativa pubblica e "
        "sociale (L.R. 16/2016, R.R. 4/2017): modelli per gli enti, validazione "
        "dei file restituiti.",
        add_help=False,
    )
    p.add_argument("-h", "--help", action="help", help="mostra questo aiuto ed esce")
    p.add_argument(
        "--version",
        action="version",
        version=f"piano-abitativo {__version__}",
        help="mostra la versione ed esce",
    )
    sub = p.add_subparsers(dest="comando", metavar="COMANDO", parser_class=_ItalianParser)
    sub.required = True

    def cmd(name: str, text: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=text, description=text, add_help=False)
        c.add_argument("-h", "--help", action="help", help="mostra questo aiuto ed esce")
        return c

    c = cmd("crea", "Crea la cartella di una nuova raccolta (configurazione ed elenco enti).")
    c.add_argument("cartella", type=Path, help="cartella della raccolta (nuova)")
    c.add_argument("--anno", type=int, required=True, help="anno del Piano, es. 2026")
    c.add_argument(
        "--enti",
        type=Path,
        metavar="FILE.csv",
        help="elenco degli enti (CSV); se omesso, l'Ambito Cremasco",
    )
    c.add_argument("--scadenza", metavar="GG/MM/AAAA", help="termine per la risposta")
    c.add_argument("--ambito", help="nome dell'ambito territoriale")
    c.add_argument("--contatto", default="", help="chi contattare, per le istruzioni")
    c.add_argument(
        "--precedente",
        type=Path,
        metavar="CARTELLA",
        help="raccolta dell'anno precedente, per il confronto ente per ente",
    )

    c = cmd(
        "collega",
        "Collega la raccolta dell'anno precedente, per confrontare i dati di "
        "ogni ente con quelli dell'anno prima (avvisi R13-R15 e variazioni "
        "nel riepilogo); aggiorna raccolta.toml lasciando il resto com'è.",
    )
    c.add_argument("cartella", type=Path, help="cartella della raccolta")
    c.add_argument(
        "--precedente",
        type=Path,
        required=True,
        metavar="CARTELLA",
        help="cartella della raccolta dell'anno precedente",
    )

    c = cmd("modelli", "Genera un modello personalizzato per ogni ente in CARTELLA/modelli/.")
    c.add_argument("cartella", type=Path, help="cartella della raccolta")

    c = cmd("valida", "Valida i file restituiti dagli enti (file o cartelle).")
    c.add_argument(
        "percorsi",
        type=Path,
        nargs="+",
        metavar="PERCORSO",
        help="file .xlsx/.xlsm/.xls/.ods o cartelle che li contengono",
    )
    c.add_argument(
        "--raccolta",
        type=Path,
        metavar="CARTELLA",
        help="raccolta di riferimento (se omessa: quella che contiene i file)",
    )
    c.add_argument("--json", action="store_true", help="risultato in formato JSON")

    c = cmd(
        "importa",
        "Archivia e valida i file restituiti dagli enti (file o cartelle): "
        "ogni file è conservato nell'archivio della raccolta, l'ente è "
        "riconosciuto dal contenuto, non dal nome del file.",
    )
    c.add_argument("cartella", type=Path, help="cartella della raccolta")
    c.add_argument(
        "--da",
        type=Path,
        nargs="+",
        metavar="PERCORSO",
        help="file o cartelle da importare (anche messaggi .eml/.msg e file firmati .p7m)",
    )
    c.add_argument(
        "--imap",
        action="store_true",
        help="legge anche la casella di posta configurata in [posta], senza modificarla",
    )
    c.add_argument(
        "--sposta",
        action="store_true",
        help="con --imap: sposta i messaggi importati nella cartella "
        "cartella_importati (nessun messaggio viene cancellato)",
    )
    c.add_argument("--json", action="store_true", help="risultato in formato JSON")

    for name, text in (
        (
            "invia",
            "Invia a ogni ente il suo modello personalizzato, con le istruzioni "
            "(testo in CARTELLA/messaggi/invio.txt).",
        ),
        (
            "solleciti",
            "Sollecita gli enti che non hanno risposto o il cui ultimo file ha "
            "errori, elencandoli (al massimo un sollecito al giorno per ente).",
        ),
        (
            "esiti",
            "Comunica a ogni ente l'esito del suo ultimo file (accettato, o cosa "
            "correggere) e chiede il file a chi ha scritto senza allegarlo.",
        ),
    ):
        c = cmd(
            name,
            text + " Senza --davvero è una prova: i messaggi sono scritti in "
            "CARTELLA/posta/uscita/ e non inviati.",
        )
        c.add_argument("cartella", type=Path, help="cartella della raccolta")
        c.add_argument(
            "--davvero", action="store_true", help="invia davvero (senza: solo prova, nulla parte)"
        )
        c.add_argument("--limite", type=int, metavar="N", help="invia al massimo N messaggi")
        c.add_argument(
            "--ripeti",
            action="store_true",
            help="invia di nuovo anche i messaggi già inviati o il cui invio è stato interrotto",
        )
        if name != "esiti":
            c.add_argument(
                "--enti",
                nargs="+",
                metavar="CODICE",
                help="solo questi enti (codici dell'elenco enti)",
            )
        c.add_argument("--json", action="store_true", help="risultato in formato JSON")

    c = cmd(
        "stato",
        "Mostra per ogni ente se ha risposto, quando (ora certificata PEC se "
        "c'è), con quali errori, e i solleciti inviati.",
    )
    c.add_argument("cartella", type=Path, help="cartella della raccolta")
    c.add_argument("--json", action="store_true", help='risultato in formato JSON: {"enti": [...]}')

    c = cmd(
        "consolida",
        "Scrive la cartella di lavoro riepilogativa (tabelle a)–k) con "
        "totali calcolati da formule, cruscotto, report programmazione).",
    )
    c.add_argument("cartella", type=Path, help="cartella della raccolta")
    c.add_argument(
        "--json", action="store_true", help="stampa in JSON il percorso del file e i totali"
    )

    c = cmd(
        "documento",
        "Scrive il documento del Piano annuale da approvare in Assemblea dei "
        "sindaci: CARTELLA/documento/Piano_annuale_offerta_abitativa_ANNO"
        ".docx e, se LibreOffice è installato, il .pdf. I testi delle "
        "sezioni descrittive sono in CARTELLA/testi/ e si possono "
        "modificare.",
    )
    c.add_argument("cartella", type=Path, help="cartella della raccolta")
    c.add_argument(
        "--senza-pdf", action="store_true", help="scrive solo il .docx, senza la conversione in PDF"
    )
    c.add_argument(
        "--json",
        action="store_true",
        help='stampa in JSON {"docx": percorso, "pdf": percorso o null, "note": [...]}',
    )

    c = cmd(
        "master-vuoto",
        "Scrive la cartella di lavoro riepilogativa vuota con i pulsanti "
        "(quella in workbook/) e il testo delle sue macro "
        "(workbook/vba/).",
    )
    c.add_argument(
        "--output",
        type=Path,
        default=Path("workbook") / BLANK_MASTER_NAME,
        help=f"file da scrivere (predefinito: workbook/{BLANK_MASTER_NAME}); le "
        "macro vanno nella sottocartella vba/ della stessa cartella",
    )

    c = cmd("modello-vuoto", "Scrive il modello standard vuoto (quello in templates/).")
    c.add_argument(
        "--output",
        type=Path,
        default=Path("templates") / STANDARD_TEMPLATE_NAME,
        help=f"file da scrivere (predefinito: templates/{STANDARD_TEMPLATE_NAME})",
    )

    c = cmd(
        "demo",
        "Dimostrazione completa sui dati dell'Ambito Cremasco 2025, senza rete e "
        "senza inviare nulla: raccolta, modelli, risposte arrivate per PEC ed "
        "e-mail, importazione, validazione, cartella riepilogativa, documento.",
    )
    c.add_argument(
        "cartella",
        type=Path,
        nargs="?",
        default=Path("demo-piano-abitativo"),
        help="cartella della demo (predefinita: ./demo-piano-abitativo)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(_dispatch(args))
    except (rc.RaccoltaError, RegistryError) as exc:
        print(f"Errore: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrotto.", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    con = Console()
    if args.comando == "crea":
        scad = rc.parse_date(args.scadenza) if args.scadenza else None
        r = crea(
            args.cartella,
            anno=args.anno,
            registry_csv=args.enti,
            scadenza=scad,
            ambito=args.ambito,
            contatto=args.contatto,
            precedente=args.precedente,
        )
        con.print(
            f"Raccolta {r.anno} creata in {r.path} ({len(r.registry)} enti). "
            f"Configurazione: {r.config_path}.\nPasso successivo: "
            f"piano-abitativo modelli {r.path}"
        )
        return 0
    if args.comando == "collega":
        r = rc.collega(args.cartella, args.precedente)
        con.print(
            f"Raccolta {r.anno} collegata alla raccolta dell'anno precedente "
            f"({r.precedente_path}). I file già importati saranno confrontati con "
            "l'anno precedente al prossimo consolidamento."
        )
        return 0
    if args.comando == "modelli":
        r = rc.load(args.cartella)
        paths = generate_templates(r)
        con.print(f"{len(paths)} modelli scritti in {r.modelli_dir}.")
        return 0
    if args.comando == "valida":
        return _valida(args, con)
    if args.comando == "importa":
        return _importa(args, con)
    if args.comando in ("invia", "solleciti", "esiti"):
        return _posta(args, con)
    if args.comando == "stato":
        st = status.stato(rc.load(args.cartella))
        if args.json:
            sys.stdout.write(json.dumps(st.to_json(), ensure_ascii=False, indent=2) + "\n")
        else:
            print_stato(st, con)
        return 0
    if args.comando == "consolida":
        return _consolida(args, con)
    if args.comando == "documento":
        return _documento(args, con)
    if args.comando == "master-vuoto":
        out = write_blank_master(args.output)
        con.print(
            f"Cartella di lavoro riepilogativa vuota scritta in {out.master}; macro in "
            f"{out.vba_dir}."
        )
        return 0
    if args.comando == "modello-vuoto":
        path = write_standard_template(args.output)
        con.print(f"Modello standard scritto in {path}.")
        return 0
    if args.comando == "demo":
        with step_progress(con) as progress:
            res = run_demo(args.cartella, log=con.print, progress=progress)
        print_demo(res, con)
        return 0
    raise AssertionError(args.comando)  # pragma: no cover


def _valida(args: argparse.Namespace, con: Console) -> int:
    racc_dir = args.raccolta
    if racc_dir is None:
        for p in args.percorsi:
            racc_dir = rc.find_raccolta(p if p.is_dir() else p.parent)
            if racc_dir:
                break
    ctx = validation_context(rc.load(racc_dir)) if racc_dir else ValidationContext()
    files = list(iter_workbook_files(args.percorsi))
    reports = [validate_file(f, ctx, display_name=str(f)) for f in files]
    if args.json:
        sys.stdout.write(
            json.dumps({"files": [r.to_json() for r in reports]}, ensure_ascii=False, indent=2)
            + "\n"
        )
    else:
        if not files:
            con.print("Nessun file .xlsx, .xlsm, .xls o .ods trovato.")
        print_reports(reports, con)
    return 1 if any(not r.valid for r in reports) else 0


def _importa(args: argparse.Namespace, con: Console) -> int:
    r = rc.load(args.cartella)
    if not args.da and not args.imap:
        raise rc.RaccoltaError("indicare cosa importare: --da PERCORSO... e/o --imap")
    if args.sposta and not args.imap:
        raise rc.RaccoltaError("--sposta vale solo con --imap")
    for p in args.da or []:
        if not p.exists():
            raise rc.RaccoltaError(f"{p} non esiste")
    err = Console(stderr=True)
    out: dict[str, Any] = {}
    bad = False
    if args.da:
        res = actions.importa(r, args.da, waiting=lambda m: err.print(m))
        bad = any(not rc_.report.valid for rc_ in res.imported)
        out = {
            "file": [_outcome_json(o) for o in res.outcomes],
            "recuperati": [_receipt_json(rc_) for rc_ in res.recovered],
        }
        if not args.json:
            print_import(res, r, con)
            for o in res.outcomes:
                if o.receipt is not None and o.messaggio:
                    con.print(f"  {o.receipt.nome}: {o.messaggio}")
    if args.imap:
        got = imap.import_imap(r, sposta=args.sposta, waiting=lambda m: err.print(m))
        bad = bad or any(not rc_.report.valid for rc_ in got.receipts)
        out["posta"] = got.to_json()
        if not args.json:
            print_ingest(got, r, con)
    if _something_new(out):  # the replies to the enti, as drafts in posta/uscita/
        prep = mail.esiti(r, waiting=lambda m: err.print(m))
        out["esiti_preparati"] = prep.count(mail.PROVA)
        if not args.json and prep.count(mail.PROVA):
            con.print(
                f"Risposte agli enti preparate, non inviate: {prep.count(mail.PROVA)} "
                f"in {outbox_dir(r.path)}. Per inviarle: piano-abitativo esiti "
                f"{r.path} --davvero"
            )
    if args.json:
        sys.stdout.write(json.dumps(out, ensure_ascii=False, indent=2) + "\n")
    return 1 if bad else 0


def _something_new(out: dict[str, Any]) -> bool:
    news = [f["esito"] for f in out.get("file", [])]
    posta = out.get("posta", {})
    news += [m["esito"] for m in [*posta.get("messaggi", []), *posta.get("recuperati", [])]]
    return any(e in ("importato", "senza allegati") for e in news)


def _posta(args: argparse.Namespace, con: Console) -> int:
    r = rc.load(args.cartella)
    err = Console(stderr=True)
    kw: dict[str, Any] = {
        "davvero": args.davvero,
        "limite": args.limite,
        "ripeti": args.ripeti,
        "waiting": lambda m: err.print(m),
    }
    if args.comando == "invia":
        res = mail.invia(r, enti=args.enti, **kw)
    elif args.comando == "solleciti":
        res = mail.solleciti(r, enti=args.enti, **kw)
    else:
        res = mail.esiti(r, **kw)
    if args.json:
        sys.stdout.write(json.dumps(res.to_json(), ensure_ascii=False, indent=2) + "\n")
    else:
        print_send(res, r, con)
    return 1 if res.count(mail.FALLITO) else 0


def _receipt_json(rc_: archive.Receipt) -> dict[str, Any]:
    return {
        "sha256": rc_.sha256,
        "nome": rc_.nome,
        "ente": rc_.report.ente,
        "ricevuto_il": rc_.ricevuto_il.isoformat(),
        "fonte_data": rc_.fonte_data,
        "valido": rc_.report.valid,
        "errori": len(rc_.report.errors),
        "avvisi": len(rc_.report.warnings),
        "problemi": [p.to_json() for p in rc_.report.problems],
    }


def _outcome_json(o: archive.ImportOutcome) -> dict[str, Any]:
    out: dict[str, Any] = {"origine": o.origine, "esito": o.esito}
    if o.messaggio:
        out["messaggio"] = o.messaggio
    if o.receipt is not None:
        out.update(_receipt_json(o.receipt))
    return out


def _consolida(args: argparse.Namespace, con: Console) -> int:
    r = rc.load(args.cartella)
    err = Console(stderr=True)
    res = actions.consolida(r, waiting=lambda m: err.print(m))
    notice = context.previous_notice(r)
    if notice:
        err.print(f"Avviso: {notice}", markup=False)
    if args.json:
        out = {"master": str(res.master), "totali": res.consolidation.totals}
        sys.stdout.write(json.dumps(out, ensure_ascii=False, indent=2) + "\n")
    else:
        print_consolidation(res.consolidation, res.master, con)
    return 0


def _documento(args: argparse.Namespace, con: Console) -> int:
    from piano_abitativo.document.docx import TESTI_DIR

    r = rc.load(args.cartella)
    err = Console(stderr=True)
    res = actions.documento(
        r, pdf=not args.senza_pdf, progress=lambda m: err.print(m, markup=False)
    )
    if args.json:
        sys.stdout.write(json.dumps(res.to_json(), ensure_ascii=False, indent=2) + "\n")
        return 0
    con.print(f"Documento del Piano annuale {r.anno} scritto:", markup=False)
    for path in (res.docx, res.pdf):
        if path is not None:
            con.print(f"  {path}", markup=False, highlight=False)
    for note in res.note:
        con.print(f"Nota: {note}", markup=False, highlight=False)
    con.print(
        f"I testi delle sezioni descrittive sono in {r.path / TESTI_DIR}: modificarli e "
        f"ripetere il comando.",
        markup=False,
        highlight=False,
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
