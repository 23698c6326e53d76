"""The one-shot cold start's breakdown: its steps and how a breakdown reads as one line (kopt
bundle-bench writes it, the build's summary and the report show it). No imports beyond typing, so
readers of results use it without the measuring code."""

from __future__ import annotations

from typing import Mapping

# The one-shot's steps one after another (they add up to the breakdown's total); "session" (its
# creation, on a thread beside voices, token cache and front end) is reported apart.
ONESHOT_PHASES = ("python", "imports", "verify", "voices", "token_cache", "front_end", "session_wait", "first_chunk")


def breakdown_text(bd: Mapping[str, float]) -> str:
    """A cold-start breakdown (``cold_breakdown_s``, or a record's ``cold_<phase>_s`` without the
    affixes) as one line; records from before the session was built beside the front end have no
    front_end and session_wait, and show their session among the steps."""
    parts = [f"{k} {bd[k]:.2f}" for k in ("python", "imports", "verify", "voices", "token_cache") if k in bd]
    if "session_wait" not in bd:
        parts += [f"{k} {bd[k]:.2f}" for k in ("session", "first_chunk") if k in bd]
        return ", ".join(parts)
    parts += [f"{k} {bd[k]:.2f}" for k in ("front_end", "session_wait", "first_chunk") if k in bd]
    return ", ".join(parts) + (f" (the session took {bd['session']:.2f} beside them)" if "session" in bd else "")
