"""`kopt publish`: a variant as a runtime bundle people can ship.

The bundle holds the model (.onnx, and .ort when asked), the validated voice NPZ (blends included),
the token cache, the runtime, licence notices and a model card, with a manifest recording every
file's sha256 and size, the variant's key and full lineage back to the base model's sha256, its
measured metrics and the machine they came from, and the recommended provider and session options;
and its languages (kopt.publish.languages): the languages its voices speak with their G2P packages
and versions, and ``voice_languages`` for voices whose names do not say their language.
"""

from __future__ import annotations

import json
import os
import tarfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from kopt.core.env import versions
from kopt.core.errors import KoptError
from kopt.core.progress import NullProgress
from kopt.core.refs import resolve
from kopt.core.store import Artifact, ArtifactStore, StepSpec
from kopt.publish.settings import PublishSettings

LICENSE_FILES = {
    "LICENSES/LICENSE-Apache-2.0.txt": "LICENSE-Apache-2.0.txt",
    "LICENSES/LICENSE-kokoro-onnx-MIT.txt": "LICENSE-kokoro-onnx-MIT.txt",
}
TOKENCACHE_VERSION = 1


@dataclass(frozen=True)
class Published:
    bundle: Path
    tarball: Path | None
    manifest: dict[str, Any]


def lineage(store: ArtifactStore, key: str) -> list[dict[str, Any]]:
    """The chain of steps from ``key`` back to the base model (nearest first)."""
    out, seen = [], set()
    todo = [key]
    while todo:
        k = todo.pop(0)
        if k in seen:
            continue
        seen.add(k)
        art = store.get(k)
        if art is None:
            out.append({"key": k, "missing": True})
            continue
        rec = art.record
        files = {n: f["sha256"] for n, f in art.files.items() if n.endswith((".onnx", ".ort"))}
        out.append({"key": k, "step": rec.get("step"), "config": rec.get("config"), "parents": rec.get("parents", []),
                    "model_sha256": files})
        todo.extend(rec.get("parents", []))
    return out


def token_cache(store: ArtifactStore, settings: PublishSettings, vocab: dict[str, int], progress=None) -> Path | None:
    """The token cache for ``settings``, built once and kept in the store (building needs G2P)."""
    if settings.cache_words == 0 and not settings.phrases:
        return None
    from kopt.core.hashing import canonical_json, sha256_bytes
    from kopt.publish.tokencache import CacheConfig, build_cache

    cfg = {"version": TOKENCACHE_VERSION, "words": settings.cache_words, "phrases": list(settings.phrases)}
    spec = StepSpec("tokencache", cfg, {"vocab": sha256_bytes(canonical_json(vocab).encode())})
    with store.lock(spec.key):
        hit = store.get(spec.key)
        if hit is None:
            with store.writing(spec) as tmp:
                cache = build_cache(CacheConfig(words=settings.cache_words, phrases=tuple(settings.phrases)),
                                    progress=progress)
                cache.save(tmp / "token_cache.json.gz")
            hit = store.get(spec.key)
    return hit.file("token_cache.json.gz")


@dataclass(frozen=True)
class Release:
    """What a bundle ships. ``variant``: artifact key or ref name; ``name``: its recipe name (the
    manifest shows it, key beside it); ``modes``: quality mode -> (recipe name, artifact key) of the
    variant it serves; ``publish_key``: the build's content key of this publish, kept in the manifest
    so the build can tell the bundle there is current."""

    variant: str
    name: str | None = None
    modes: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    publish_key: str | None = None


@dataclass(frozen=True)
class Figures:
    """What the manifest and model card say about running the model: its measured ``metrics``, the
    machine they were measured on (``measured_on``), and the provider options it recommends."""

    metrics: Mapping[str, Any] = field(default_factory=dict)
    measured_on: Mapping[str, Any] = field(default_factory=dict)
    provider_options: Mapping[str, Any] = field(default_factory=dict)


