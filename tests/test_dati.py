"""The data as a DataFrame: `dati()` holds the consolidated values with their dtypes and
agrees with the master's *Dati*; `esporta` writes CSV, xlsx and JSON that read back to
the same frame; `storico` puts several years together. On a real raccolta with returns
by PEC, by e-mail and from a folder, one with errors, one missing and a rettifica."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pandas.testing as pdt
import pytest

import piano_abitativo as pa
from piano_abitativo.app.dati import frame
from piano_abitativo.cli.commands import main
from piano_abitativo.consolidation.consolidate import consolidate
from piano_abitativo.consolidation.context import consolidate_raccolta
from piano_abitativo.core import raccolta as rc
from piano_abitativo.core.schema import SCHEMA, Field, Kind
from piano_abitativo.master.model import SHEET_DATI, dati_header, master_path
from piano_abitativo.master.tables import DATI_HEADER_ROW

from .mailfactory import make_pec_envelope, make_plain
from .mailraccolta import make_raccolta, workbook_of

CREMA, AGNADELLO, CAMISANO, BAGNOLO, ALER = "019035", "019002", "019010", "019005", "ALER-BCM"
CREMA_PEC = "protocollo@pec.comune.crema.example"
AGNADELLO_MAIL = "ufficio@comune.agnadello.example"
T0 = dt.datetime(2025, 12, 1, 9, 0, tzinfo=dt.UTC)
ROME = "Europe/Rome"
#: what the test expects of each kind of field (written here, not taken from the module)
KIND_DTYPE = {Kind.COUNT: "Int64", Kind.PERCENT: "Float64"}


def _folder_return(folder: Path, name: str, data: bytes, when: dt.datetime) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    os.utime(path, (when.timestamp(), when.timestamp()))


@pytest.fixture(scope="module")
def racc(tmp_path_factory: pytest.TempPathFactory) -> rc.Raccolta:
    """Crema by PEC (then a rettifica of a_sap), Agnadello by e-mail with i = 7.5%,
    Camisano from a folder with an error, the ALER from a folder, Bagnolo silent; the
    master written."""
    base = tmp_path_factory.mktemp("dati")
    r = make_raccolta(base)
    inbox = base / "in"
    inbox.mkdir()
    crema = make_plain(
        sender=CREMA_PEC,
        date=T0,
        message_id="<crema@example>",
        attachments=[("crema.xlsx", workbook_of(r, CREMA, a_sap=358))],
    )
    (inbox / "crema.eml").write_bytes(make_pec_envelope(crema, when=T0, identificativo="id-c"))
    agnadello = make_plain(
        sender=AGNADELLO_MAIL,
        date=T0 + dt.timedelta(hours=3),
        message_id="<agnadello@example>",
        attachments=[("agnadello.xlsx", workbook_of(r, AGNADELLO, a_sap=12, i_forze_polizia=7.5))],
    )
    (inbox / "agnadello.eml").write_bytes(agnadello)
    _folder_return(inbox, "camisano.xlsx", workbook_of(r, CAMISANO, a_sap=-1), T0)
    _folder_return(inbox, "aler.xlsx", workbook_of(r, ALER, a_sap=997, a_sas=11), T0)
    assert main(["importa", str(r.path), "--da", str(inbox)]) == 1  # Camisano has errors
    args = ["--ente", CREMA, "--campo", "a_sap", "--valore", "360", "--motivo", "nota"]
    assert main(["rettifica", str(r.path), *args]) == 0
    assert main(["consolida", str(r.path)]) == 0
    return rc.load(r.path)


@pytest.fixture(scope="module")
def df(racc: rc.Raccolta) -> pd.DataFrame:
    return pa.dati(racc)


def _row(df: pd.DataFrame, codice: str) -> pd.Series:
    (i,) = df.index[df["codice"] == codice]
    return df.loc[i]


def test_dati_has_one_typed_row_per_ente_with_the_consolidated_values(
    racc: rc.Raccolta, df: pd.DataFrame
) -> None:
    """Every ente of the registry is a row in the plan's order; every plan field is a
    column typed by its kind and holding the consolidated value (rettifiche applied)."""
    cons = consolidate_raccolta(racc)
    assert list(df["codice"]) == [s.ente.codice for s in cons.enti]
    fields = racc.schema.plan_fields
    expected = pd.DataFrame(
        {
            f.id: pd.Series(
                [s.values.get(f.id) if s.values else None for s in cons.enti],
                dtype=KIND_DTYPE.get(f.kind, "string"),
            )
            for f in fields
        }
    )
    pdt.assert_frame_equal(df[[f.id for f in fields]], expected)
    assert df["codice"].dtype == "string"
    assert isinstance(df["stato"].dtype, pd.CategoricalDtype)
    assert str(df["ricevuto_il"].dt.tz) == ROME


def test_dati_says_how_and_when_each_ente_answered(df: pd.DataFrame) -> None:
    """Crema: PEC, the rettifica named, its corrected a_sap; Agnadello: e-mail, 7.5%;
    Camisano: errors and no values; Bagnolo: not received, all empty."""
    crema = _row(df, CREMA)
    assert (crema["canale"], crema["a_sap"], crema["rettifiche"]) == ("PEC", 360, "a_sap")
    assert crema["verifica_pec"] == "gestore_non_verificato"
    assert crema["ricevuto_il"] == pd.Timestamp("2025-12-01 10:00:00", tz=ROME)
    assert crema["versione"] == "crema.xlsx" and len(crema["id"]) == 8
    agnadello = _row(df, AGNADELLO)
    assert (agnadello["canale"], agnadello["i_forze_polizia"]) == ("e-mail", 7.5)
    assert pd.isna(agnadello["verifica_pec"]) and pd.isna(agnadello["rettifiche"])
    camisano = _row(df, CAMISANO)
    assert camisano["stato"] == "da correggere" and camisano["errori"] >= 1
    assert pd.isna(camisano["a_sap"]) and pd.isna(camisano["ricevuto_il"])
    bagnolo = _row(df, BAGNOLO)
    assert bagnolo["stato"] == "non ricevuto"
    assert bagnolo.drop(["codice", "ente", "tipo", "stato"]).isna().all()
    assert _row(df, ALER)["canale"] == "cartella"


def _master_dati(racc: rc.Raccolta) -> pd.DataFrame:
    """The master's Dati sheet read back with openpyxl (cached values of the formulas)."""
    wb = openpyxl.load_workbook(master_path(racc.path, racc.anno, ".xlsm"), data_only=True)
    rows = list(wb[SHEET_DATI].iter_rows(min_row=DATI_HEADER_ROW + 1, values_only=True))
    header, body = rows[0], [r for r in rows[1:] if r[0] is not None]
    return pd.DataFrame(body, columns=[str(h) for h in header])


