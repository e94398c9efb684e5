"""Validation of the XML parts of an .xlsx/.xlsm/.docx against the ECMA-376 schemas.

The schemas are the ISO/IEC 29500 Transitional set of ``../shared/ooxml_schemas/`` (origins
and licences in its README). They are read where they are, never copied into the
repository: the folder is looked up beside the project and in its parents, then beside the
checkout this one was cloned from, or given by ``PIANO_ABITATIVO_OOXML_SCHEMAS``. When it
is missing the tests that need it are skipped on a developer's machine and **fail** under
``CI=true``.

`violations(path)` opens the package, finds each part's content type in
``[Content_Types].xml``, checks that the part's root element is the one that content type
calls for, prepares the part as the Open XML SDK does (markup compatibility: the namespaces
named by ``mc:Ignorable`` are dropped, elements and attributes, with the ``mc:Ignorable``
attribute itself; each ``mc:AlternateContent`` is replaced by the content of its first
``mc:Choice`` whose ``Requires`` names only understood namespaces, else of its
``mc:Fallback``) and validates it with lxml. It returns one readable string per
violation: ``part:line: message``.

Parts not validated: binary parts (``vbaProject.bin``, images) and VML drawings as a whole
(``vmlDrawing*.vml``: the legacy ``<xml>`` wrapper has no schema); each element *inside* a
VML drawing is validated against the VML schemas instead.
"""

from __future__ import annotations

import functools
import os
import posixpath
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from tests.real_mail import _origin

_ENV = "PIANO_ABITATIVO_OOXML_SCHEMAS"

MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"
_CT = "http://schemas.openxmlformats.org/package/2006/content-types"
_SML = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_WML = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"

#: content type -> the root element its part must have (Clark notation)
ROOTS: dict[str, str] = {
    # package
    "application/vnd.openxmlformats-package.relationships+xml": (
        "{http://schemas.openxmlformats.org/package/2006/relationships}Relationships"
    ),
    "application/vnd.openxmlformats-package.core-properties+xml": (
        "{http://schemas.openxmlformats.org/package/2006/metadata/core-properties}coreProperties"
    ),
    "application/vnd.openxmlformats-officedocument.extended-properties+xml": (
        "{http://schemas.openxmlformats.org/officeDocument/2006/extended-properties}Properties"
    ),
    "application/vnd.openxmlformats-officedocument.custom-properties+xml": (
        "{http://schemas.openxmlformats.org/officeDocument/2006/custom-properties}Properties"
    ),
    "application/vnd.openxmlformats-officedocument.customXmlProperties+xml": (
        "{http://schemas.openxmlformats.org/officeDocument/2006/customXml}datastoreItem"
    ),
    "application/vnd.openxmlformats-officedocument.theme+xml": (
        "{http://schemas.openxmlformats.org/drawingml/2006/main}theme"
    ),
    # spreadsheet
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml": (
        f"{{{_SML}}}workbook"
    ),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.template.main+xml": (
        f"{{{_SML}}}workbook"
    ),
    "application/vnd.ms-excel.sheet.macroEnabled.main+xml": f"{{{_SML}}}workbook",
    "application/vnd.ms-excel.template.macroEnabled.main+xml": f"{{{_SML}}}workbook",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml": (
        f"{{{_SML}}}worksheet"
    ),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.chartsheet+xml": (
        f"{{{_SML}}}chartsheet"
    ),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml": (
        f"{{{_SML}}}styleSheet"
    ),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml": (
        f"{{{_SML}}}sst"
    ),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.table+xml": (f"{{{_SML}}}table"),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.comments+xml": (
        f"{{{_SML}}}comments"
    ),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.calcChain+xml": (
        f"{{{_SML}}}calcChain"
    ),
    "application/vnd.openxmlformats-officedocument.drawing+xml": (
        "{http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing}wsDr"
    ),
    "application/vnd.openxmlformats-officedocument.drawingml.chart+xml": (
        "{http://schemas.openxmlformats.org/drawingml/2006/chart}chartSpace"
    ),
    # wordprocessing
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml": (
        f"{{{_WML}}}document"
    ),
    "application/vnd.ms-word.document.macroEnabled.main+xml": f"{{{_WML}}}document",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.styles+xml": (
        f"{{{_WML}}}styles"
    ),
    "application/vnd.ms-word.stylesWithEffects+xml": f"{{{_WML}}}styles",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.settings+xml": (
        f"{{{_WML}}}settings"
    ),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.webSettings+xml": (
        f"{{{_WML}}}webSettings"
    ),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.fontTable+xml": (
        f"{{{_WML}}}fonts"
    ),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.numbering+xml": (
        f"{{{_WML}}}numbering"
    ),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.header+xml": (f"{{{_WML}}}hdr"),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.footer+xml": (f"{{{_WML}}}ftr"),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.footnotes+xml": (
        f"{{{_WML}}}footnotes"
    ),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.endnotes+xml": (
        f"{{{_WML}}}endnotes"
    ),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.comments+xml": (
        f"{{{_WML}}}comments"
    ),
}

