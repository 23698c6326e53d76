"""Text normalization: what a listener expects to hear for numbers, money, dates and abbreviations.

``normalize(text)`` returns plain English words and a small punctuation set (. , ! ? ; : — … " ( ) ').
Digits never survive it, so the token cache only has to know words. English only: other languages'
front ends do their own.
"""

from __future__ import annotations

import re
import unicodedata

from .numbers import cardinal, decimal, digits, fraction, ordinal, plural_of, year

# -- unicode punctuation -----------------------------------------------------------------------
_CHAR_MAP = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "`": "'", "\u00b4": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2014": " \u2014 ", "\u2015": " \u2014 ", "\u2012": "-", "\u2010": "-", "\u2011": "-", "\u2212": "-",
    "\u00ad": "", "\u200b": "", "\ufeff": "", "\u2026": "\u2026",
    "[": "(", "]": ")", "{": "(", "}": ")", "\u3001": ", ", "\u3002": ". ", "\uff01": "! ", "\uff1f": "? ",
    "&": " and ", "@": " at ", "+": " plus ", "=": " equals ", "\u00d7": " times ", "\u00b0": " degrees ",
    "/": " ", "\\": " ", "_": " ", "*": " ", "|": " ", "~": " ", "^": " ", "<": " ", ">": " ", "#": " number ",
}
_CHAR_RE = re.compile("|".join(map(re.escape, sorted(_CHAR_MAP, key=len, reverse=True))))

# -- abbreviations ------------------------------------------------------------------------------
# Titles read before a name (the dot is never a sentence end there).
_TITLES = {
    "mr": "mister", "mrs": "missus", "ms": "miz", "dr": "doctor", "prof": "professor", "st": "saint",
    "mt": "mount", "gen": "general", "capt": "captain", "sgt": "sergeant", "lt": "lieutenant",
    "col": "colonel", "gov": "governor", "sen": "senator", "rep": "representative", "rev": "reverend",
    "hon": "honorable", "pres": "president", "fr": "father", "messrs": "messieurs",
}
# Abbreviations that may end a sentence: the dot stays a full stop when a capital or the end follows.
_WORDS = {
    "etc": "et cetera", "inc": "incorporated", "ltd": "limited", "co": "company", "corp": "corporation",
    "jr": "junior", "sr": "senior", "vs": "versus", "approx": "approximately", "dept": "department",
    "est": "established", "ave": "avenue", "blvd": "boulevard", "rd": "road", "univ": "university",
    "assn": "association", "bros": "brothers", "min": "minutes", "hr": "hours", "hrs": "hours",
    "sec": "seconds", "ft": "feet", "in": "inches", "lb": "pounds", "lbs": "pounds", "oz": "ounces",
    "pp": "pages", "vol": "volume", "ch": "chapter", "fig": "figure", "eq": "equation",
    "jan": "january", "feb": "february", "mar": "march", "apr": "april", "jun": "june", "jul": "july",
    "aug": "august", "sep": "september", "sept": "september", "oct": "october", "nov": "november",
    "dec": "december",
}
_DOTTED = {  # written with inner dots
    "e.g.": "for example", "i.e.": "that is", "a.m.": "ay em", "p.m.": "pee em", "u.s.": "U S",
    "u.k.": "U K", "a.k.a.": "also known as", "cf.": "compare", "viz.": "namely", "ca.": "circa",
}
# Units after a number (the number stays; the unit is spelled out, singular after "one").
_UNITS = {
    "km": "kilometer", "m": "meter", "cm": "centimeter", "mm": "millimeter", "kg": "kilogram",
    "g": "gram", "mg": "milligram", "l": "liter", "ml": "milliliter", "mph": "miles per hour",
    "kph": "kilometers per hour", "ms": "millisecond", "s": "second",
    "h": "hour", "hz": "hertz", "khz": "kilohertz", "mhz": "megahertz", "ghz": "gigahertz",
    "kb": "kilobyte", "mb": "megabyte", "gb": "gigabyte", "tb": "terabyte", "kw": "kilowatt",
    "w": "watt", "v": "volt", "f": "fahrenheit", "c": "celsius",
}
_NO_PLURAL = {"hertz", "kilohertz", "megahertz", "gigahertz", "fahrenheit", "celsius", "miles per hour",
              "kilometers per hour"}

_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "\u00a3": ("pound", "pounds", "penny", "pence"),
             "\u20ac": ("euro", "euros", "cent", "cents"), "\u00a5": ("yen", "yen", "sen", "sen"),
             "\u20b9": ("rupee", "rupees", "paisa", "paise")}
