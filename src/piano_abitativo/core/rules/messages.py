"""The messages of the validator's findings, written with the values found.

The condition of each rule is in `book`; here only how the finding is told to the clerk
(the template's rows show the static text of `Rule.row_text`). The numbers a message
quotes are the rule's own sub-expressions evaluated on the return, so a limit is
computed once.
"""

from __future__ import annotations

from collections.abc import Callable

from piano_abitativo.core.layout import layout_for
from piano_abitativo.core.rules.conditions import Scope, sap_shares, sat_limit, stock
from piano_abitativo.core.rules.expr import Env, Number
from piano_abitativo.core.rules.functions import Max
from piano_abitativo.core.rules.reads import Read, Value
from piano_abitativo.core.rules.typed import fmt
from piano_abitativo.core.schema import Field, Kind

Message = Callable[[Field, Env], str]


def _num(env: Env, fid: str) -> float:
    return float(Read(fid).py(env))


def _count(env: Env, fid: str, previous: bool = False) -> int | None:
    v = (env.previous or {}).get(fid) if previous else Value(fid).py(env)
    if isinstance(v, int | float) and not isinstance(v, bool) and v >= 0:
        return int(v) if float(v).is_integer() else None
    return None


def _r0(f: Field, env: Env) -> str:
    x = _num(env, f.id)
    if f.kind is Kind.PERCENT:
        return f"{f.header}: {fmt(x)}% non è una percentuale tra 0 e 100"
    why = (
        "è negativo"
        if x < (f.minimum or 0)
        else "non è un numero intero"
        if not float(x).is_integer()
        else "è fuori misura"
    )
    return f"{f.header}: {fmt(x)} {why}"


def _total(f: Field, env: Env) -> str:
    x = float(env.raw.get(f.id) or 0)
    parts = sum(_num(env, k) for k in f.sum_of)
    names = " + ".join(env.schema.field_by_id[k].header for k in f.sum_of)
    return f"{f.header}: {fmt(x)} invece di {fmt(parts)} ({names})"


def _r3(f: Field, env: Env) -> str:
    if env.aler:
        return "g) La soglia per gli indigenti è indicata solo dai Comuni, non dall'ALER"
    return f"g) Soglia {fmt(_num(env, f.id))}%: va indicata solo se eccede il 20% (fino al 100%)"


def _r4(f: Field, env: Env) -> str:
    if env.aler:
        return "i) La quota per le Forze di Polizia è indicata solo dai Comuni, non dall'ALER"
    return f"i) Quota {fmt(_num(env, f.id))}%: il massimo consentito è 10%"


def _r5(f: Field, env: Env) -> str:
    s = env.settings
    scope = Scope(env.schema, s)
    base = float(Max((Number(0), Read(s.sat_base))).py(env))
    limit = float(sat_limit(scope).py(env))
    name = env.schema.field_by_id[s.sat_base].header
    return (
        f"j) {fmt(_num(env, f.id))} unità SAT oltre il {fmt(s.sat_percentuale)}% di "
        f"{name} ({fmt(base)}, limite {fmt(limit)})"
    )


def _over_sap(f: Field, env: Env) -> str:
    return (
        f"{f.header}: {fmt(_num(env, f.id))} supera gli alloggi SAP indicati in a) "
        f"({fmt(_num(env, 'a_sap'))})"
    )


def _cell(env: Env, fid: str) -> str:
    """The cell a field was read from (the template's when not known)."""
    return env.cells.get(fid) or layout_for(env.schema).cell(fid)


def _r17(_f: Field, env: Env) -> str:
    parts = sap_shares(env.schema)
    values = [_num(env, k) for k in parts]
    names = " + ".join(f"{env.schema.field_by_id[k].section}) {_cell(env, k)}" for k in parts)
    return (
        f"{names}: {' + '.join(fmt(v) for v in values)} = {fmt(sum(values))} supera gli "
        f"alloggi SAP indicati in a) {_cell(env, 'a_sap')} ({fmt(_num(env, 'a_sap'))})"
    )


def _r18(f: Field, env: Env) -> str:
    total = float(stock(Scope(env.schema, env.settings)).py(env))
    return (
        f"{f.header} ({_cell(env, f.id)}): {fmt(_num(env, f.id))} supera di oltre "
        f"{fmt(env.settings.margine_plausibilita)} le unità indicate in a) ({fmt(total)}, "
        "SAP + SAS)"
    )


def _r11(_f: Field, env: Env) -> str:
    return "L'ente ha solo alloggi SAS ma indica unità SAP assegnabili in b), d) o e)"