def test_dati_agrees_with_the_masters_dati_sheet(racc: rc.Raccolta, df: pd.DataFrame) -> None:
    """The master's Dati, read back from the .xlsm, has the same enti, states, reception
    times, versions and values as `dati()`."""
    sheet = _master_dati(racc)
    fields = racc.schema.plan_fields
    got = pd.DataFrame(
        {
            "codice": sheet["Codice"].astype("string"),
            "ente": sheet["Ente"].astype("string"),
            "stato": sheet["Stato"].astype("string"),
            "ricevuto_il": pd.to_datetime(sheet["Ricevuto il"]).astype("datetime64[us]"),
            "versione": sheet["Versione usata"].astype("string"),
            **{
                f.id: sheet[dati_header(f)].astype(KIND_DTYPE.get(f.kind, "string")) for f in fields
            },
        }
    )
    mine = df[got.columns].copy()
    mine["stato"] = mine["stato"].astype("string")
    mine["ricevuto_il"] = mine["ricevuto_il"].dt.tz_localize(None)
    pdt.assert_frame_equal(mine, got)


def _as_frame(read: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    """A frame read back from an export, cast to the dtypes of `like`."""
    out = read.copy()
    for name, dtype in like.dtypes.items():
        if isinstance(dtype, pd.DatetimeTZDtype):
            out[name] = pd.to_datetime(out[name], utc=True).dt.tz_convert(ROME).astype(dtype)
        else:
            out[name] = out[name].astype(dtype)
    return out


def _esporta(
    capsys: pytest.CaptureFixture[str], racc: rc.Raccolta, *args: str
) -> tuple[int, str, str]:
    code = main(["esporta", str(racc.path), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_csv_is_for_italian_excel_and_reads_back_to_dati(
    racc: rc.Raccolta, df: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --output the CSV goes into the raccolta folder (and says so): UTF-8 with
    BOM, ``;`` and the decimal comma, codes with their leading zeros; read with those
    settings it is `dati()` again."""
    code, out, _ = _esporta(capsys, racc)
    path = racc.path / f"Dati_piano_abitativo_{racc.anno}.csv"
    assert code == 0 and str(path) in out and "5 enti" in out
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfcodice;ente;tipo;stato;")
    assert ";7,5;" in raw.decode("utf-8-sig") and "\n019035;Comune di Crema;" in raw.decode()
    back = pd.read_csv(path, sep=";", decimal=",", encoding="utf-8-sig", dtype={"codice": "string"})
    assert back["codice"].tolist()[1:3] == ["019002", "019005"]
    pdt.assert_frame_equal(_as_frame(back, df), df)


def test_the_international_csv_has_commas_and_the_decimal_point(
    racc: rc.Raccolta, df: pd.DataFrame, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``--separatore ,`` writes the international form, which reads back the same."""
    target = tmp_path / "out" / "dati.csv"
    code, _, _ = _esporta(capsys, racc, "--output", str(target), "--separatore", ",")
    assert code == 0
    text = target.read_text(encoding="utf-8-sig")
    assert text.startswith("codice,ente,tipo,stato,") and ",7.5," in text
    back = pd.read_csv(target, sep=",", encoding="utf-8-sig", dtype={"codice": "string"})
    pdt.assert_frame_equal(_as_frame(back, df), df)


def test_the_xlsx_is_a_plain_table_with_a_header_and_an_autofilter(
    racc: rc.Raccolta, df: pd.DataFrame, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The xlsx: one sheet, the column names in row 1, an autofilter over the whole
    table, codes as text, times as Italian local time; read back it is `dati()`."""
    target = tmp_path / "dati.xlsx"
    assert _esporta(capsys, racc, "--formato", "xlsx", "--output", str(target))[0] == 0
    wb = openpyxl.load_workbook(target)
    (ws,) = wb.worksheets
    assert [c.value for c in ws[1]] == list(df.columns)
    last = openpyxl.utils.get_column_letter(len(df.columns))
    assert ws.auto_filter.ref == f"A1:{last}{len(df) + 1}"
    assert ws["A3"].value == "019002" and ws["A3"].data_type == "s"
    back = pd.read_excel(io.BytesIO(target.read_bytes()), engine="calamine", dtype={"codice": str})
    back["ricevuto_il"] = pd.to_datetime(back["ricevuto_il"]).dt.tz_localize(ROME)
    pdt.assert_frame_equal(_as_frame(back, df), df)


def test_the_json_is_records_with_iso_times_and_nulls(
    racc: rc.Raccolta, df: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--formato json``: one object per ente with every column, times ISO 8601 with
    the Italian offset, missing values as null."""
    assert _esporta(capsys, racc, "--formato", "json")[0] == 0
    path = racc.path / f"Dati_piano_abitativo_{racc.anno}.json"
    records: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    assert [list(r) for r in records] == [list(df.columns)] * len(df)
    crema = next(r for r in records if r["codice"] == CREMA)
    assert crema["ricevuto_il"] == "2025-12-01T10:00:00+01:00"
    assert crema["a_sap"] == 360 and crema["rettifiche"] == "a_sap"
    bagnolo = next(r for r in records if r["codice"] == BAGNOLO)
    assert bagnolo["a_sap"] is None and bagnolo["ricevuto_il"] is None
    back = pd.DataFrame.from_records(records)
    pdt.assert_frame_equal(_as_frame(back, df), df)


def test_storico_puts_two_years_together_with_their_anno(
    racc: rc.Raccolta, df: pd.DataFrame, tmp_path: Path
) -> None:
    """Last year's raccolta (Crema only) and this year's: one frame with a first column
    anno, each year's rows as its own `dati()`; the same year twice is refused."""
    before = pa.crea(
        tmp_path / "raccolta-2025",
        anno=2025,
        registry_csv=racc.path / "enti.csv",
        scadenza="15/12/2024",
    )
    _folder_return(tmp_path / "r25", "crema.xlsx", workbook_of(before, CREMA, a_sap=350), T0)
    pa.importa(before, [tmp_path / "r25"], esiti=False)
    st = pa.storico([before, racc.path])
    assert list(st.columns) == ["anno", *df.columns]
    assert st["anno"].dtype == "Int64"
    assert st["anno"].value_counts().to_dict() == {2025: 5, 2026: 5}
    last_year = st[st["anno"] == 2025].drop(columns="anno").reset_index(drop=True)
    pdt.assert_frame_equal(last_year, pa.dati(before))
    this_year = st[st["anno"] == 2026].drop(columns="anno").reset_index(drop=True)
    pdt.assert_frame_equal(this_year, df)
    assert st.loc[(st["anno"] == 2025) & (st["codice"] == CREMA), "a_sap"].item() == 350
    with pytest.raises(pa.PianoError, match="stesso anno"):
        pa.storico([racc, racc.path])


def test_a_wrong_output_is_one_italian_line(
    racc: rc.Raccolta, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An output that is a folder, or a separator with xlsx, stops with one Italian line
    and exit code 2; nothing is written."""
    code, out, err = _esporta(capsys, racc, "--output", str(tmp_path))
    assert (code, out) == (2, "")
    assert err.startswith("Errore: ") and "è una cartella" in err and len(err.splitlines()) == 1
    code, _, err = _esporta(capsys, racc, "--formato", "xlsx", "--separatore", ",")
    assert code == 2 and "vale solo per il formato csv" in err
    assert not (racc.path / f"Dati_piano_abitativo_{racc.anno}.xlsx").exists()


def test_help_and_valida_do_not_import_pandas(tmp_path: Path) -> None:
    """pandas is loaded by the data functions only: ``esporta --help`` and ``valida`` of a
    workbook, in a fresh interpreter, never import it."""
    blank = pa.modello_vuoto(tmp_path / "modello.xlsx")
    code = (
        "import sys\n"
        "from piano_abitativo.cli import main\n"
        "assert main(['esporta', '--help']) == 0\n"
        f"main(['valida', {str(blank)!r}])\n"
        "print('pandas' in sys.modules)\n"
    )
    src = Path(pa.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(src)}
    p = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert p.stdout.strip().splitlines()[-1] == "False"


def test_a_field_added_to_the_schema_is_a_typed_column(tmp_path: Path) -> None:
    """A percentage added to section j) of the schema is a Float64 column after j_sat,
    with no change to the data module."""
    new = Field("j_quota_nuove", "j", "Quota di nuova destinazione (%)", Kind.PERCENT)
    r = pa.crea(tmp_path / "raccolta", anno=2026)
    r.schema = SCHEMA.with_field(new)
    got = frame(consolidate(r, []))
    cols = list(got.columns)
    assert cols[cols.index("j_sat") + 1] == "j_quota_nuove"
    assert got["j_quota_nuove"].dtype == "Float64"
    assert len(got) == len(r.registry) and got["j_quota_nuove"].isna().all()