def publish(store: ArtifactStore, release: Release | str, out: str | Path, settings: PublishSettings | None = None,
            *, figures: Figures = Figures(), progress=None, overwrite: bool = True) -> Published:
    """Write the bundle for ``release`` (a Release, or just the variant's key or ref name) at ``out``
    (and ``out``.tar.gz). The published variant is the default mode's model unless
    ``settings.default_mode`` names another."""
    from kopt.core.vocab import load_vocab
    from kopt.publish.bundle import write_bundle

    settings = settings or PublishSettings()
    progress = progress or NullProgress()
    release = release if isinstance(release, Release) else Release(release)
    art = resolve(store, release.variant)
    base = resolve(store, "base")
    voices, default_voice = _voices(base, settings)
    vocab = load_vocab(base.file("vocab.json"))
    with progress.task("token cache"):
        cache = token_cache(store, settings, vocab, progress)
    extra_files: dict[str, Any] = {rel: (resources.files("kopt") / "data" / "licenses" / lic).read_bytes()
                                   for rel, lic in LICENSE_FILES.items()}
    models = _models(store, art, release, settings, progress)
    extra_files.update(models.files)
    manifest = _manifest(store, base, models, voices, default_voice, settings, figures, release.publish_key)
    extra_files["README.md"] = model_card(manifest, sorted(voices)).encode()
    with progress.task("writing bundle"):
        bundle = write_bundle(Path(out), models.main.onnx, voices, vocab, cache, manifest, overwrite=overwrite,
                              extra_files=extra_files, runtime_model=models.runtime_model)
    tar = _tarball(bundle) if settings.tarball else None
    return Published(bundle, tar, json.loads((bundle / "manifest.json").read_text(encoding="utf-8")))


@dataclass(frozen=True)
class _Models:
    """The models a bundle ships: the published variant as shipped, the file the runtime loads, and
    the other modes' models (``files``: bundle path -> file, beside model.onnx)."""

    variant: Artifact
    name: str | None
    main: "_Shipped"
    runtime_model: str
    modes: dict[str, Any]         # the manifest's ``modes`` (empty: one mode)
    default_mode: str | None
    files: dict[str, Path]


def _models(store: ArtifactStore, art: Artifact, release: Release, settings: PublishSettings, progress) -> _Models:
    modes, default_mode = _plan_modes(dict(release.modes), art.key, release.name, settings)
    name = release.name
    if default_mode is not None:
        name, key = modes[default_mode]
        art = resolve(store, key)
    main = _shipped(store, art, settings, progress)
    files: dict[str, Path] = {}
    if main.ort is not None:
        files["model.ort"] = main.ort
    runtime_model = "model.ort" if main.ort is not None else "model.onnx"
    entries = _mode_entries(store, modes, default_mode, main, name, runtime_model, settings, progress, files)
    return _Models(art, name, main, runtime_model, entries, default_mode, files)


def _manifest(store: ArtifactStore, base: Artifact, models: _Models, voices: dict[str, Any], default_voice: str,
              settings: PublishSettings, figures: Figures, publish_key: str | None) -> dict[str, Any]:
    """The manifest's fields beyond the file layout (kopt.publish.bundle writes those)."""
    import kokoro_runtime
    from kopt.publish.languages import languages_entry, voice_languages

    spoken, declared = voice_languages(voices, settings.blends, settings.voice_languages,
                                       settings.default_language or "en-us")
    session = {"graph_optimization": "all", "intra_op_num_threads": 0}
    if models.main.ort is not None:
        session["graph_optimization"] = "disabled (optimizations baked into model.ort)"
    metrics = dict(figures.metrics)
    return {
        "variant": _variant_entry(store, models.variant, models.name, models.main),
        "lineage": lineage(store, models.main.artifact.key),
        "base_model_sha256": base.sha256("model.onnx"),
        "metrics": metrics,
        "measured_on": dict(figures.measured_on),
        "recommended": {"provider": settings.provider, "provider_options": dict(figures.provider_options),
                        "session": session, "runtime_model": models.runtime_model},
        "built_with": versions(),
        "runtime_version": kokoro_runtime.__version__,
        "default_voice": default_voice,
        "languages": languages_entry(spoken, metrics),
        **({"voice_languages": declared} if declared else {}),
        **({"default_language": settings.default_language} if settings.default_language else {}),
        **({"modes": models.modes, "default_mode": models.default_mode} if models.modes else {}),
        **({"publish_key": publish_key} if publish_key else {}),
        "licenses": {"weights_and_voices": "Apache-2.0 (hexgrad/Kokoro-82M)",
                     "onnx_export_and_vocab": "MIT (thewh1teagle/kokoro-onnx)"},
    }


