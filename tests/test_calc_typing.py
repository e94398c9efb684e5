"""A clerk types 0 in every number cell of the template in a real LibreOffice Calc window.

LibreOffice's AutoInput (on by default) completes what is typed from the text already in
the same column: with the ente's code "019025" in the column of the numbers, typing ``0``
and Enter stores 19025. Here Calc runs on a virtual X display (Xvfb), xdotool types like
a clerk (Name Box, ``0``, Enter), the file is saved as it is (xlsx) and read back.

Needs ``Xvfb``, ``xdotool`` and a LibreOffice with a window (an X11 VCL plugin, not the
``-nogui`` build); ``$SOFFICE_GUI`` may name such a soffice. Skipped when one is missing,
failed under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest

from piano_abitativo.core.layout import LAYOUT
from piano_abitativo.core.registry import Registry
from piano_abitativo.core.schema import SHEET_SCHEDA, Kind, Role
from piano_abitativo.template.workbook import TemplateFactory, build_standard_template
from tests.lo_runner import find_soffice

PLUGINS = ("libvclplug_gen", "libvclplug_gtk3", "libvclplug_kf5", "libvclplug_qt5")

# the private profile: AutoInput on (it is the default: said anyway), no dialogs
PROFILE = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry"
 xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
{items}
</oor:items>
"""
SETTINGS = (
    ("org.openoffice.Office.Calc/Input", "AutoInput", "true"),
    ("org.openoffice.Office.Common/Misc", "FirstRun", "false"),
    ("org.openoffice.Office.Common/Misc", "ShowTipOfTheDay", "false"),
    ("org.openoffice.Office.Common/Misc", "UseLocking", "false"),
    ("org.openoffice.Office.Common/Save/Document", "WarnAlienFormat", "false"),
    ("org.openoffice.Office.Common/Security/Scripting", "DisableMacrosExecution", "true"),
    ("org.openoffice.Office.Recovery/AutoSave", "Enabled", "false"),
    ("org.openoffice.Office.Recovery/RecoveryInfo", "Enabled", "false"),
)


