"""kopt's exit codes, written down once. The CLI, the build and the README's table use this one."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1  # a known error: one line on stderr naming the file or field and what to do
    USAGE = 2  # a usage error (unknown option, missing argument): Click's own code, kept for it alone
    REGRESSION = 3  # the regression gate tripped (`kopt build`, `kopt compare`)
    NO_WINNER = 4  # no variant meets the constraints (`kopt build` for its publish provider, `kopt select --strict`)


MEANING = {
    ExitCode.OK: "success",
    ExitCode.ERROR: "invalid input or another known error (one line on stderr: `kopt: error: <file or field>: "
                    "<what to do>`)",
    ExitCode.USAGE: "usage error: an unknown option or a missing argument (Click's message)",
    ExitCode.REGRESSION: "the regression gate tripped (`kopt build` with a baseline, `kopt compare`)",
    ExitCode.NO_WINNER: "no variant meets the constraints (`kopt build`: for the publish provider; "
                        "`kopt select --strict`: for some provider)",
}


def epilog() -> str:
    """The table as help text."""
    return "Exit codes: " + "; ".join(f"{int(c)} {MEANING[c].split(' (')[0]}" for c in ExitCode) + "."