#: XML parts whose root may be any element the schemas declare (custom XML data)
ANY_ROOT = frozenset({"application/xml", "text/xml"})
#: VML drawings: the children of the ``<xml>`` wrapper are validated one by one
VML = "application/vnd.openxmlformats-officedocument.vmlDrawing"
#: parts that are not XML
BINARY = frozenset(
    {
        "application/vnd.ms-office.vbaProject",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/x-emf",
        "image/x-wmf",
    }
)

#: the two imports of opc-coreProperties.xsd that point to the web, and their local copies
_WEB = {
    "http://dublincore.org/schemas/xmls/qdc/2003/04/02/dc.xsd": "support/dc.xsd",
    "http://dublincore.org/schemas/xmls/qdc/2003/04/02/dcterms.xsd": "support/dcterms.xsd",
    "http://dublincore.org/schemas/xmls/qdc/2003/04/02/dcmitype.xsd": "support/dcmitype.xsd",
}


def _find() -> Path | None:
    given = os.environ.get(_ENV)
    if given:
        return Path(given)
    here = Path(__file__).resolve().parent
    origin = _origin()
    for start in (here, *([origin] if origin is not None else [])):
        for parent in (start, *start.parents):
            candidate = parent / "shared" / "ooxml_schemas"
            if candidate.is_dir():
                return candidate
    return None


def schemas_dir() -> Path:
    """The folder of the schemas; skip (fail under CI=true) when it is missing."""
    found = _find()
    if found is None or not (found / "sml.xsd").is_file():
        why = "../shared/ooxml_schemas not found (set PIANO_ABITATIVO_OOXML_SCHEMAS to its path)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(why)
        pytest.skip(why)
    return found


class _Local(etree.Resolver):
    """Maps the Dublin Core web addresses to the local copies: no network is ever used."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self._root = root

    def resolve(self, system_url: str, public_id: str, context: object) -> object:
        local = _WEB.get(system_url)
        if local is not None:
            return self.resolve_filename(str(self._root / local), context)
        if "://" in system_url and not system_url.startswith("file:"):
            raise OSError(f"schema import from the network refused: {system_url}")
        return None


def _namespace_of(xsd: Path) -> str:
    return str(etree.parse(str(xsd)).getroot().get("targetNamespace"))


@functools.cache
def _schema(root: Path) -> tuple[etree.XMLSchema, frozenset[str]]:
    """One driver schema importing every namespace of the folder (xml: first, so that
    wml.xsd's import without a location resolves), and the set of those namespaces."""
    files = [root / "support" / "xml_namespace.xsd"]
    files += sorted(root.glob("*.xsd")) + sorted((root / "opc").glob("*.xsd"))
    imports: dict[str, Path] = {}
    for xsd in files:
        imports.setdefault(_namespace_of(xsd), xsd)
    xs = "http://www.w3.org/2001/XMLSchema"
    driver = etree.Element(f"{{{xs}}}schema", nsmap={"xs": xs})
    for namespace, xsd in imports.items():
        etree.SubElement(
            driver, f"{{{xs}}}import", namespace=namespace, schemaLocation=xsd.as_uri()
        )
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_Local(root))
    doc = etree.fromstring(etree.tostring(driver), parser, base_url=(root / "driver.xsd").as_uri())
    return etree.XMLSchema(doc), frozenset(imports)


def _content_types(package: zipfile.ZipFile) -> tuple[dict[str, str], dict[str, str]]:
    root = etree.fromstring(package.read("[Content_Types].xml"))
    defaults = {
        d.get("Extension", "").lower(): d.get("ContentType", "")
        for d in root.iter(f"{{{_CT}}}Default")
    }
    overrides = {
        o.get("PartName", "").lstrip("/").lower(): o.get("ContentType", "")
        for o in root.iter(f"{{{_CT}}}Override")
    }
    return defaults, overrides


def content_type(name: str, defaults: dict[str, str], overrides: dict[str, str]) -> str | None:
    """The content type of part ``name`` (an Override, else the Default of its extension)."""
    found = overrides.get(name.lower())
    if found is not None:
        return found
    base = posixpath.basename(name)
    return defaults.get(base.rsplit(".", 1)[1].lower()) if "." in base else None