def _missing(what: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is required on CI", pytrace=False)
    pytest.skip(f"{what} not available")


def _gui_soffice() -> str:
    given = os.environ.get("SOFFICE_GUI")
    if given and os.access(given, os.X_OK):
        return given
    found = find_soffice()
    if found:
        program = Path(found).resolve().parent
        if any(p.name.startswith(PLUGINS) for p in program.glob("libvclplug_*")):
            return found
    _missing("LibreOffice with a window (an X11 VCL plugin; set $SOFFICE_GUI)")
    raise AssertionError  # unreachable: _missing skips or fails


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    for tool in ("Xvfb", "xdotool"):
        if shutil.which(tool) is None:
            _missing(tool)
    read, write = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    try:
        with os.fdopen(read) as pipe:
            number = pipe.readline().strip()
        assert number, "Xvfb did not start"
        yield f":{number}"
    finally:
        xvfb.terminate()
        xvfb.wait(10)


class Calc:
    """One soffice with one workbook open in its window, driven with xdotool."""

    def __init__(self, display: str, path: Path, profile: Path) -> None:
        self.env = {**os.environ, "DISPLAY": display, "SAL_USE_VCLPLUGIN": "gen"}
        items = "\n".join(
            f'<item oor:path="/{p}"><prop oor:name="{n}" oor:op="fuse"><value>{v}</value>'
            "</prop></item>"
            for p, n, v in SETTINGS
        )
        (profile / "user").mkdir(parents=True)
        (profile / "user" / "registrymodifications.xcu").write_text(
            PROFILE.format(items=items), encoding="utf-8"
        )
        self.proc = subprocess.Popen(
            [
                _gui_soffice(),
                "--calc",
                "--norestore",
                "--nologo",
                f"-env:UserInstallation={profile.as_uri()}",
                str(path),
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.window = self._wait_window(path.name)
        #: the dialogs Calc showed while typing (a value refused by the cell's validation)
        self.dialogs: list[str] = []

    def xdo(self, *args: str) -> str:
        out = subprocess.run(
            ["xdotool", *args], env=self.env, capture_output=True, text=True, timeout=30
        )
        return out.stdout.strip()

    def _wait_window(self, title: str) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = self.xdo("search", "--name", f"{title} - LibreOffice Calc").split()
            if found:
                self.xdo("windowfocus", "--sync", found[0])
                time.sleep(0.5)
                return found[0]
            assert self.proc.poll() is None, "soffice exited before showing its window"
            time.sleep(0.2)
        raise AssertionError("no Calc window within 30 s")

    def type_in(self, cell: str, text: str) -> None:
        """Go to `cell` through the Name Box, type `text` and Enter, as a clerk does."""
        # one xdotool call each: `type` takes all its remaining arguments as text
        self.xdo("key", "ctrl+shift+t", "sleep", "0.15", "key", "ctrl+a")
        self.xdo("type", "--delay", "5", cell)
        self.xdo("key", "Return", "sleep", "0.15")
        self.xdo("type", "--delay", "30", text)
        self.xdo("sleep", "0.1", "key", "Return", "sleep", "0.1")
        self._dismiss_dialogs(cell)

    def _dismiss_dialogs(self, cell: str) -> None:
        """Record and cancel any dialog (Calc refusing what AutoInput made of the input)."""
        for window in self.xdo("search", "--onlyvisible", "--name", ".").split():
            if window != self.window:
                self.dialogs.append(f"{cell}: {self.xdo('getwindowname', window)}")
                self.xdo("windowfocus", "--sync", window, "key", "Escape", "sleep", "0.2")
        self.xdo("windowfocus", "--sync", self.window)

    def save_and_quit(self, path: Path) -> None:
        before = path.stat().st_mtime_ns
        self.xdo("key", "ctrl+s")
        deadline = time.monotonic() + 20
        while path.stat().st_mtime_ns == before and time.monotonic() < deadline:
            time.sleep(0.2)
        assert path.stat().st_mtime_ns != before, "Calc did not save the file"
        time.sleep(0.5)  # the file is complete when soffice let it go
        self.xdo("key", "ctrl+q")
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(15)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def _number_inputs(aler: bool) -> list[str]:
    return [
        f.id
        for f in LAYOUT.schema.fields
        if f.role is Role.INPUT
        and f.kind in (Kind.COUNT, Kind.PERCENT)
        and not (aler and f.comuni_only)
    ]


def _type_zeros(
    display: str, tmp_path: Path, data: bytes, typed_first: dict[str, str], *, aler: bool = False
) -> tuple[Path, list[str]]:
    path = tmp_path / "modello.xlsx"
    path.write_bytes(data)
    calc = Calc(display, path, tmp_path / "profilo")
    try:
        for fid, text in typed_first.items():
            calc.type_in(LAYOUT.cell(fid), text)
        for fid in _number_inputs(aler):
            calc.type_in(LAYOUT.cell(fid), "0")
        calc.save_and_quit(path)
    finally:
        calc.close()
    return path, calc.dialogs


def _assert_zeros(path: Path, dialogs: list[str], aler: bool) -> None:
    ws = openpyxl.load_workbook(path)[SHEET_SCHEDA]
    got = {fid: ws[LAYOUT.cell(fid)].value for fid in _number_inputs(aler)}
    wrong = {
        f"{fid} ({LAYOUT.cell(fid)})": v
        for fid, v in got.items()
        if not (isinstance(v, int | float) and not isinstance(v, bool) and v == 0)
    }
    assert not wrong and not dialogs, (
        f"typing 0 did not store the number 0: {wrong}; Calc refused the input: {dialogs}"
    )


def test_typing_0_in_every_number_cell_of_a_comune_template_stores_0(
    display: str, tmp_path: Path, factory: TemplateFactory, registry: Registry
) -> None:
    """Prefilled code 019025 (Bagnolo Cremasco): 0 stays 0, not 19025."""
    ente = registry.get("019025")
    assert ente
    path, dialogs = _type_zeros(display, tmp_path, factory.render(ente), {})
    _assert_zeros(path, dialogs, aler=False)
    ws = openpyxl.load_workbook(path)[SHEET_SCHEDA]
    assert ws[LAYOUT.cell("ente_codice")].value == "019025"


def test_typing_0_in_every_number_cell_of_the_aler_template_stores_0(
    display: str, tmp_path: Path, factory: TemplateFactory, registry: Registry
) -> None:
    ente = registry.get("ALER-BCM")
    assert ente
    path, dialogs = _type_zeros(display, tmp_path, factory.render(ente), {}, aler=True)
    _assert_zeros(path, dialogs, aler=True)


def test_typing_0_after_typing_the_code_in_the_blank_template_stores_0(
    display: str, tmp_path: Path
) -> None:
    """The clerk of the blank template types the code first, then the numbers."""
    typed = {"ente_codice": "019025", "ente_denominazione": "Bagnolo Cremasco"}
    path, dialogs = _type_zeros(display, tmp_path, build_standard_template(), typed)
    _assert_zeros(path, dialogs, aler=False)
    ws = openpyxl.load_workbook(path)[SHEET_SCHEDA]
    assert ws[LAYOUT.cell("ente_codice")].value == "019025"
