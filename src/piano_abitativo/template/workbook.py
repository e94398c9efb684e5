"""The per-ente Excel template: macro-free .xlsx, native data validation, locked layout,
live self-checks that work in Excel 2010+ and LibreOffice 7.4, hidden metadata.

The pieces live in `context` (what personalises a template), `formulas` (the check
rows, rendered from the rule book), `sheets` (the sheets) and `factory` (variants and
personalised copies); this module is their public face.
"""

from __future__ import annotations

from piano_abitativo.core.layout import LAYOUT, NOT_APPLICABLE
from piano_abitativo.template.context import TemplateContext, Variant
from piano_abitativo.template.factory import (
    STANDARD_TEMPLATE_NAME,
    TemplateFactory,
    _without_cached_results,
    build_standard_template,
    build_variant,
    context_for,
    generate_templates,
    template_filename,
    write_standard_template,
    write_templates,
)

__all__ = [
    "LAYOUT",
    "NOT_APPLICABLE",
    "STANDARD_TEMPLATE_NAME",
    "TemplateContext",
    "TemplateFactory",
    "Variant",
    "_without_cached_results",
    "build_standard_template",
    "build_variant",
    "context_for",
    "generate_templates",
    "template_filename",
    "write_standard_template",
    "write_templates",
]
