"""Result records: the one machine-readable form of every figure kopt prints.

A results file is JSON lines, one record per (kind, variant, provider, language) measurement, each
carrying what produced it (versions, machine and its short id, provider and options, threads, input
hashes), so records from different machines are never compared as if from one. The pydantic models
below are the schema's one description (their field descriptions render docs/results-schema.md
through :func:`schema_markdown`); ``SCHEMA`` is the version written, and readers refuse newer major
versions with a clear error. Writers build plain dicts (:func:`make_record`, validated before they
are kept); :func:`read_records` hands readers the validated models, which dump back to that dict
form with ``ResultRecord.as_dict()``. The metric names of each kind belong to the metric catalogue
(kopt.select.metrics); docs/results-schema.md lists them.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Literal, Optional, Union

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from kopt.core.env import machine, versions
from kopt.core.errors import KoptError
from kopt.core.hashing import canonical_json, sha256_bytes

SCHEMA = "kopt.result/1"
STATUSES = ("ok", "skipped", "failed")
# a number, or null when it could not be measured; ints and bools stay as written (gate_pass, counts)
Metric = Optional[Union[int, float, bool]]


class _Open(BaseModel):
    """Named fields are required and typed; extra keys are kept (writers may add details)."""

    model_config = ConfigDict(extra="allow")

    def as_dict(self) -> dict[str, Any]:
        """The JSON form this was read from: keys by alias (``schema``), only the fields the input
        had, extra keys kept, so a record read and dumped writes back the same line."""
        return self.model_dump(by_alias=True, exclude_unset=True)


class VariantRef(_Open):
    """The model measured."""

    name: str = Field(description="the recipe's variant name (or the baseline's ref name)")
    key: Optional[str] = Field(None, description="content key of the model in the artifact store")
    parents: list[str] = Field(default_factory=list, description="keys of the models it was made from, "
                               "nearest first")
    precision: Optional[str] = Field(None, description="what the last pass made: `hybrid`, `fp16`, "
                                     "`int8-static`, ...")
    precision_map: Optional[dict[str, Any]] = Field(None, description="for passes that work from a per-group "
                                                    "map: `{selector: precision}`, as in the bundle manifest")
    precision_default: Optional[str] = Field(None, description="the precision of what no selector of "
                                             "`precision_map` matches")
    path: Optional[str] = Field(None, description="where the model file was when measured")

    @property
    def ident(self) -> str:
        """The key, or the name for a record without one: what records join on."""
        return str(self.key or self.name)


class ProviderInfo(_Open):
    """The execution provider a figure was measured on, and whether it ran."""

    name: Optional[str] = Field(description="onnxruntime provider name (`CPUExecutionProvider`), null for "
                                "records no provider measured")
    config: Optional[str] = Field(None, description="the provider config's name (a provider with its "
                                  "options); the matrix is split on it")
    options: dict[str, Any] = Field(default_factory=dict, description="the provider options used")
    status: Literal["ok", "skipped", "failed"] = Field("ok", description="whether it ran; a record that did "
                                                       "not run carries no figures of it")
    reason: Optional[str] = Field(None, description="why it was skipped or failed")

    @property
    def label(self) -> str:
        """The config name, else the provider name."""
        return str(self.config or self.name)


class MachineInfo(_Open):
    """The machine measured on."""

    id: str = Field(description="short hash of hostname, cpu, cores, arch and system: records of different "
                    "ids are never compared for speed or memory")
    cpu: Optional[str] = Field(None, description="CPU model name")
    cores: Optional[int] = Field(None, description="cores available to the process")
    hostname: Optional[str] = Field(None, description="the host's name")
    system: Optional[str] = Field(None, description="`Linux`, `Darwin`, ...")
    arch: Optional[str] = Field(None, description="`x86_64`, `aarch64`, ...")
    memory_bytes: Optional[int] = Field(None, description="physical memory")
    int8_dot: Optional[str] = Field(None, description="the int8 dot product onnxruntime's CPU kernels get: "
                                    "`amx`, `vnni`, `avx2` or `other` (int8 quality measured on `avx2` can "
                                    "differ, see docs/quantization.md)")

    @property
    def label(self) -> str:
        """A short human label: cpu (or arch) and cores."""
        cpu = str(self.cpu or self.arch or "?")
        return f"{cpu} x{self.cores}" if self.cores else cpu


class ResultRecord(_Open):
    """One ``kopt.result/1`` record, typed: what make_record writes and read_records accepts. A
    record missing one of these fields is refused by name, never guessed around."""

    schema_: str = Field(alias="schema", pattern=r"^kopt\.result/\d+$", description=f"the schema's version, `{SCHEMA}`")
    kind: str = Field(description="`bench`, `quality`, `sensitivity`, `bundle`, ...")
    run_id: str = Field(description="shared by all records of one invocation")
    time: str = Field(description="UTC, ISO-8601")
    variant: VariantRef = Field(description="the model measured")
    provider: ProviderInfo = Field(description="the provider measured on")
    threads: Optional[int] = Field(None, description="intra-op threads used")
    language: str = Field("en-us", description="the language of the texts measured (`en-us`, `ja`); a record "
                          "without it measured English, and quality writes one record per language")
    machine: MachineInfo = Field(description="the machine measured on")
    versions: dict[str, Optional[str]] = Field(description="kopt, onnxruntime, onnx, numpy, python")
    inputs: dict[str, Any] = Field(default_factory=dict, description="what was measured, by hash: model_sha256, "
                                   "text_set, text_set_version, text_set_sha256, texts, voice, speed; quality adds "
                                   "reference, reference_key, reference_sha256, voices")
    metrics: dict[str, Metric] = Field(description="flat `{name: number or null}`, units in the names (see "
                                       "below); a reader accepts missing or null ones")
    spread: Optional[dict[str, dict[str, Any]]] = Field(None, description="`{metric: {p10, p90, min, max, std, "
                                                       "n}}` of the samples behind a median")
    extra: Optional[dict[str, Any]] = Field(None, description="free-form details: per-text timings, node "
                                            "placement, gates, per-case scores, cache provenance, thread "
                                            "scaling, a sensitivity ranking, a bundle's load runs")


class SensitivityEntry(BaseModel):
    """One node group of a sensitivity ranking: its name and its score (higher: less sensitive...
    or more, as the writer's ``metric`` says; the ranking is drawn most sensitive first by score)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    group: str = Field(validation_alias=AliasChoices("group", "name"))
    score: float
    metric: str = "score"


RecordLike = Union[ResultRecord, dict[str, Any]]


def language_of(rec: ResultRecord) -> str:
    """A record's language (en-us for records written before records carried one)."""
    return rec.language or "en-us"


def as_records(records: Iterable[RecordLike], where: str = "record") -> list[ResultRecord]:
    """Records as the typed models: models as they are, dicts (what make_record returns) validated."""
    return [r if isinstance(r, ResultRecord) else check_record(r, where) for r in records]


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


def read_records(*paths: str | Path) -> list[ResultRecord]:
    """The records of files or folders of ``*.jsonl``, validated; a bad line names file and line."""
    out: list[ResultRecord] = []
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
                out.append(check_record(rec, f"{f}:{i}"))
    return out


def _type_text(t: Any) -> str:
    """A field's type as the JSON reader sees it: ``string or null``, ``object``, a nested model's name."""
    import types
    import typing

    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin in (Union, types.UnionType):
        parts = [_type_text(a) for a in args if a is not type(None)]
        if "number" in parts:  # an int is a JSON number
            parts = [x for x in parts if x != "integer"]
        return " or ".join(dict.fromkeys(parts)) + (" or null" if type(None) in args else "")
    if origin is Literal:
        return " or ".join(f"`{a}`" for a in args)
    if origin is list:
        return f"list of {_type_text(args[0])}" if args else "list"
    if origin is dict or t is dict:
        return f"object of {_type_text(args[1])}" if args and args[1] is not Any else "object"
    if isinstance(t, type) and issubclass(t, BaseModel):
        return f"[{t.__name__}](#{t.__name__.lower()})"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(t, "any")


def schema_markdown() -> str:
    """The record models as Markdown: one table per model (field, type, whether required, description),
    the generated part of docs/results-schema.md."""
    out: list[str] = []
    for model in (ResultRecord, VariantRef, ProviderInfo, MachineInfo):
        doc = " ".join((model.__doc__ or "").split())
        out += [f"### {model.__name__}", "", doc, "", "| field | type | required | description |",
                "| --- | --- | --- | --- |"]
        for name, f in model.model_fields.items():
            if f.is_required():
                req = "yes"
            elif f.default_factory is not None:
                req = f"no (`{json.dumps(f.default_factory())}`)"  # type: ignore[call-arg]
            else:
                req = f"no (`{json.dumps(f.default)}`)"
            desc = (f.description or "").replace("|", "\\|")
            out.append(f"| `{f.alias or name}` | {_type_text(f.annotation)} | {req} | {desc} |")
        out.append("")
    return "\n".join(out)