def _prefixes(element: etree._Element, value: str) -> set[str]:
    """The namespaces a whitespace-separated list of prefixes names, resolved at element."""
    nsmap = element.nsmap
    return {str(nsmap[p]) for p in value.split() if p in nsmap}


def _unknown_prefixes(element: etree._Element, value: str) -> list[str]:
    return [p for p in value.split() if p not in element.nsmap]


def prepare(root: etree._Element, understood: frozenset[str]) -> list[str]:
    """Apply markup compatibility in place, as the Open XML SDK does before validating.
    Returns the problems found in the markup itself (undeclared prefixes)."""
    problems: list[str] = []
    ignorable: set[str] = set()
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        value = element.get(f"{{{MC}}}Ignorable")
        if value is not None:
            missing = _unknown_prefixes(element, value)
            if missing:
                problems.append(
                    f"{element.sourceline}: mc:Ignorable names undeclared prefixes {missing}"
                )
            ignorable |= _prefixes(element, value) - understood
    _alternate_content(root, understood, problems)
    for element in list(root.iter()):
        if not isinstance(element.tag, str):
            continue
        if etree.QName(element).namespace in ignorable:
            parent = element.getparent()
            if parent is not None:
                parent.remove(element)
            continue
        for name in list(element.attrib):
            namespace = etree.QName(name).namespace
            if namespace in ignorable or (namespace == MC and name.endswith("}Ignorable")):
                del element.attrib[name]
    return problems


def _alternate_content(
    root: etree._Element, understood: frozenset[str], problems: list[str]
) -> None:
    for block in list(root.iter(f"{{{MC}}}AlternateContent")):
        parent = block.getparent()
        if parent is None:
            continue
        chosen: etree._Element | None = None
        for choice in block.findall(f"{{{MC}}}Choice"):
            requires = choice.get("Requires", "")
            if _unknown_prefixes(choice, requires):
                problems.append(
                    f"{choice.sourceline}: mc:Choice Requires names undeclared prefixes"
                )
                continue
            if _prefixes(choice, requires) <= understood:
                chosen = choice
                break
        if chosen is None:
            chosen = block.find(f"{{{MC}}}Fallback")
        index = parent.index(block)
        parent.remove(block)
        for offset, child in enumerate(list(chosen) if chosen is not None else []):
            parent.insert(index + offset, child)


def _errors(part: str, schema: etree.XMLSchema, root: etree._Element) -> Iterator[str]:
    if schema.validate(etree.ElementTree(root)):
        return
    for error in schema.error_log:
        yield f"{part}:{error.line}: {error.message}"


def _vml(part: str, data: bytes, schema: etree.XMLSchema) -> Iterator[str]:
    """The children of the VML ``<xml>`` wrapper, each against the VML schemas."""
    root = etree.fromstring(data)
    for child in root:
        if isinstance(child.tag, str):
            yield from _errors(part, schema, child)


def violations(path: Path) -> list[str]:
    """Every schema violation of the package at ``path``, as ``part:line: message``."""
    schema, understood = _schema(schemas_dir())
    found: list[str] = []
    with zipfile.ZipFile(path) as package:
        defaults, overrides = _content_types(package)
        for name in package.namelist():
            if name.endswith("/"):
                continue
            data = package.read(name)
            if name == "[Content_Types].xml":
                expected: str | None = f"{{{_CT}}}Types"
            else:
                kind = content_type(name, defaults, overrides)
                if kind is None:
                    found.append(f"{name}: no content type in [Content_Types].xml")
                    continue
                if kind in BINARY:
                    continue
                if kind == VML:
                    found.extend(_vml(name, data, schema))
                    continue
                expected = ROOTS.get(kind)
                if expected is None and kind not in ANY_ROOT:
                    found.append(f"{name}: content type {kind!r} unknown to tests/ooxml.py")
                    continue
            try:
                root = etree.fromstring(data, etree.XMLParser(no_network=True))
            except etree.XMLSyntaxError as error:
                found.append(f"{name}: not well-formed XML: {error}")
                continue
            if expected is not None and root.tag != expected:
                found.append(f"{name}: root element {root.tag}, its content type needs {expected}")
                continue
            found.extend(f"{name}:{problem}" for problem in prepare(root, understood))
            found.extend(_errors(name, schema, root))
    return found


def summary(found: list[str], limit: int = 40) -> str:
    """The violations for an assertion message, at most ``limit`` of them."""
    shown = "\n".join(found[:limit])
    more = len(found) - limit
    return shown + (f"\n… and {more} more" if more > 0 else "")