_MAGNITUDE = {"k": "thousand", "thousand": "thousand", "m": "million", "mn": "million", "million": "million",
              "b": "billion", "bn": "billion", "billion": "billion", "t": "trillion", "trillion": "trillion"}

_NUM = r"\d+(?:,\d{3})*(?:\.\d+)?"


# -- read before punctuation becomes words: each rule spells its own "@ / . + - °" -------------------
_ADDRESS_SYMBOLS = {".": "dot", "/": "slash", ":": "colon", "-": "dash", "_": "underscore", "@": "at",
                    "?": "question mark", "=": "equals", "&": "and", "#": "hash", "%": "percent",
                    "~": "tilde", "+": "plus"}
_ADDRESS_SYMBOL_RE = re.compile("[" + re.escape("".join(_ADDRESS_SYMBOLS)) + "]")
_URL_TRAILING = ".,;:!?)'\""  # sentence punctuation after an address is not part of it
_FRACTION_DENOMINATORS = {2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 16, 32, 64}
_RATE_LENGTHS = {"km": "kilometer", "m": "meter", "cm": "centimeter", "mm": "millimeter", "mi": "mile"}
_DATA_PREFIXES = {"": "", "k": "kilo", "m": "mega", "g": "giga", "t": "tera"}
_PER = {"s": "second", "sec": "second", "h": "hour", "hr": "hour", "min": "minute"}
_TEMPERATURE_SCALES = {"C": "Celsius", "F": "Fahrenheit", "K": "Kelvin"}


def _spell_address(s: str) -> str:
    """'jane.doe@example.com' -> 'jane dot doe at example dot com'; 'www' -> 'W W W'."""
    s = _ADDRESS_SYMBOL_RE.sub(lambda m: f" {_ADDRESS_SYMBOLS[m.group(0)]} ", s)
    return re.sub(r"(?i)\bwww\b", "W W W", s)


def _url(m: re.Match) -> str:
    """The scheme is not read ('https://example.com/docs' -> 'example dot com slash docs')."""
    url = m.group(0)
    body = url.rstrip(_URL_TRAILING)
    address = re.sub(r"(?i)^https?://", "", body).rstrip("/")
    return _spell_address(address) + url[len(body):]


def _phone(m: re.Match) -> str:
    """Digit by digit, a pause between groups: '555-0123' -> 'five five five, zero one two three'."""
    groups = re.findall(r"\d+", m.group(0))
    if sum(map(len, groups)) < 7:
        return m.group(0)
    return ("plus " if m.group(0).startswith("+") else "") + ", ".join(map(digits, groups))


def _local_phone(m: re.Match) -> str:
    """'555-0123' is a phone number, '500-1000' a range of round numbers."""
    a, b = m.group(1), m.group(2)
    if b[0] != "0" and int(a) < int(b) and int(a) % 10 == int(b) % 10 == 0:
        return m.group(0)
    return _phone(m)


def _version_number(s: str) -> str:
    """'2.0.1' -> 'two point zero point one', '3.11' -> 'three point eleven'."""
    return " point ".join(digits(p) if len(p) > 1 and p[0] == "0" else cardinal(int(p)) for p in s.split("."))


def _fraction(m: re.Match) -> str:
    """'2/3' -> 'two thirds', '1 1/2' -> 'one and a half'; '12/25' or '24/7' stay as written."""
    whole, num, den = m.group(1), int(m.group(2)), int(m.group(3))
    if not 0 < num < den or den not in _FRACTION_DENOMINATORS:
        return m.group(0)
    if whole:
        return f"{cardinal(int(whole))} and {fraction(num, den, mixed=True)}"
    return fraction(num, den)


def _rate(m: re.Match) -> str:
    """'5 MB/s' -> '5 megabytes per second', 'km/h' -> 'kilometers per hour' (b is a bit, B a byte)."""
    num, top, per = m.group(1), m.group(2), m.group(3) or "s"
    unit = _RATE_LENGTHS.get(top) or _DATA_PREFIXES[top[:-1].lower()] + ("byte" if top[-1] == "B" else "bit")
    if num != "1":
        unit += "s"
    return f"{num} {unit} per {_PER[per]}" if num else f"{unit} per {_PER[per]}"


def _degrees(m: re.Match) -> str:
    """'25°C' -> '25 degrees Celsius'; the number is read later, with its sign."""
    num, scale = m.group(1), m.group(2)
    words = f"{num} {'degree' if num == '1' else 'degrees'}"
    return f"{words} {_TEMPERATURE_SCALES[scale]}" if scale else words


