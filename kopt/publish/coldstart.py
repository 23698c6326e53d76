"""The one-shot cold start's breakdown: its steps and how a breakdown reads as one line (kopt
bundle-bench writes it, the build's summary and the report show it). No imports beyond typing, so
readers of results use it without the measuring code."""

from __future__ import annotations

from typing import Mapping

# The one-shot's steps one after another (they add up to the breakdown's total); "session" (its
# creation, on a thread beside voices, token cache and front end) is reported apart.
ONESHOT_PHASES = ("python", "imports", "verify", "voices", "token_cache", "front_end", "session_wait", "first_chunk")
# the steps of records from before the session was made beside the front end
_EARLIER_PHASES = ("python", "imports", "verify", "voices", "token_cache", "session", "first_chunk")
# every name a breakdown may hold (a record's metrics carry each as cold_<name>_s)
BREAKDOWN_NAMES = (*ONESHOT_PHASES, "session")


def breakdown_text(bd: Mapping[str, float]) -> str:
    """A cold-start breakdown (``cold_breakdown_s``, or a record's ``cold_<name>_s`` without the
    affixes) as one line; records from before the session was built beside the front end have no
    session_wait, and show their session among the steps."""
    steps = ONESHOT_PHASES if "session_wait" in bd else _EARLIER_PHASES
    line = ", ".join(f"{k} {bd[k]:.2f}" for k in steps if k in bd)
    if "session_wait" in bd and "session" in bd:
        line += f" (the session took {bd['session']:.2f} beside them)"
    return line
