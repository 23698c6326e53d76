"""Numbers as words: cardinals, ordinals, years, decimals, fractions and digit strings (English)."""

from __future__ import annotations

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORD_IRREGULAR = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                  "nine": "ninth", "twelve": "twelfth"}
MAX_CARDINAL = 10**15 - 1


def _below_100(n: int) -> str:
    if n < 20:
        return _ONES[n]
    t, o = divmod(n, 10)
    return _TENS[t] + (f"-{_ONES[o]}" if o else "")


def _below_1000(n: int) -> str:
    h, r = divmod(n, 100)
    if not h:
        return _below_100(r)
    return f"{_ONES[h]} hundred" + (f" {_below_100(r)}" if r else "")


def cardinal(n: int) -> str:
    """12345 -> 'twelve thousand three hundred forty-five'; beyond a quadrillion, digit by digit."""
    if n < 0:
        return "minus " + cardinal(-n)
    if n > MAX_CARDINAL:
        return digits(str(n))
    if n < 1000:
        return _below_1000(n)
    parts = []
    for value, name in _SCALES:
        q, n = divmod(n, value)
        if q:
            parts.append(f"{_below_1000(q)} {name}")
    if n:
        parts.append(_below_1000(n))
    return " ".join(parts)


def ordinal(n: int) -> str:
    """21 -> 'twenty-first'."""
    words = cardinal(n)
    head, sep, last = words.rpartition(" ")
    pre, dash, tail = last.rpartition("-")
    if tail in _ORD_IRREGULAR:
        tail = _ORD_IRREGULAR[tail]
    elif tail.endswith("y"):
        tail = tail[:-1] + "ieth"
    else:
        tail += "th"
    return head + sep + pre + dash + tail


def year(n: int, plural: bool = False) -> str:
    """1984 -> 'nineteen eighty-four', 1905 -> 'nineteen oh five', 2008 -> 'two thousand eight'."""
    hi, lo = divmod(n, 100)
    if 2000 <= n <= 2009 or n % 1000 == 0 or not 1000 <= n <= 9999:
        words = cardinal(n)
    elif lo == 0:
        words = f"{cardinal(hi)} hundred"
    elif lo < 10:
        words = f"{cardinal(hi)} oh {_ONES[lo]}"
    else:
        words = f"{cardinal(hi)} {_below_100(lo)}"
    return plural_of(words) if plural else words


def plural_of(words: str) -> str:
    """'nineteen eighty' -> 'nineteen eighties'; 'nineteen hundred' -> 'nineteen hundreds'."""
    if words.endswith("y"):
        return words[:-1] + "ies"
    if words.endswith("x"):
        return words + "es"
    return words + "s"


def digits(s: str) -> str:
    """'0451' -> 'zero four five one'."""
    return " ".join(_ONES[int(c)] for c in s if c.isdigit())


def decimal(s: str) -> str:
    """'3.14' -> 'three point one four'; '.5' -> 'point five'."""
    whole, _, frac = s.partition(".")
    head = cardinal(int(whole)) + " " if whole else ""
    return f"{head}point {digits(frac)}" if frac else head.strip()


_FRACTION_NAMES = {2: ("half", "halves"), 4: ("quarter", "quarters")}


def fraction(num: int, den: int, mixed: bool = False) -> str:
    """(3, 4) -> 'three quarters', (1, 3) -> 'one third'; mixed=True reads the 1/2 of '1 1/2' 'a half'."""
    one, many = _FRACTION_NAMES.get(den) or (ordinal(den), ordinal(den) + "s")
    if num == 1:
        return f"{'a' if mixed else 'one'} {one}"
    return f"{cardinal(num)} {many}"
