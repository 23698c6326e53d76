"""English text normalization: one table of what a listener should hear, and what must stay as written."""

import pytest

from kokoro_runtime.numbers import fraction
from kokoro_runtime.textnorm import normalize

CASES = [
    # -- existing behaviour that must not change
    ("It costs $5.", "It costs five dollars."),
    ("Pay $12.50 now.", "Pay twelve dollars and fifty cents now."),
    ("A $3.5 million deal.", "A three point five million dollars deal."),
    ("In 1984 we met.", "In nineteen eighty four we met."),
    ("The 1990s were fun.", "The nineteen nineties were fun."),
    ("On the 21st of May.", "On the twenty first of May."),
    ("About 25% of 1,200 people.", "About twenty five percent of one thousand two hundred people."),
    ("Meet at 3:30 p.m. today.", "Meet at three thirty pee em today."),
    ("Meet at 10:00.", "Meet at ten o'clock."),
    ("Dr. Smith met Mr. and Mrs. Jones.", "doctor Smith met mister and missus Jones."),
    ("Apples, pears, etc. Then more.", "Apples, pears, et cetera. Then more."),
    ("Ages 10-20 ran 5 km.", "Ages ten to twenty ran five kilometers."),
    ("It was -5 degrees.", "It was minus five degrees."),
    ("It was 90° out.", "It was ninety degrees out."),
    ("Windows 10 and route 66.", "Windows ten and route sixty six."),
    ("pages 100-200", "pages one hundred to two hundred"),
    # -- phone numbers: digit by digit, a pause between groups
    ("Call 555-0123.", "Call five five five, zero one two three."),
    ("(555) 123-4567", "five five five, one two three, four five six seven"),
    ("555.123.4567", "five five five, one two three, four five six seven"),
    ("+1 555 123 4567", "plus one, five five five, one two three, four five six seven"),
    ("+44 20 7946 0958", "plus four four, two zero, seven nine four six, zero nine five eight"),
    ("1-800-555-0199", "one, eight zero zero, five five five, zero one nine nine"),
    # -- versions
    ("2.0.1", "two point zero point one"),
    ("Get v2.0 now.", "Get version two point zero now."),
    ("version 3.11", "version three point eleven"),
    ("Version 1.10.2 is out.", "Version one point ten point two is out."),
    # -- fractions
    ("1/3", "one third"),
    ("3/4", "three quarters"),
    ("2/3", "two thirds"),
    ("1/2", "one half"),
    ("5/8", "five eighths"),
    ("1 1/2 cups", "one and a half cups"),
    ("2 3/4 miles", "two and three quarters miles"),
    ("½ cup and 1½ cups", "one half cup and one and a half cups"),
    # -- units per time
    ("5 MB/s", "five megabytes per second"),
    ("1 MB/s", "one megabyte per second"),
    ("speeds in MB/s.", "speeds in megabytes per second."),
    ("50 km/h", "fifty kilometers per hour"),
    ("2.5 GB/s", "two point five gigabytes per second"),
    ("64 kb/s", "sixty four kilobits per second"),
    ("10 m/s", "ten meters per second"),
    ("100 Mbps", "one hundred megabits per second"),
    # -- temperatures
    ("25°C", "twenty five degrees Celsius"),
    ("-5 °F", "minus five degrees Fahrenheit"),
    ("98.6°F.", "ninety eight point six degrees Fahrenheit."),
    ("1°C", "one degree Celsius"),
    ("It is 20 ℃ today.", "It is twenty degrees Celsius today."),
    ("a 10-25°C range", "a ten to twenty five degrees Celsius range"),
    # -- addresses: the scheme is not read, the sentence's full stop stays one
    ("See https://example.com/docs.", "See example dot com slash docs."),
    ("www.example.org", "W W W dot example dot org"),
    ("Visit example.com today.", "Visit example dot com today."),
    ("(see https://example.com/a_b?x=1)", "(see example dot com slash a underscore b question mark x equals one)"),
    ("jane.doe@example.com", "jane dot doe at example dot com"),
    ("Mail bob@example.co.", "Mail bob at example dot co."),
    # -- must NOT be rewritten as any of the above
    ("and/or", "and or"),
    ("Pi is 3.14.", "Pi is three point one four."),
    ("It was 2.0.", "It was two point zero."),
    ("Cats, e.g. lions.", "Cats, for example lions."),
    ("i.e. not that", "that is not that"),
    ("The U.S. and the U.K.", "The U S and the U K"),
    ("12/25", "twelve twenty five"),  # a date, not twelve twenty-fifths
    ("24/7", "twenty four seven"),
    ("50/50", "fifty fifty"),
    ("On 3/4/2021 we met.", "On three four twenty twenty one we met."),
    ("500-1000 words", "five hundred to one thousand words"),  # a range of round numbers
    ("at 5.30", "at five point three zero"),
    ("25.12.2023", "twenty five point twelve point two thousand twenty three"),  # read like a version
    ("In 2023 1/3 of us", "In twenty twenty three one third of us"),
    ("Smith & Sons @ home", "Smith and Sons at home"),
    ("a V8 engine", "a V eight engine"),
    ("config.json and Node.js", "config.json and Node.js"),
    # -- known gaps, left for later: the year rule reads "1990" before the range rule sees the dash
    pytest.param("1990-2000", "nineteen ninety to two thousand", marks=pytest.mark.xfail(strict=True)),
    pytest.param("2023-05-12", "twenty twenty three to five to twelve", marks=pytest.mark.xfail(strict=True)),
]


@pytest.mark.parametrize("text,expected", CASES)
def test_normalize(text, expected):
    assert normalize(text) == expected


@pytest.mark.parametrize("args,words", [
    ((1, 2), "one half"), ((3, 2), "three halves"), ((3, 4), "three quarters"), ((7, 12), "seven twelfths"),
    ((1, 3, True), "a third"),
])
def test_fraction(args, words):
    assert fraction(*args) == words
