"""`importa`: the returned files (and the mailbox's new messages) archived, validated and
recorded; the replies to the enti prepared as drafts. Apart from `app.commands` because it
needs the archive's store, which ``valida`` does not (still found as
``app.commands.importa``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from piano_abitativo.app.loading import PathLike, RaccoltaLike, existing_paths, load_raccolta
from piano_abitativo.archive import store as archive
from piano_abitativo.core.errors import RaccoltaError

if TYPE_CHECKING:
    from piano_abitativo.mail.imap import IngestResult
    from piano_abitativo.mail.send import SendResult


@dataclass
class ImportaResult(archive.ImportResult):
    """What `importa` did: the files given (`outcomes`, `recovered`, as
    `archive.ImportResult`), the mailbox read (`posta`, with ``imap``) and the replies to
    the enti prepared as drafts (`esiti`, None when nothing new came in)."""

    posta: IngestResult | None = None
    esiti: SendResult | None = None
    #: whether something new came in (a workbook, or a message without its file)
    nuovo: bool = False

    @property
    def receipts(self) -> list[archive.Receipt]:
        """Every return recorded now, from files and from the mailbox."""
        return [*self.imported, *(self.posta.receipts if self.posta else [])]

    @property
    def valid(self) -> bool:
        """Whether every return recorded now is valid."""
        return all(x.report.valid for x in self.receipts)

    @property
    def esiti_preparati(self) -> int:
        """How many replies to the enti were written to the outbox (not sent)."""
        from piano_abitativo.mail.send import PROVA

        return self.esiti.count(PROVA) if self.esiti is not None else 0

    @property
    def cartella_esiti(self) -> Path | None:
        """Where the replies prepared are (the raccolta's outbox), None if none was."""
        if self.esiti is None:
            return None
        return next((o.eml.parent for o in self.esiti.outcomes if o.eml is not None), None)


def importa(
    raccolta: RaccoltaLike,
    paths: Sequence[PathLike] = (),
    *,
    imap: bool = False,
    sposta: bool = False,
    esiti: bool = True,
    progress: Callable[[Path], None] | None = None,
    waiting: Callable[[str], None] | None = None,
) -> ImportaResult:
    """Archive, validate and record the returned files found at `paths` (files or folders,
    mail messages .eml/.msg and signed .p7m included) and, with ``imap``, the new messages
    of the mailbox configured in ``[posta]`` (read-only; with ``sposta`` the imported ones
    are moved to ``cartella_importati``). The ente is recognised from the content.

    When something new came in and ``esiti`` is true, the replies to the enti (outcome of
    their file, or a request for the missing file) are prepared as drafts in
    ``posta/uscita/``: they leave only with ``esiti(..., davvero=True)``. `progress` gets
    each file as it is imported; `waiting` what the raccolta's lock is waiting for."""
    from piano_abitativo.mail import send as outbox
    from piano_abitativo.mail.folder import import_files

    r = load_raccolta(raccolta)
    if not paths and not imap:
        raise RaccoltaError("indicare cosa importare: --da PERCORSO... e/o --imap")
    if sposta and not imap:
        raise RaccoltaError("--sposta vale solo con --imap")
    files = existing_paths(paths)
    got = (
        import_files(r, files, progress=progress, waiting=waiting)
        if files
        else archive.ImportResult()
    )
    res = ImportaResult(got.outcomes, got.recovered, got.non_esaminati)
    res.nuovo = any(o.esito == "importato" for o in got.outcomes)
    if imap:
        from piano_abitativo.mail.imap import import_imap

        res.posta = import_imap(r, sposta=sposta, waiting=waiting)
        news = [*res.posta.messages, *res.posta.recuperati]
        res.nuovo = res.nuovo or any(m.esito in ("importato", "senza allegati") for m in news)
    if esiti and res.nuovo:
        res.esiti = outbox.esiti(r, waiting=waiting)
    return res
