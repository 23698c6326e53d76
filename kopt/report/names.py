"""What a variant is, for people: the recipe's name (records carry it), its key, and what its last pass made
(``hybrid``, ``fp16``, ``int8-static``...) with the per-group precision map where the pass works from one. The
pass reports it in the artifact's record; the build copies it into every result record, and a report given
the store fills it in for records written before that (their precision was read from the model file, so a
hybrid showed as ``int8``)."""

from __future__ import annotations

from typing import Any, Iterable


def variant_facts(store, key: str) -> dict[str, Any]:
    """The precision a variant's last pass reports and, where the pass works from a per-group map, that map
    as {"default": precision, "groups": {selector: precision}}. Empty for models no pass made (the fetched
    base, the rebuilt reference): their records keep the precision read from the model."""
    art = store.get(key) if store is not None else None
    rep = ((art.record.get("extra") or {}).get("report") or {}) if art is not None else {}
    out: dict[str, Any] = {}
    if rep.get("precision"):
        out["precision"] = rep["precision"]
    if isinstance(rep.get("precision_map"), dict):
        out["precision_map"] = {"default": rep.get("default"), "groups": dict(rep["precision_map"])}
    elif rep.get("precision") == "fp16" and rep.get("fp32_groups") is not None:
        out["precision_map"] = {"default": "fp16", "groups": {g: "fp32" for g in rep["fp32_groups"]}}
    return out


def with_facts(records: Iterable[dict[str, Any]], store) -> list[dict[str, Any]]:
    """Records whose variant lacks the pass's facts get them from the store (copies; others as they are)."""
    cache: dict[str, dict[str, Any]] = {}
    out = []
    for r in records:
        v = r.get("variant") or {}
        key = v.get("key")
        if store is None or not key or "precision_map" in v:
            out.append(r)
            continue
        facts = cache.setdefault(key, variant_facts(store, key))
        out.append({**r, "variant": {**v, **facts}} if facts else r)
    return out