def _precision_of(path: Path) -> str:
    """For a model no step recorded a precision for (a fetched base): what its graph computes in."""
    from kopt.core.model import load_model
    from kopt.core.precision import precision_of

    return precision_of(load_model(path, load_external_data=False))


def _voices(base: Artifact, settings: PublishSettings) -> tuple[dict[str, Any], str]:
    """The base's voices, less those not asked for, plus the blends; and the default voice."""
    from kopt.source.fetch import load_base_voices
    from kopt.source.voices import add_blend

    voices = load_base_voices(base)
    if settings.voices:
        missing = [v for v in settings.voices if v not in voices]
        if missing:
            raise KoptError(f"publish.voices: unknown voice(s) {', '.join(missing)}; known: {', '.join(sorted(voices))}")
        voices = {k: voices[k] for k in settings.voices}
    for bname, spec in settings.blends.items():
        voices = add_blend(voices, bname, spec)
    default_voice = settings.default_voice or sorted(voices)[0]
    if default_voice not in voices:
        raise KoptError(f"publish.default_voice: {default_voice!r} is not among {', '.join(sorted(voices))}")
    return voices, default_voice


def _plan_modes(modes: dict[str, tuple[str, str]], key: str, name: str | None,
                settings: PublishSettings) -> tuple[dict[str, tuple[str, str]], str | None]:
    """The modes, (recipe name, key) each, and the default one. The published variant always ships:
    as mode "default" when no listed mode names it. No modes listed: one mode, no entries."""
    modes = dict(modes)
    winner_mode = next((m for m, (_, k) in modes.items() if k == key), None)
    if modes and winner_mode is None and settings.default_mode is None:
        winner_mode = "default" if "default" not in modes else "published"
        modes = {winner_mode: (name or key, key), **modes}
    return modes, settings.default_mode or winner_mode


