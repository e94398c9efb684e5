"""Documentation generated from the code, so it cannot drift (see tests/test_docs.py)."""

from __future__ import annotations

from piano_abitativo.core.problems import CATALOGUE
from piano_abitativo.core.rules import RULE_BY_CODE


def _checked_by(code: str) -> str:
    rule = RULE_BY_CODE.get(code)
    if rule is None:
        return "lettura del file" if code[0] in "FM" else "raccolta"
    return f"{rule.stage.value}, {rule.applies.value}"


def problem_catalogue_markdown() -> str:
    """docs/problemi.md: every problem code with severity, meaning and hint."""
    lines = [
        "# Codici dei problemi segnalati dalla validazione",
        "",
        "Generato da `python -m piano_abitativo.core.docs` dal libro delle regole "
        "(`core/rules`); non modificare a mano.",
        "",
        "| codice | gravità | problema | cosa fare | controllo |",
        "|---|---|---|---|---|",
    ]
    for code, kind in CATALOGUE.items():
        hint = kind.hint.replace("|", "\\|")
        lines.append(
            f"| {code} | {kind.severity.value} | {kind.title} | {hint} | {_checked_by(code)} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    from pathlib import Path

    Path("docs/problemi.md").write_text(problem_catalogue_markdown(), encoding="utf-8")