_EARLY_RULES: list[tuple[re.Pattern, object]] = [
    # e-mail before URLs, URLs before phones and versions (their digits are read as written)
    (re.compile(r"(?<![\w.+-])[\w.%+-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])"),
     lambda m: _spell_address(m.group(0))),
    (re.compile(r"(?<![\w@/])(?:https?://|www\.)[^\s\"<>]+", re.I), _url),
    (re.compile(r"(?<![\w@./-])(?:[A-Za-z0-9-]+\.)+(?:com|org|net|edu|gov|io|co)(?:\.[a-z]{2})?\b(?!\.\w)"
                r"(?:/[^\s\"<>]*)?"), _url),
    # phones: +1 555 123 4567, (555) 123-4567, 1-800-555-0199, 555-0123
    (re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){1,5}(?![\w-]|[.,]\d)"), _phone),
    (re.compile(r"(?<![\w+.-])(?:1[ .-])?(?:\(\d{3}\) ?\d{3}[ .-]|\d{3}([ .-])\d{3}\1)\d{4}(?![\w-]|[.,]\d)"),
     _phone),
    (re.compile(r"(?<![\w+.,-])(\d{3})-(\d{4})(?![\w-]|[.,]\d)"), _local_phone),
    # versions: v2.0, version 3.11, 2.0.1
    (re.compile(r"\b([Vv](?=\d)|[Vv]ersion )(\d+(?:\.\d+)+)(?!\w|\.\d)"),
     lambda m: ("version " if len(m.group(1)) == 1 else m.group(1)) + _version_number(m.group(2))),
    (re.compile(r"(?<![\w.])\d+(?:\.\d+){2,}(?!\w|\.\d)"), lambda m: _version_number(m.group(0))),
    (re.compile(r"(?<![\w/.,])(?:(\d{1,3}) )?(\d{1,2})/(\d{1,2})(?![\w/]|[.,]\d)"), _fraction),
    (re.compile(r"(?:(" + _NUM + r") ?)?(?<![A-Za-z/])([kKmMgGtT]?[bB]|[kcm]?m|mi)"
                r"(?:/(s|sec|h|hr|min)|(?<=[bB])ps)(?![\w/])"), _rate),
    (re.compile(r"(" + _NUM + r") ?°(?: ?([CFK])(?![A-Za-z]))?(?![A-Za-z])"), _degrees),
]


def _int(s: str) -> int:
    return int(s.replace(",", ""))


def _number(s: str) -> str:
    s = s.replace(",", "")
    return decimal(s) if "." in s else cardinal(int(s))


def _money(m: re.Match) -> str:
    sym, amount, mag = m.group("sym"), m.group("amt"), (m.group("mag") or "").lower()
    one, many, sub1, subs = _CURRENCY[sym]
    if mag:
        return f"{_number(amount)} {_MAGNITUDE[mag]} {many}"
    whole, _, frac = amount.replace(",", "").partition(".")
    w = int(whole or 0)
    out = f"{cardinal(w)} {one if w == 1 else many}" if w or not frac else ""
    if frac:
        c = int(frac[:2].ljust(2, "0"))
        if c:
            cents = f"{cardinal(c)} {sub1 if c == 1 else subs}"
            out = f"{out} and {cents}" if out else cents
    return out or f"zero {many}"


def _time(m: re.Match) -> str:
    h, mi = int(m.group(1)), int(m.group(2))
    if mi == 0:
        words = f"{cardinal(h)} o'clock" if not m.group(3) else cardinal(h)
    elif mi < 10:
        words = f"{cardinal(h)} oh {cardinal(mi)}"
    else:
        words = f"{cardinal(h)} {cardinal(mi)}"
    suffix = (m.group(3) or "").lower().replace(".", "")
    return words + {"am": " ay em", "pm": " pee em", "": ""}[suffix]


def _ordinal(m: re.Match) -> str:
    return ordinal(_int(m.group(1)))


def _year(m: re.Match) -> str:
    return year(int(m.group(1)), plural=bool(m.group(2)))


def _decade(m: re.Match) -> str:
    return plural_of(cardinal(int(m.group(1))))


def _unit(m: re.Match) -> str:
    num, unit = m.group(1), _UNITS[m.group(2).lower()]
    words = _number(num)
    if words != "one" and unit not in _NO_PLURAL:
        unit += "s" if not unit.endswith("s") else ""
    return f"{words} {unit}"