def _mode_entries(store: ArtifactStore, modes: dict[str, tuple[str, str]], default_mode: str | None,
                  main: "_Shipped", name: str | None, runtime_model: str, settings: PublishSettings, progress,
                  extra_files: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``modes``: the default mode is the bundle's main model; every other mode's
    model (as shipped: timings, .ort) goes into ``modes/`` (added to ``extra_files``)."""
    entries: dict[str, Any] = {}
    for mode, (vname, key) in modes.items():
        if mode == default_mode:
            entries[mode] = {"model": runtime_model, "onnx_model": "model.onnx",
                             "variant": _variant_entry(store, main.source, name, main)}
            continue
        shipped = _shipped(store, resolve(store, key), settings, progress)
        entry = {"onnx_model": f"modes/{mode}.onnx",
                 "variant": _variant_entry(store, resolve(store, key), vname, shipped)}
        extra_files[entry["onnx_model"]] = shipped.onnx
        if shipped.ort is not None:
            extra_files[f"modes/{mode}.ort"] = shipped.ort
        entry["model"] = f"modes/{mode}.ort" if shipped.ort is not None else entry["onnx_model"]
        entries[mode] = entry
    return entries


@dataclass(frozen=True)
class _Shipped:
    artifact: Artifact        # the model as shipped (after the timings pass)
    source: Artifact          # the variant it was made from
    onnx: Path
    ort: Path | None
    timings: str = ""          # "duration" (the output's name) or why there is none


def _shipped(store: ArtifactStore, art: Artifact, settings: PublishSettings, progress) -> _Shipped:
    """The variant as a bundle ships it: with its ``duration`` output (the timings pass) when asked,
    and its .ort form when asked; both steps are cached artifacts in the lineage."""
    from kopt.core.runner import model_file

    src = art
    if model_file(art).suffix != ".onnx":
        raise KoptError(f"{art.path}: publish needs an .onnx model (kokoro-onnx and other clients read ONNX); "
                        "set publish.ort = true to add the .ort form")
    timings = "not asked (publish.timings = false)"
    if settings.timings:
        from kopt.optimize.durations import duration_chain_problem

        problem = duration_chain_problem(model_file(art))
        if problem is None:
            art = _step(store, art, "timings", {}, progress)
            timings = "duration"
        else:  # a graph without Kokoro's duration chain still ships, without word timings
            timings = f"unavailable: {problem}"
            progress.warn(f"no word timings in the bundle: {problem}")
    ort = model_file(_step(store, art, "ort-format", {"level": settings.ort_level}, progress)) if settings.ort else None
    return _Shipped(art, src, model_file(art), ort, timings)


def _step(store: ArtifactStore, art: Artifact, pass_name: str, config: dict[str, Any], progress) -> Artifact:
    from kopt.core.passes import get_pass, make_config
    from kopt.core.runner import Runner, resolve_input

    cls = get_pass(pass_name)
    p = cls(make_config(cls, config))
    _, out = Runner(store, progress=progress).step(p, resolve_input(store, art.key), label="publish")
    made = store.get(out.key)
    if made is None:
        raise KoptError(f"publish: the {pass_name} step left no artifact {out.key}")
    return made


def _variant_entry(store: ArtifactStore, art: Artifact, name: str | None, shipped: _Shipped) -> dict[str, Any]:
    """Recipe name, key, precision (and the hybrid map) from the nearest step that recorded one."""
    prec: dict[str, Any] = {}
    for step in lineage(store, art.key):
        a = store.get(step["key"])
        rep = a.record.get("extra", {}).get("report", {}) if a else {}
        if rep.get("precision"):
            prec = {k: rep[k] for k in ("precision", "precision_map", "default", "precision_by_group") if k in rep}
            break
    return {"name": name or art.key, "key": art.key, "precision": prec.get("precision") or _precision_of(shipped.onnx),
            "precision_map": prec.get("precision_map"), "precision_by_group": prec.get("precision_by_group"),
            "shipped_key": shipped.artifact.key, "model_sha256": shipped.artifact.sha256(shipped.onnx.name),
            "timings": shipped.timings}


def _tarball(bundle: Path) -> Path:
    tar = bundle.with_name(bundle.name + ".tar.gz")
    part = tar.with_name(tar.name + ".part")
    with tarfile.open(part, "w:gz") as tf:
        for p in sorted(bundle.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts:
                tf.add(p, arcname=f"{bundle.name}/{p.relative_to(bundle).as_posix()}")
    os.replace(part, tar)
    return tar


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


# a sample sentence per language for the usage text (the runtime's front end reads it)
_SAMPLES = {"ja": "こんにちは、今日はいい天気ですね。", "en-us": "Hello there.", "en-gb": "Hello there.",
            "es": "Hola, ¿qué tal?", "fr-fr": "Bonjour à tous.", "it": "Ciao a tutti.", "pt-br": "Olá, tudo bem?",
            "hi": "नमस्ते, आप कैसे हैं?", "zh": "你好，今天天气很好。"}


def _usage(m: dict[str, Any]) -> list[str]:
    """Install and speak lines: per language the bundle speaks (most voices first), its extra and an
    example with one of its voices; Japanese first when the bundle speaks it."""
    langs = m.get("languages") or {"en-us": {"name": "American English", "extra": "g2p",
                                              "voices": [m["default_voice"]]}}
    order = sorted(langs, key=lambda c: (c != "ja", list(langs).index(c)))
    lines = ["```bash", "pip install './kokoro_runtime'            # numpy and onnxruntime: the runtime itself"]
    for code in order:
        e = langs[code]
        why = ("Japanese G2P: pyopenjtalk-plus, misaki" if e.get("extra") == "ja"
               else "espeak G2P for text outside the token cache" if e.get("extra") == "g2p" else f"{e.get('name')} G2P")
        lines.append(f"pip install './kokoro_runtime[{e.get('extra')}]'" + " " * max(1, 23 - len(str(e.get("extra"))))
                     + f"# {e.get('name', code)} ({code}): {why}")
    for code in order:
        e = langs[code]
        voice = m["default_voice"] if m["default_voice"] in e.get("voices", []) else (e.get("voices") or ["VOICE"])[0]
        text = _SAMPLES.get(code, "Hello there.")
        lines.append(f'python -m kokoro_runtime "{text}" --voice {voice} -o {code}.wav   # {e.get("name", code)}')
    lines.append("```")
    if "voice_languages" in m:
        lines += ["", "Voices whose names do not say their language: "
                  + ", ".join(f"`{v}` {c}" for v, c in sorted(m["voice_languages"].items()))
                  + " (the manifest's `voice_languages`; `--lang` overrides per request)."]
    return lines


def model_card(m: dict[str, Any], voices: list[str]) -> str:
    """The bundle's README.md from its manifest fields (kopt.publish.publish._manifest)."""
    from kopt.publish.bundle import VOICES_FILE

    v = m["variant"]
    rec = m["recommended"]
    modes = m.get("modes", {})
    lines = [
        f"# Kokoro-82M, variant `{v['name']}`",
        "",
        f"Built by kopt {m['built_with'].get('kopt')} with onnxruntime {m['built_with'].get('onnxruntime')}. "
        f"Variant key `{v['key']}`, precision {v.get('precision') or 'n/a'}, "
        f"model sha256 `{v['model_sha256'][:16]}...`, built from base model sha256 `{m['base_model_sha256'][:16]}...`.",
        "",
        "## Use",
        "",
        *_usage(m),
        "",
        f"Recommended provider: `{rec['provider']}`; session: {rec['session']}. "
        f"The model and `{VOICES_FILE}` also load in kokoro-onnx.",
        "",
        f"Voices: {', '.join(voices)}.",
        "",
        *(["Modes (the server's `model`): " + ", ".join(
            f"`{k}` = {e['variant']['name']}" + (" (default)" if k == m.get("default_mode") else "")
            for k, e in modes.items()) + ".", ""] if modes else []),
        "## Measured",
        "",
    ]
    metrics = m["metrics"]
    if metrics:
        lines += ["| metric | value |", "| --- | --- |"]
        lines += [f"| {k} | {_fmt(val)} |" for k, val in sorted(metrics.items()) if val is not None]
        mo = m["measured_on"]
        if mo:
            lines += ["", f"Measured on {mo.get('cpu', '?')} ({mo.get('cores', '?')} cores), machine id {mo.get('id', '?')}."]
    else:
        lines.append("No measurements were attached to this bundle.")
    lines += [
        "",
        "## Lineage",
        "",
        *[f"- `{s['key']}` {s.get('step')} {json.dumps(s.get('config'), sort_keys=True)}" for s in m["lineage"]],
        "",
        "## Licences",
        "",
        "Kokoro-82M weights and voice style vectors by hexgrad: Apache License 2.0 "
        "(`LICENSES/LICENSE-Apache-2.0.txt`). The ONNX export and phoneme vocabulary from kokoro-onnx by "
        "thewh1teagle: MIT License (`LICENSES/LICENSE-kokoro-onnx-MIT.txt`).",
        "",
    ]
    return "\n".join(lines)
