"""Text normalization: what a listener expects to hear for numbers, money, dates and abbreviations.

``normalize(text)`` returns plain English words and a small punctuation set (. , ! ? ; : — … " ( ) ').
Digits never survive it, so the token cache only has to know words.
"""

from __future__ import annotations

import re
import unicodedata

from .numbers import cardinal, decimal, digits, ordinal, plural_of, year

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
    "kph": "kilometers per hour", "km/h": "kilometers per hour", "ms": "millisecond", "s": "second",
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
    """Unicode, abbreviations, money, percent, times, ordinals, years, ranges, units, numbers."""
    t = unicodedata.normalize("NFKC", text)
    t = t.replace("...", "\u2026").replace("--", " \u2014 ").replace("\u2013", "-")
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