def _v02(f: Field, env: Env) -> str:
    return f"«{str(Value(f.id).py(env) or '').strip()}» non è un indirizzo e-mail valido"


def _years(env: Env) -> tuple[str, str]:
    now = f"nel {env.anno}" if env.anno is not None else "quest'anno"
    before = (
        f"nel {env.anno_precedente}" if env.anno_precedente is not None else ("l'anno precedente")
    )
    return now, before


#: the other stock quoted when it moved the other way (SAP and SAS swapped?)
_OTHER = {"a_sap": "a_sas", "a_sas": "a_sap"}


def stock_direction(f: Field, env: Env) -> str:
    """'calo' or 'aumento': which way the stock of R13/R15 jumped."""
    cur, prev = _count(env, f.id) or 0, _count(env, f.id, previous=True) or 0
    return "calo" if cur < prev else "aumento"


def _stock(f: Field, env: Env) -> str:
    s = env.settings
    now, before = _years(env)
    cur, prev = _count(env, f.id) or 0, _count(env, f.id, previous=True) or 0
    low, high = s.confronto_minimo_percentuale, s.confronto_massimo_percentuale
    way = stock_direction(f, env)
    if way == "calo":
        how = (
            "nessun alloggio"
            if cur == 0
            else "la metà o meno"
            if low == 50
            else (f"il {fmt(low)}% o meno")
        )
    else:
        how = (
            "l'anno precedente nessuno"
            if prev == 0
            else "il doppio o più"
            if high == 200
            else (f"il {fmt(high)}% o più")
        )
    message = f"a) {f.header}: {fmt(cur)} {now} contro {fmt(prev)} {before} ({how})"
    other = _OTHER[f.id]
    cur_o, prev_o = _count(env, other), _count(env, other, previous=True)
    if (
        cur_o is not None
        and prev_o is not None
        and ((way == "calo" and cur_o > prev_o) or (way == "aumento" and cur_o < prev_o))
    ):
        message += (
            f"; intanto {env.schema.field_by_id[other].header} sono passati da "
            f"{fmt(prev_o)} a {fmt(cur_o)}"
        )
    return message


def _r14(f: Field, env: Env) -> str:
    now, before = _years(env)
    return (
        f"f) Totale assegnabili: {fmt(_count(env, f.id) or 0)} {now}, più degli alloggi SAP "
        f"indicati in a) {before} ({fmt(_count(env, 'a_sap', previous=True) or 0)})"
    )


MESSAGES: dict[str, Message] = {
    "R0": _r0,
    "R1": _total,
    "R2": _total,
    "R3": _r3,
    "R4": _r4,
    "R5": _r5,
    "R6": lambda _f, _e: "h) È indicata una categoria aggiuntiva ma manca la motivazione",
    "R7": _over_sap,
    "R8": _over_sap,
    "R12": _over_sap,
    "R11": _r11,
    "R17": _r17,
    "R18": _r18,
    "R16": lambda _f, _e: "h) La categoria aggiuntiva è indicata solo dai Comuni, non dall'ALER",
    "V01": lambda _f, _e: "Referente per la compilazione non indicato o senza recapito",
    "V02": _v02,
    "R13": _stock,
    "R14": _r14,
    "R15": _stock,
}

#: R13/R15: what to check depends on the way the stock moved
STOCK_HINTS: dict[tuple[str, str], str] = {
    ("a_sap", "calo"): "Verificare che siano indicati tutti gli alloggi SAP di proprietà "
    "dell'ente. Se il dato è corretto (es. alloggi venduti, demoliti o destinati ad altro "
    "uso), ignorare l'avviso.",
    ("a_sap", "aumento"): "Verificare che siano indicati solo gli alloggi SAP di proprietà "
    "dell'ente, non quelli di altri proprietari presenti sul territorio. Se il dato è "
    "corretto (es. nuove costruzioni o acquisizioni), ignorare l'avviso.",
    ("a_sas", "calo"): "Verificare che siano indicati tutti gli alloggi SAS di proprietà "
    "dell'ente e che non siano stati scambiati con i SAP. Se il dato è corretto, ignorare "
    "l'avviso.",
    ("a_sas", "aumento"): "Verificare che siano indicati solo gli alloggi SAS di proprietà "
    "dell'ente e che non siano stati scambiati con i SAP. Se il dato è corretto, ignorare "
    "l'avviso.",
}


def hint_for(code: str, f: Field, env: Env) -> str | None:
    """A hint more precise than the catalogue's, when the finding calls for one."""
    if code in ("R13", "R15"):
        return STOCK_HINTS[f.id, stock_direction(f, env)]
    return None
