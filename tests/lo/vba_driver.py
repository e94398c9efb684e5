#!/usr/bin/python3
"""Open .xlsm files in LibreOffice with macros enabled, run VBA macros, report.

Run with the interpreter that can ``import uno`` (Debian: ``/usr/bin/python3``)::

    /usr/bin/python3 vba_driver.py JOB.json RESULT.json

It reuses ``driver.py``'s ``Office`` (one headless soffice, private temporary
profile, killed and cleaned up at the end) with the shared ``profile.xcu`` changed
in two settings only: macro security level low and macro execution allowed (the
batch driver keeps macros disabled).  Documents are loaded with
``MacroExecutionMode`` ALWAYS_EXECUTE_NO_WARN and never saved.

``JOB.json``::

    {"soffice": "/usr/bin/soffice",
     "jobs": [{"input": "/abs/file.xlsm",
               "run": ["vnd.sun.star.script:VBAProject.Pulsanti.Scrivi?language=Basic"
                       "&location=document"],   (one string)
               "read": ["Sheet1.A1"]}]}

``RESULT.json``: ``{"results": [{"libraries": {"VBAProject": {"Pulsanti": "source"...}},
"ran": [repr of each return value], "reads": {"Sheet1.A1": "string"},
"buttons": [{"sheet": ..., "name": ..., "label": ..., "events": [{"listener": ...,
"method": ..., "type": ..., "script": ...}]}], "error": null | "message"}]}``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import driver  # found through the path above; imports uno too
import uno

MACRO_ALWAYS_EXECUTE_NO_WARN = 4


def macro_profile(xcu):
    """``profile.xcu`` with macros allowed to run."""
    xcu, n1 = re.subn(
        r'(<prop oor:name="MacroSecurityLevel" oor:op="fuse"><value>)\d+(</value>)',
        r"\g<1>0\g<2>",
        xcu,
    )
    xcu, n2 = re.subn(
        r'(<prop oor:name="DisableMacrosExecution" oor:op="fuse"><value>)true(</value>)',
        r"\g<1>false\g<2>",
        xcu,
    )
    if (n1, n2) != (1, 1):
        raise RuntimeError("profile.xcu changed: cannot find the macro settings to enable")
    return xcu


def load(office, path):
    doc = office.desktop.loadComponentFromURL(
        uno.systemPathToFileUrl(os.path.abspath(path)),
        "_blank",
        0,
        driver.props(
            Hidden=True,
            ReadOnly=True,
            MacroExecutionMode=MACRO_ALWAYS_EXECUTE_NO_WARN,
            UpdateDocMode=driver.UPDATE_NO_UPDATE,
            Silent=True,
        ),
    )
    if doc is None:
        raise RuntimeError(f"LibreOffice could not load {path}")
    return doc


def basic_libraries(doc):
    out = {}
    libraries = doc.BasicLibraries
    for name in libraries.getElementNames():
        libraries.loadLibrary(name)
        library = libraries.getByName(name)
        out[name] = {module: library.getByName(module) for module in library.getElementNames()}
    return out


def buttons(doc):
    """Every form control on every sheet with the script events bound to it."""
    out = []
    for sheet_name in doc.Sheets.getElementNames():
        page = doc.Sheets.getByName(sheet_name).DrawPage
        forms = page.Forms
        for f in range(forms.getCount()):
            form = forms.getByIndex(f)
            for c in range(form.getCount()):
                control = form.getByIndex(c)
                events = [
                    {
                        "listener": ev.ListenerType,
                        "method": ev.EventMethod,
                        "type": ev.ScriptType,
                        "script": ev.ScriptCode,
                    }
                    for ev in form.getScriptEvents(c)
                ]
                out.append(
                    {
                        "sheet": sheet_name,
                        "name": control.Name,
                        "label": getattr(control, "Label", None),
                        "events": events,
                    }
                )
    return out


def run_job(office, job, result):
    doc = load(office, job["input"])
    try:
        result["libraries"] = basic_libraries(doc)
        provider = doc.getScriptProvider()
        for uri in job.get("run") or []:
            value = provider.getScript(uri).invoke((), (), ())
            result["ran"].append(repr(value))
        for key in job.get("read") or []:
            cell = driver.range_by_address(doc, key)
            result["reads"][key] = cell.getString()
        result["buttons"] = buttons(doc)
    finally:
        driver.close(doc)


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(f"usage: {argv[0]} JOB.json RESULT.json\n")
        return 2
    with open(argv[1], encoding="utf-8") as fh:
        spec = json.load(fh)
    driver.REGISTRY_XCU = macro_profile(driver.REGISTRY_XCU)
    office = driver.Office(spec.get("soffice") or "soffice")
    results = []
    try:
        try:
            office.start()
        except Exception as exc:
            driver.log(f"cannot start LibreOffice: {driver.error_text(exc)}")
            return 3
        for job in spec["jobs"]:
            result = {"libraries": {}, "ran": [], "reads": {}, "buttons": [], "error": None}
            results.append(result)
            try:
                run_job(office, job, result)
            except Exception as exc:
                result["error"] = driver.error_text(exc)
                traceback.print_exc()
    finally:
        office.stop()
    with open(argv[2], "w", encoding="utf-8") as fh:
        json.dump({"results": results}, fh, ensure_ascii=False, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
