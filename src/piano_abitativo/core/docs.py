"""Documentation generated from the code, so it cannot drift (see tests/test_docs.py)."""

from __future__ import annotations

from piano_abitativo.core.problems import CATALOGUE


def problem_catalogue_markdown() -> str:
    """docs/problemi.md: every problem code with severity, meaning and hint."""
    lines = [
        "# Codici dei problemi segnalati dalla validazione",
        "",
        "Generato da `python -m piano_abitativo.docs`; non modificare a mano.",
        "",
        "| codice | gravità | problema | cosa fare |",
        "|---|---|---|---|",
    ]
    for code, kind in CATALOGUE.items():
        hint = kind.hint.replace("|", "\\|")
        lines.append(f"| {code} | {kind.severity.value} | {kind.title} | {hint} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    from pathlib import Path

    Path("docs/problemi.md").write_text(problem_catalogue_markdown(), encoding="utf-8")
