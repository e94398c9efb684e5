"""What personalises a template: the raccolta's context, the variant and the
placeholders each ente's copy replaces."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from piano_abitativo.core.schema import (
    SCHEMA,
    TEMPLATE_MARK,
    TEMPLATE_VERSION,
    Schema,
)
from piano_abitativo.core.settings import Settings

PH_CODE = "{{ENTE_CODICE}}"
PH_NAME = "{{ENTE_DENOMINAZIONE}}"
PH_FULLNAME = "{{ENTE_NOME}}"
Variant = str  # "COMUNE" | "ALER" | "VUOTO"


@dataclass(frozen=True)
class TemplateContext:
    """What personalises a template beyond the ente: the collection it belongs to."""

    anno: int | None = None
    raccolta_id: str = ""
    ambito: str = ""
    scadenza: dt.date | None = None
    capofila: str = ""
    contatto: str = ""
    settings: Settings = field(default_factory=Settings)
    schema: Schema = SCHEMA


def ita_date(d: dt.date | None) -> str:
    return d.strftime("%d/%m/%Y") if d else "indicata nella lettera di richiesta"


def meta_values(variant: Variant, ctx: TemplateContext) -> dict[str, str]:
    """The hidden metadata of a variant (the ente's code is a placeholder)."""
    return {
        "modello": TEMPLATE_MARK,
        "versione_modello": TEMPLATE_VERSION,
        "raccolta_id": ctx.raccolta_id,
        "anno": str(ctx.anno or ""),
        "ente_codice": "" if variant == "VUOTO" else PH_CODE,
        "ente_tipo": "" if variant == "VUOTO" else variant,
        "ambito": ctx.ambito,
    }
