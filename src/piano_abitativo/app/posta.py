"""The mail commands of the capofila: invia, solleciti, esiti.

Each is a dry run unless ``davvero=True``: the messages are written to
``posta/uscita/`` of the raccolta and nothing leaves. With ``davvero`` they are sent
through the server of ``[posta]`` (the password from the environment or the system
keyring, never from a file); a message already sent, or whose sending was interrupted,
is not sent again unless ``ripeti``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from piano_abitativo.app.loading import RaccoltaLike, load_raccolta

if TYPE_CHECKING:
    from piano_abitativo.mail.send import SendResult

__all__ = ["esiti", "invia", "solleciti"]


def invia(
    raccolta: RaccoltaLike,
    *,
    davvero: bool = False,
    enti: Sequence[str] | None = None,
    limite: int | None = None,
    ripeti: bool = False,
    waiting: Callable[[str], None] | None = None,
) -> SendResult:
    """Send each ente (or only the codici in `enti`) its personalised template with the
    instructions (text in ``messaggi/invio.txt``); at most `limite` messages."""
    from piano_abitativo.mail import send as outbox

    r = load_raccolta(raccolta)
    return outbox.invia(
        r, enti=enti, davvero=davvero, limite=limite, ripeti=ripeti, waiting=waiting
    )


def solleciti(
    raccolta: RaccoltaLike,
    *,
    davvero: bool = False,
    enti: Sequence[str] | None = None,
    limite: int | None = None,
    ripeti: bool = False,
    oggi: dt.date | None = None,
    waiting: Callable[[str], None] | None = None,
) -> SendResult:
    """Remind the enti (or only the codici in `enti`) that have not answered or whose
    latest file has errors, at most once a day each (`oggi`: the day, today by default);
    at most `limite` messages."""
    from piano_abitativo.mail import send as outbox

    r = load_raccolta(raccolta)
    return outbox.solleciti(
        r, enti=enti, oggi=oggi, davvero=davvero, limite=limite, ripeti=ripeti, waiting=waiting
    )


def esiti(
    raccolta: RaccoltaLike,
    *,
    davvero: bool = False,
    limite: int | None = None,
    ripeti: bool = False,
    waiting: Callable[[str], None] | None = None,
) -> SendResult:
    """Tell each ente the outcome of its latest file (accepted, or what to fix) and ask
    for the file those who wrote without attaching it; at most `limite` messages."""
    from piano_abitativo.mail import send as outbox

    r = load_raccolta(raccolta)
    return outbox.esiti(r, davvero=davvero, limite=limite, ripeti=ripeti, waiting=waiting)
