"""Result records: the one machine-readable form of every figure kopt prints.

A results file is JSON lines, one record per (kind, variant, provider) measurement. Each record
carries what produced it: versions, machine (and a short machine id, so records from different
machines are never compared as if from one), provider and its options, threads, and input hashes.
Schema version: ``SCHEMA`` below; readers refuse newer major versions with a clear error.

Record fields:
  schema      "kopt.result/1"
  kind        "bench" | "quality" | "sensitivity" | "build" | ...
  run_id      id shared by all records of one invocation
  time        UTC ISO-8601
  variant     {"name", "key", "parents": [...], "precision", "path"}
  provider    {"name", "config", "options": {...}, "status": "ok"|"skipped"|"failed", "reason"}
  threads     intra-op threads used
  machine     {"id", "cpu", "cores", "hostname", "system", "arch", "memory_bytes"}
  versions    {"kopt", "onnxruntime", "onnx", "numpy", "python"}
  language    the language of the texts measured ("en-us", "ja"); records written before the field
              measured English text and read as "en-us". Quality writes one record per language.
  inputs      input hashes: {"model_sha256", "text_set_sha256", "voice", ...}
  metrics     flat {name: number | null}; units in the name (rtf, load_s, ttfa_ms, rss_mb, size_mb, pesq_wb ...)
  spread      optional {metric: {"p10", "p90", "n", "std"}}
  extra       optional free-form details (partitioning, per-text figures, ...)

Metric names by kind (all optional; a reader must accept missing or null ones):
  bench       size_mb, load_s (cold session creation through the runtime), first_infer_s, rtf_median,
              rtf_p90, rtf_{short,medium,long}_median, ttfa_ms_median, ttfa_ms_p90, rss_peak_mb,
              rss_loaded_mb, and against the run's baseline variant on the same provider config:
              speedup_vs_baseline (baseline RTF / this RTF), size_ratio_vs_baseline,
              rss_ratio_vs_baseline, ttfa_ratio_vs_baseline; on CPU-provider cells, thread scaling:
              rtf_threads_<n>_median for the main thread count and each settings.scaling_threads count
              (null where that count failed). spread: rtf, ttfa_ms, rtf_threads_<n>.
              extra.thread_scaling: {"<n>": {status, rtf_median, rtf_p90, n, repeats, main, speedup_vs_1}
              or {status: failed|skipped, reason}}.
              inputs: model_sha256, text_set, text_set_version, text_set_sha256, texts, voice, speed.
  quality     <metric>_aligned / <metric>_natural for pesq_wb, stoi, estoi, log_mel_db, mrstft(_sc,_logmag),
              mcd_db (means over cases; pesq_wb_*_min too); dnsmos_{ovrl,sig,bak,p808} of the variant's
              natural audio with _ref and _delta; duration_frames_diff, duration_frames_abs,
              duration_tokens_changed, duration_token_abs_diff_max; audio_length_ratio; bit_identical,
              guard_issues, gate_pass (1/0). inputs add reference, reference_key, reference_sha256, voices.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Literal, Optional

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from kopt.core.env import machine, versions
from kopt.core.errors import KoptError
from kopt.core.hashing import canonical_json, sha256_bytes

SCHEMA = "kopt.result/1"
STATUSES = ("ok", "skipped", "failed")
Metric = Optional[float]  # a number, or null when it could not be measured


class _Open(BaseModel):
    """Named fields are required and typed; extra keys are kept (writers may add details)."""

    model_config = ConfigDict(extra="allow")


class VariantRef(_Open):
    name: str
    key: Optional[str] = None
    parents: list[str] = Field(default_factory=list)
    precision: Optional[str] = None
    path: Optional[str] = None


class ProviderInfo(_Open):
    name: Optional[str]
    config: Optional[str] = None
    options: dict[str, Any] = Field(default_factory=dict)
    status: Literal["ok", "skipped", "failed"] = "ok"
    reason: Optional[str] = None


class MachineInfo(_Open):
    id: str


class ResultRecord(_Open):
    """One ``kopt.result/1`` record, typed: what make_record writes and read_records accepts. A
    record missing one of these fields is refused by name, never guessed around."""

    schema_: str = Field(alias="schema", pattern=r"^kopt\.result/\d+$")
    kind: str
    run_id: str
    time: str
    variant: VariantRef
    provider: ProviderInfo
    threads: Optional[int] = None
    language: str = "en-us"  # the texts' language; every record before the field measured English
    machine: MachineInfo
    versions: dict[str, Optional[str]]
    inputs: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Metric | bool]
    spread: Optional[dict[str, dict[str, Any]]] = None
    extra: Optional[dict[str, Any]] = None


class SensitivityEntry(BaseModel):
    """One node group of a sensitivity ranking: its name and its score (higher: less sensitive...
    or more, as the writer's ``metric`` says; the ranking is drawn most sensitive first by score)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    group: str = Field(validation_alias=AliasChoices("group", "name"))
    score: float
    metric: str = "score"


def language_of(rec: dict[str, Any]) -> str:
    """A record's language (en-us for records written before records carried one)."""
    return str(rec.get("language") or "en-us")


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def machine_info() -> dict[str, Any]:
    m = dict(machine())
    ident = {k: m.get(k) for k in ("hostname", "cpu", "cores", "arch", "system")}
    m["id"] = sha256_bytes(canonical_json(ident).encode())[:12]
    return m


def make_record(kind: str, *, run_id: str, variant: dict[str, Any], provider: dict[str, Any],
                metrics: dict[str, Any], threads: int | None = None, inputs: dict[str, Any] | None = None,
                spread: dict[str, Any] | None = None, extra: dict[str, Any] | None = None,
                language: str = "en-us") -> dict[str, Any]:
    prov = {"name": provider.get("name"), "config": provider.get("config", provider.get("name")),
            "options": provider.get("options", {}), "status": provider.get("status", "ok"),
            "reason": provider.get("reason")}
    rec = {
        "schema": SCHEMA,
        "kind": kind,
        "run_id": run_id,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "variant": variant,
        "provider": prov,
        "threads": threads,
        "language": language,
        "machine": machine_info(),
        "versions": versions(),
        "inputs": inputs or {},
        "metrics": {k: _clean(v) for k, v in metrics.items()},
    }
    if spread:
        rec["spread"] = spread
    if extra:
        rec["extra"] = extra
    check_record(rec, f"{kind} record of {variant.get('name')!r}")
    return rec


def check_record(rec: Any, where: str) -> ResultRecord:
    """``rec`` as a typed record; KoptError naming ``where`` and the first missing or wrong field."""
    from kopt.core.recipe import explain

    try:
        return ResultRecord.model_validate(rec)
    except ValidationError as e:
        loc, msg = explain(e)
        raise KoptError(f"{where}: {loc.replace('schema_', 'schema')}: {msg}") from None


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item"):  # numpy scalar
        return _clean(v.item())
    return v


def append_records(path: str | Path, records: Iterable[dict[str, Any]]) -> Path:
    """Append records as JSON lines; each line is written whole (one write call)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, sort_keys=True, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return p


def read_records(*paths: str | Path) -> list[dict[str, Any]]:
    """Read records from files or folders of ``*.jsonl``; a bad line names file and line."""
    out: list[dict[str, Any]] = []
    for path in paths:
        p = Path(path)
        files = sorted(p.rglob("*.jsonl")) if p.is_dir() else [p]
        if not p.exists():
            raise KoptError(f"{p}: results file not found")
        for f in files:
            for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise KoptError(f"{f}:{i}: not a JSON record ({e.msg}); fix or remove the line") from None
                schema = str(rec.get("schema", "")) if isinstance(rec, dict) else ""
                if not schema.startswith("kopt.result/"):
                    raise KoptError(f"{f}:{i}: not a kopt result record (schema {schema!r})")
                if int(schema.split("/")[1]) > int(SCHEMA.split("/")[1]):
                    raise KoptError(f"{f}:{i}: record schema {schema} is newer than this kopt ({SCHEMA}); upgrade kopt")
                check_record(rec, f"{f}:{i}")
                out.append(rec)
    return out


def to_frame(records: list[dict[str, Any]]):
    """Flatten records into a pandas DataFrame: one row per record, metrics as columns."""
    import pandas as pd

    rows = []
    for r in records:
        row = {
            "kind": r.get("kind"), "run_id": r.get("run_id"), "time": r.get("time"),
            "variant": r.get("variant", {}).get("name"), "variant_key": r.get("variant", {}).get("key"),
            "precision": r.get("variant", {}).get("precision"),
            "provider": r.get("provider", {}).get("config") or r.get("provider", {}).get("name"),
            "status": r.get("provider", {}).get("status"), "reason": r.get("provider", {}).get("reason"),
            "threads": r.get("threads"), "language": language_of(r), "machine_id": r.get("machine", {}).get("id"),
            "cpu": r.get("machine", {}).get("cpu"), "onnxruntime": r.get("versions", {}).get("onnxruntime"),
        }
        row.update(r.get("metrics", {}))
        rows.append(row)
    return pd.DataFrame(rows)
