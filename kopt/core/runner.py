"""The runner: builds each variant of a recipe by running its chain of passes, step by step.

Each step is one artifact in the store, keyed by content (input model sha256, ``pass:<name>@<version>``,
a hash of the pass's code and the kopt modules it imports (kopt.core.codehash), the frozen config,
kopt and onnxruntime versions, and the provider for passes that depend on it).
A step whose artifact exists is reused; otherwise it is built under a per-step file lock (two builds
sharing ``artifacts/`` wait for each other instead of colliding): the input is loaded once, the pass
runs through ``Pass.apply`` (one conversion to onnx-ir and back for a graph rewrite, its
preconditions and postconditions, ONNX's checker once), and its output is checked against the
model contract and, for passes that must keep the maths, against its input (kopt.core.equivalence).
Any failure marks that variant failed with the reason; the other variants go on.

A step's record (``record.json``) holds its parent key, pass, config, report, contract summary and
the measured equivalence diff: the lineage a report can draw.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx

from kopt.core.codehash import module_code_hash
from kopt.core.contract import signature
from kopt.core.errors import KoptError, ModelError
from kopt.core.hashing import sha256_file
from kopt.core.kokoro import first_line
from kopt.core.model import load_model, model_size, op_histogram, save_model
from kopt.core.passes import Pass, PassContext, PassResult, get_pass, make_config
from kopt.core.progress import NullProgress
from kopt.core.recipe import Recipe
from kopt.core.store import Artifact, ArtifactStore, StepSpec

log = logging.getLogger("kopt.runner")

MODEL_FILES = ("model.onnx", "model.ort")


@dataclass(frozen=True)
class ModelInput:
    """A resolved input model: its file, content hash, and the artifact it came from (if any)."""

    path: Path
    sha256: str
    key: str | None = None


@dataclass
class StepOutcome:
    pass_name: str
    config: dict[str, Any]
    key: str
    cached: bool
    seconds: float
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class VariantResult:
    name: str
    status: Literal["ok", "failed", "cached"]
    key: str | None = None
    model_path: str | None = None
    steps: list[StepOutcome] = field(default_factory=list)
    reason: str | None = None
    input: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def model_file(art: Artifact) -> Path:
    for name in MODEL_FILES:
        if name in art.files:
            return art.path / name
    raise KoptError(f"{art.path}: artifact holds no model (files: {', '.join(art.files) or 'none'})")


def resolve_input(store: ArtifactStore, spec: str) -> ModelInput:
    """A ref name ("base", "reference"), an artifact key (or unique prefix), or a model path."""
    from kopt.core.refs import resolve

    p = Path(spec)
    if p.suffix in (".onnx", ".ort") or p.is_file():
        if not p.is_file():
            raise KoptError(f"{p}: model file not found")
        return ModelInput(p, sha256_file(p), None)
    art = resolve(store, spec)
    mf = model_file(art)
    return ModelInput(mf, art.sha256(mf.name), art.key)


def style_pack(store: ArtifactStore) -> np.ndarray | None:
    """The first voice (by name) of the last fetch, used for every check; None without a fetch."""
    from kopt.core.base_artifact import BASE_VOICES
    from kopt.core.refs import resolve

    try:
        base = resolve(store, "base")
        path = base.file(BASE_VOICES)
    except KoptError:
        return None
    from kopt.core.voicepack import pack_voice

    return pack_voice(path)[1]


def _fixed_token_len(m, name: str) -> int | None:
    vi = next(i for i in m.graph.input if i.name == name)
    dims = vi.type.tensor_type.shape.dim
    return dims[1].dim_value if len(dims) == 2 and dims[1].HasField("dim_value") else None


def check_output(path: Path, pack: np.ndarray | None) -> dict[str, Any]:
    """The model contract on a pass's output (.onnx through kopt.core.contract, .ort through a
    session), with the test sentence fitted to a fixed token length when the model has one."""
    from kopt.core.contract import check_audio, check_model, test_tokens
    from kopt.core.equivalence import fit, model_io, session
    from kopt.core.kokoro import style_of

    if path.suffix == ".onnx":
        from kopt.core.contract import signature

        m = load_model(path, load_external_data=False)
        sig = signature(m, path)
        token_len = _fixed_token_len(m, sig.tokens)
        del m
        tokens = fit(test_tokens(), token_len)
        style = style_of(pack, tokens.size - 2) if pack is not None else None
        if token_len is not None:
            tokens = np.pad(tokens, (0, token_len - tokens.size))
        return check_model(path, style=style, tokens=tokens, threads=1).as_dict()
    sess = session(path, threads=1, optimize=True)
    io_ = model_io(sess, path)
    tokens = fit(test_tokens(), io_.token_len)
    if io_.other_inputs:
        raise ModelError(f"{path}: not a Kokoro graph: unexpected required input(s) {list(io_.other_inputs)}")
    audio = sess.run([io_.audio], io_.feeds(tokens, style_of(pack, tokens.size - 2)))[0]
    chk = check_audio(np.asarray(audio).reshape(-1), len(tokens), str(path))
    return {"path": str(path), "audio": asdict(chk), "providers": sess.get_providers()}


class Runner:
    def __init__(self, store: ArtifactStore, progress=None, provider: str = "CPUExecutionProvider",
                 threads: int = 1):
        self.store = store
        self.progress = progress or NullProgress()
        self.provider = provider
        self.threads = threads
        self._pack: np.ndarray | None | bool = False

    @property
    def pack(self) -> np.ndarray | None:
        if self._pack is False:
            self._pack = style_pack(self.store)
        return self._pack  # type: ignore[return-value]

    def run(self, recipe: Recipe, warn: bool = True) -> list[VariantResult]:
        """Build every variant; a failed one is recorded with its reason (and, with ``warn``, reported
        through the progress hooks) while the others go on."""
        results = []
        for v in recipe.variants:
            spec = v.input or recipe.input
            res = VariantResult(name=v.name, status="cached", input=spec)
            try:
                cur = resolve_input(self.store, spec)
                for i, step in enumerate(v.passes):
                    cls = get_pass(step.pass_name)
                    cfg = make_config(cls, step.config, where=f"variant {v.name!r} step {i}")
                    outcome, cur = self.step(cls(cfg), cur, label=f"{v.name}: {cls.name}")
                    res.steps.append(outcome)
                res.key, res.model_path = cur.key, str(cur.path)
                res.status = "cached" if all(s.cached for s in res.steps) else "ok"
                self.progress.info(f"{v.name}: {'reused (all cached)' if res.status == 'cached' else 'built'} "
                                   f"-> {cur.key}")
            except Exception as e:  # one variant's failure never stops the others
                res.status = "failed"
                res.reason = _reason(e)
                log.debug("variant %s failed", v.name, exc_info=True)
                if warn:
                    self.progress.warn(f"{v.name}: failed: {res.reason}")
            results.append(res)
        return results

    # -- one step ---------------------------------------------------------------------------
    def step(self, p: Pass, inp: ModelInput, label: str = "") -> tuple[StepOutcome, ModelInput]:
        cls = type(p)
        config = p.config.model_dump(mode="json")
        code = module_code_hash(cls.__module__)
        spec = StepSpec(step=f"pass:{cls.name}@{cls.version}", config=config,
                        inputs={"model": inp.sha256, "code": code, **p.key_inputs()},
                        parents=(inp.key,) if inp.key else (),
                        provider=self.provider if cls.depends_on_provider else None)
        t0 = time.time()
        with self.store.lock(spec.key):
            hit = self.store.get(spec.key)
            if hit is not None:
                mf = model_file(hit)
                self.progress.info(f"{label}: cache hit {hit.key}")
                return (StepOutcome(cls.name, config, hit.key, True, 0.0, hit.record.get("extra", {}).get("report", {})),
                        ModelInput(mf, hit.sha256(mf.name), hit.key))
            if inp.path.suffix != ".onnx":
                raise KoptError(f"pass {cls.name!r} needs an ONNX model but its input is {inp.path.name}; "
                                "put format conversions (ort-format) last in the chain")
            extra: dict[str, Any] = {"pass": cls.name, "pass_version": cls.version, "code": code, "config": config,
                                     "parent": inp.key, "input_path": str(inp.path)}
            with self.progress.task(label or cls.name), self.store.writing(spec, extra) as tmp:
                model = load_model(inp.path)
                signature(model, inp.path)  # a graph that is not Kokoro fails here, in one line, before the pass
                before_ops, before_size = op_histogram(model), model_size(inp.path)
                ctx = PassContext(workdir=tmp / "work", input_path=inp.path, progress=self.progress,
                                  provider=self.provider)
                ctx.workdir.mkdir()
                result: PassResult = p.apply(model, ctx)
                del model
                out = tmp / f"model{cls.output_suffix}"
                if result.model is not None:
                    assert isinstance(result.model, onnx.ModelProto)  # Pass.apply hands back protobuf
                    save_model(result.model, out)
                    after_ops = op_histogram(result.model)
                elif result.path is not None:  # a file the pass wrote (e.g. .ort): no graph to count
                    shutil.move(str(result.path), out)
                    after_ops = {}
                else:
                    raise KoptError(f"pass {cls.name!r} returned neither a model nor a file")
                result.model = None
                for name, f in result.extra_files.items():
                    shutil.move(str(f), tmp / name)
                shutil.rmtree(ctx.workdir, ignore_errors=True)
                extra["report"] = {**result.report, **_op_report(before_ops, after_ops, before_size, model_size(out))}
                extra["contract"] = check_output(out, self.pack)
                if cls.equivalent:
                    from kopt.core.equivalence import check_equivalence

                    tol = float(cls.tolerance if cls.tolerance is not None else 0.0)
                    extra["equivalence"] = check_equivalence(
                        inp.path, out, tol, label=f"pass {cls.name!r}", style_pack=self.pack, threads=self.threads,
                        reference_level=p.reference_level()).as_dict()
                    extra["report"]["max_abs_diff"] = extra["equivalence"]["max_abs_diff"]
        art = self.store.get(spec.key)
        if art is None:
            raise KoptError(f"{self.store.root / spec.key}: step finished but its artifact is missing")
        mf = model_file(art)
        return (StepOutcome(cls.name, config, art.key, False, round(time.time() - t0, 2), extra["report"]),
                ModelInput(mf, art.sha256(mf.name), art.key))


def _op_report(before: dict[str, int], after: dict[str, int], size_before: int, size_after: int) -> dict[str, Any]:
    changed = {k: [before.get(k, 0), after.get(k, 0)] for k in sorted(set(before) | set(after))
               if before.get(k, 0) != after.get(k, 0)}
    out: dict[str, Any] = {"bytes_before": size_before, "bytes_after": size_after,
                           "ops_changed": changed}
    if after:
        out["nodes_before"], out["nodes_after"] = sum(before.values()), sum(after.values())
    return out


def _reason(e: BaseException) -> str:
    if isinstance(e, KoptError):
        return first_line(e, 10_000)
    return f"{type(e).__name__}: {first_line(e)}" if str(e).strip() else type(e).__name__
