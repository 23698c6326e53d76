"""What a variant is, for people: the recipe's name (records carry it), its key, and what its last pass made
(``hybrid``, ``fp16``, ``int8-static``...) with the per-group precision map where the pass works from one. The
pass reports it in the artifact's record; the build copies it into every result record, and a report given
the store fills it in for records written before that (their precision was read from the model file, so a
hybrid showed as ``int8``)."""

from __future__ import annotations

from typing import Any, Iterable

from kopt.core.results import ResultRecord


def variant_facts(store, key: str) -> dict[str, Any]:
    """What made a variant, from the nearest step of its lineage that recorded a precision (as the bundle
    manifest reads it): ``precision`` ("hybrid", "fp16", "int8-static", ...) and, where the pass works from a
    per-group map, ``precision_map`` ({selector: precision}, the manifest's shape) and ``precision_default``
    (what no selector matches). Empty for models no pass made (the fetched base, the rebuilt reference): their
    records keep the precision read from the model."""
    seen: set[str] = set()
    k: str | None = key
    while k and k not in seen and store is not None:
        seen.add(k)
        art = store.get(k)
        if art is None:
            break
        rep = (art.record.get("extra") or {}).get("report") or {}
        if rep.get("precision"):
            out: dict[str, Any] = {"precision": rep["precision"]}
            if isinstance(rep.get("precision_map"), dict):
                out["precision_map"] = dict(rep["precision_map"])
                out["precision_default"] = rep.get("default")
            elif rep.get("precision") == "fp16" and rep.get("fp32_groups") is not None:
                out["precision_map"] = {g: "fp32" for g in rep["fp32_groups"]}
                out["precision_default"] = "fp16"
            return out
        parents = art.record.get("parents") or []
        k = parents[0] if parents else None
    return {}


def with_facts(records: Iterable[ResultRecord], store) -> list[ResultRecord]:
    """Records whose variant lacks the pass's facts get them from the store (copies; others as they are)."""
    cache: dict[str, dict[str, Any]] = {}
    out = []
    for r in records:
        v = r.variant
        key = v.key
        if store is None or not key or "precision_map" in v.model_fields_set:
            out.append(r)
            continue
        facts = cache.setdefault(key, variant_facts(store, key))
        out.append(r.model_copy(update={"variant": v.model_copy(update=facts)}) if facts else r)
    return out