def _abbrev(m: re.Match) -> str:
    word, after = m.group(1), (m.group(2) or "").strip()
    key = word.lower()
    if m.string.endswith("dot ", 0, m.start()):  # a spelled address: 'example dot co.'
        return m.group(0)
    if key in _TITLES and word[0].isupper():
        if key == "st" and (not after or not after[0].isupper()):
            return "street" + ("" if after else ".")  # "Main St." vs "St. Louis" (a saint)
        return _TITLES[key]
    if key in _WORDS:
        if key == "in" or (key in _UNIT_ABBREVS and word[0].isupper()):
            return m.group(0)
        # keep the full stop when the abbreviation ends the sentence
        ends = not after or (after[0].isupper() and key not in _MONTHS)
        return _WORDS[key] + ("." if ends else "")
    return m.group(0)


_UNIT_ABBREVS = {"min", "hr", "hrs", "sec", "ft", "lb", "lbs", "oz"}
_MONTHS = {"jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"}

_RULES: list[tuple[re.Pattern, object]] = [
    # dotted abbreviations first (e.g., i.e., a.m.)
    (re.compile(r"(?i)(?<![\w.])(" + "|".join(re.escape(k) for k in sorted(_DOTTED, key=len, reverse=True))
                + r")(?=\W|$)"), lambda m: _DOTTED[m.group(1).lower()]),
    (re.compile(r"\b([A-Za-z]+)\.(?=(\s+\S+)?)"), _abbrev),
    # money: $1,200.50  $3.5 million  £20bn
    (re.compile(r"(?P<sym>[$\u00a3\u20ac\u00a5\u20b9])\s?(?P<amt>\d+(?:,\d{3})*(?:\.\d+)?|\.\d+)"
                r"(?:\s?(?P<mag>thousand|million|billion|trillion|bn|mn|[kKmMbBtT])\b)?"), _money),
    (re.compile(r"(\d+)\s?\u00a2"), lambda m: f"{cardinal(int(m.group(1)))} cent{'s' if m.group(1) != '1' else ''}"),
    (re.compile(r"(" + _NUM + r")\s?%"), lambda m: f"{_number(m.group(1))} percent"),
    # times: 3:30, 10:05 pm
    (re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)(?!\d)(?:\s?([AaPp]\.?[Mm]\.?)(?![A-Za-z]))?"), _time),
    (re.compile(r"\b(\d+)(?:st|nd|rd|th)\b", re.I), _ordinal),
    # decades: the '90s, 1990s (years), 80s
    (re.compile(r"'(\d)0s\b"), lambda m: plural_of(cardinal(int(m.group(1)) * 10))),
    (re.compile(r"(?<![\d,.$])\b(1[1-9]\d\d|20\d\d)(s?)\b(?![,.]\d)"), _year),
    (re.compile(r"\b([1-9]0)s\b"), _decade),
    # ranges 10-20 -> ten to twenty
    (re.compile(r"(?<=\d)\s?[-\u2013]\s?(?=\d)"), " to "),
    # units after numbers: 5 km, 3.5kg
    (re.compile(r"(" + _NUM + r")\s?(" + "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
                + r")\b(?!')", re.I), _unit),
    (re.compile(r"(?<![\w.])-(?=\d)"), "minus "),
    (re.compile(_NUM + r"|\.\d+"), lambda m: _number(m.group(0))),
]


def normalize(text: str) -> str:
    """Unicode, addresses, phones, versions, fractions, abbreviations, money, percent, times, ordinals,
    years, ranges, units, numbers."""
    t = unicodedata.normalize("NFKC", re.sub(r"(?<=\d)(?=[\u00bc-\u00be\u2150-\u215e])", " ", text))
    t = t.replace("...", "\u2026").replace("--", " \u2014 ").replace("\u2013", "-").replace("\u2044", "/")
    for pattern, repl in _EARLY_RULES:
        t = pattern.sub(repl, t)
    t = _CHAR_RE.sub(lambda m: _CHAR_MAP[m.group(0)], t)
    t = re.sub(r"[^\S\n]+", " ", t)
    t = re.sub(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z]{2,})(?!(?:st|nd|rd|th|s)\b)", " ", t)
    for pattern, repl in _RULES:
        t = pattern.sub(repl, t)
    t = re.sub(r"(?<=[A-Za-z])-(?=[A-Za-z])", " ", t)  # well-known -> well known (espeak reads it so)
    t = re.sub(r"\s*\n\s*", "\n", t)
    t = re.sub(r"[^\S\n]+", " ", t)
    return t.strip()


__all__ = ["normalize", "digits"]
