"""What a raccolta's returns are validated against (`validation_context`), without the
archive or the consolidation: they are loaded only when a previous raccolta is linked
(its values are what R13–R15 compare with), so ``valida`` of a raccolta that is not
linked imports neither (tests/test_imports.py)."""

from __future__ import annotations

from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.validation.validate import ValidationContext


def validation_context(r: Raccolta, ente_atteso: str | None = None) -> ValidationContext:
    """What a return of `r` is checked against (last year's values included)."""
    anno_precedente = previous = None
    if r.precedente:
        from piano_abitativo.consolidation.context import previous_for_validation

        anno_precedente, previous = previous_for_validation(r)
    return ValidationContext(
        anno=r.anno,
        raccolta_id=r.id,
        registry=r.registry,
        settings=r.settings,
        ente_atteso=ente_atteso,
        previous=previous,
        anno_precedente=anno_precedente,
        schema=r.schema,
    )
