"""A large batch validated by a pool of processes gives the same reports, in the same
order, as validating its files one by one."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from piano_abitativo.validation.batch import PARALLEL_FROM, can_fork, validate_files
from piano_abitativo.validation.validate import ValidationContext, validate_file

from .sample_returns import MakeReturn


def test_a_pool_gives_the_reports_of_one_by_one_in_order(
    make_return: MakeReturn, crema_values: dict[str, Any], vctx: ValidationContext, tmp_path: Path
) -> None:
    """70 files (valid, with errors, with numbers as text, not a workbook) validated by
    two processes: every report equals `validate_file`'s, in the order of the files."""
    kinds = [
        make_return(crema_values),
        make_return({**crema_values, "a_sap": -3, "j_sat": "circa 10"}),
        make_return({**crema_values, "k_assegnate_anno_precedente": " 4 "}),
        make_return({}),
    ]
    garbage = tmp_path / "non_un_modello.xlsx"
    garbage.write_bytes(b"codice,valore\n019035,3\n")
    kinds.append(garbage)
    batch = tmp_path / "lotto"
    batch.mkdir()
    paths = []
    for i in range(PARALLEL_FROM + 6):
        path = batch / f"{i:03d}_{kinds[i % len(kinds)].name}"
        shutil.copyfile(kinds[i % len(kinds)], path)
        paths.append(path)

    assert can_fork() or not sys.platform.startswith("linux")  # the pool is used here
    pooled = validate_files(paths, vctx, workers=2)

    one_by_one = [validate_file(p, vctx, display_name=str(p)) for p in paths]
    assert [r.to_json() for r in pooled] == [r.to_json() for r in one_by_one]
    assert [r.file for r in pooled] == [str(p) for p in paths]
    assert {r.valid for r in pooled} == {True, False}


def test_a_small_batch_gives_the_reports_of_validate_file(
    make_return: MakeReturn, crema_values: dict[str, Any], vctx: ValidationContext
) -> None:
    """Below `PARALLEL_FROM` files the reports are those of `validate_file`, named as
    asked by `display_name`."""
    paths = [make_return(crema_values), make_return({})]

    reports = validate_files(paths, vctx, display_name=lambda p: p.name, workers=2)

    assert [r.to_json() for r in reports] == [
        validate_file(p, vctx, display_name=p.name).to_json() for p in paths
    ]
