"""Listen: a few check sentences rendered by the reference, the winner and every other measured variant,
so a release engineer can A/B them by ear in the report, and a spectrogram of reference vs winner.

Models are found by their variant key in the artifact store (or at the record's path when the store lacks
them); a variant whose model is not there gets a one-line note. Rendering runs each model once per sentence
through the quality stage's runner (:class:`kopt.quality.synth.ModelRunner`: Kokoro's token, style and speed
feeds), on the text set's pre-computed tokens, so it needs no G2P. Clips are stored as 16-bit FLAC (lossless,
so what one hears is what the model produced, at about half the size of WAV) in a cache folder keyed by the
model's sha256, the tokens, the style row and the speed: a re-run renders nothing.

The spectrogram's winner audio is duration-aligned to the reference (the reference's per-token durations fed
to the winner, as aligned quality scoring does), so the difference panel shows what the model changed, not a
timing shift; when alignment is unavailable the natural audio is used and the caption says so.

Every language the build scored is rendered: the text set's language on ``texts`` (by the voice quality
scored with), every other language on its check set's ``other_category`` sentences (kopt.quality.texts)
by the first voice of that language, so the A/B clips cover each language the bundle speaks.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from kopt.core.contract import SAMPLE_RATE
from kopt.core.errors import KoptError
from kopt.core.hashing import content_key, sha256_bytes
from kopt.core.results import ResultRecord

log = logging.getLogger("kopt.report")

DEFAULT_TEXTS = ("short-1", "short-2", "short-3")
RENDER_VERSION = 1  # bump when the rendering or encoding changes what a cached clip holds
MIME = "audio/flac"


@dataclass(frozen=True)
class ListenSettings:
    """Where the models and voices are and what to render."""

    store: Any = None  # kopt.core.store.ArtifactStore: models by variant key
    voices: Path | None = None  # a voice pack (.npz); None: the store's base artifact's
    cache_dir: Path | None = None  # rendered clips and instrumented graphs; None: <store>/.cache
    texts: tuple[str, ...] = DEFAULT_TEXTS  # ids of the text set's own language
    voice: str | None = None  # None: the voice quality scored with, else the pack's first
    languages: tuple[str, ...] = ()  # languages to render; empty: the results' quality languages (else the text set's)
    other_category: str = "short"  # the check-set category rendered for languages other than the text set's
    text_set: str | None = None
    threads: int = 2
    winner_provider: str | None = None  # whose winner is "the winner" (None: the first measured group's)


@dataclass(frozen=True)
class Model:
    name: str
    key: str
    path: Path
    sha256: str
    role: str  # "reference", "winner", both ("reference winner") or ""


@dataclass(frozen=True)
class Clip:
    model: Model
    text_id: str
    flac: bytes
    seconds: float

    def data_uri(self) -> str:
        return f"data:{MIME};base64," + base64.b64encode(self.flac).decode("ascii")


@dataclass
class Listening:
    voice: str  # the text set language's voice
    texts: list[tuple[str, str]]  # (id, text)
    models: list[Model]
    clips: dict[str, list[Clip]]  # text id -> clips in model order
    notes: list[str] = field(default_factory=list)
    spectrogram: tuple[np.ndarray, np.ndarray, str, bool] | None = None  # ref, winner, text id, aligned
    rendered: int = 0
    reused: int = 0
    spoken: dict[str, tuple[str, str]] = field(default_factory=dict)  # text id -> (language, voice)


def encode_flac(audio: np.ndarray) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(audio, np.float32), -1.0, 1.0), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    import soundfile as sf

    audio, sr = sf.read(io.BytesIO(data), dtype="float32")
    if sr != SAMPLE_RATE:
        raise KoptError(f"a cached clip has sample rate {sr}, expected {SAMPLE_RATE}; delete the listen cache")
    return audio


def _model_of(store, key: str, name: str, path: str | None, sha: str | None) -> tuple[Path, str] | str:
    """(model path, sha256) of a variant, or why it is unavailable."""
    art = store.get(key) if store is not None else None
    if art is not None:
        f = next((n for n in art.files if n.endswith(".onnx")), None)
        if f is not None:
            return art.path / f, art.sha256(f)
    if path and Path(path).is_file() and sha:
        from kopt.core.hashing import sha256_file

        if sha256_file(path) == sha:
            return Path(path), sha
    where = f"the store {store.root}" if store is not None else "no store"
    return f"{name} ({key[:10]}): model not available (not in {where}, nor at its recorded path)"


def models_from(records: Sequence[ResultRecord], order: Sequence[tuple[str, str]], reference_key: str | None,
                winner_key: str | None, store) -> tuple[list[Model], list[str]]:
    """Models for the variants in ``order`` ((key, name), the report's order), reference first and winner
    second; notes for the ones whose model is not available."""
    info: dict[str, tuple[str | None, str | None]] = {}
    for r in records:
        k = r.variant.key or ""
        if k and k not in info:
            info[k] = (r.variant.path, r.inputs.get("model_sha256"))
    first = [k for k in (reference_key, winner_key) if k]
    keyed = dict(order)
    seq = list(dict.fromkeys(first + [k for k, _ in order]))
    models, notes = [], []
    for k in seq:
        name = keyed.get(k, k[:10])
        found = _model_of(store, k, name, *info.get(k, (None, None)))
        if isinstance(found, str):
            notes.append(found)
            continue
        role = " ".join(r for r, rk in (("reference", reference_key), ("winner", winner_key)) if k == rk)
        models.append(Model(name, k, found[0], found[1], role))
    return models, notes


class _Cache:
    def __init__(self, root: Path | None) -> None:
        self.root = root

    def get(self, key: str) -> bytes | None:
        if self.root is None:
            return None
        p = self.root / f"{key}.flac"
        return p.read_bytes() if p.is_file() else None

    def put(self, key: str, data: bytes) -> None:
        if self.root is None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".part")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, self.root / f"{key}.flac")


def render(models: Sequence[Model], voices: dict[str, np.ndarray], settings: ListenSettings,
           voice: str | None = None, progress=None) -> Listening:
    """Every model on every check sentence (natural durations), plus the reference and the winner
    duration-aligned on the first sentence for the spectrogram."""
    from kopt.core.progress import NullProgress
    from kopt.quality.synth import Case, style_for

    progress = progress or NullProgress()
    voice = voice or settings.voice or sorted(voices)[0]
    if voice not in voices:
        raise KoptError(f"listen: no voice {voice!r} in the voice pack; known: {', '.join(sorted(voices))}")
    cache_root = settings.cache_dir or (Path(settings.store.root) / ".cache" if settings.store is not None else None)
    cache = _Cache(cache_root / "listen" if cache_root else None)
    cases, texts, spoken = _cases(voices, voice, settings)
    styles = {c.id: style_for(voices, c) for c in cases}
    out = Listening(voice, texts, list(models), {c.id: [] for c in cases}, spoken=spoken)

    def clip_key(m: Model, c: Case, aligned_to: str | None) -> str:
        return content_key({"model": m.sha256, "tokens": list(c.tokens), "speed": c.speed,
                            "style": sha256_bytes(styles[c.id].tobytes()), "aligned_to": aligned_to,
                            "version": RENDER_VERSION})

    with progress.task(f"listen: {len(models)} models x {len(cases)} sentences", total=len(models)) as task:
        for m in models:
            _render_model(m, cases, styles, settings, cache, clip_key, out)
            task.advance()
    ref = next((m for m in models if "reference" in m.role.split()), None)
    win = next((m for m in models if "winner" in m.role.split()), None)
    if ref is not None and ref is win:
        out.notes.append(f"no spectrogram: the winner is the reference ({ref.name}) itself")
    elif ref is not None and win is not None and cases:
        out.spectrogram = _aligned_pair(ref, win, cases[0], styles[cases[0].id], settings, cache, clip_key, out)
    return out


def _cases(voices: dict[str, np.ndarray], voice: str, settings: ListenSettings):
    """(cases, (id, text) pairs, text id -> (language, voice)): the text set's own sentences by ``voice``
    when its language is wanted, then each other language's ``other_category`` sentences by that
    language's first voice."""
    from kopt.quality.synth import Case
    from kopt.quality.texts import texts_for, textset_language, voices_for

    own = textset_language(settings.text_set)
    cases: list[Case] = []
    texts: list[tuple[str, str]] = []
    spoken: dict[str, tuple[str, str]] = {}
    wanted = settings.languages or (own,)
    for lang in dict.fromkeys([own, *wanted]):
        if lang == own:
            lt = texts_for(own, None, None, settings.text_set)
            missing = [t for t in settings.texts if t not in {i.id for i in lt.items}]
            if missing:
                raise KoptError(f"{lt.source}: no text {missing[0]!r}; known: {', '.join(i.id for i in lt.items)}")
            items, v = [i for t in settings.texts for i in lt.items if i.id == t], voice
            if own not in wanted:
                continue
        else:
            items = list(texts_for(lang, [settings.other_category], None, settings.text_set).items)
            v = (voices_for(lang, voices) or [voice])[0]
        for it in items:
            cases.append(Case(it.id, it.tokens, v, 1.0, lang))
            texts.append((it.id, it.text))
            spoken[it.id] = (lang, v)
    return cases, texts, spoken


def _render_model(m: Model, cases, styles: dict[str, np.ndarray], settings: ListenSettings, cache: _Cache,
                  clip_key, out: Listening) -> None:
    """One model's clips of every case into ``out`` (from the cache when there); a model or a case that
    onnxruntime cannot run is a note, and the others go on."""
    todo = [c for c in cases if cache.get(clip_key(m, c, None)) is None]
    try:
        runner = _runner(m.path, settings.threads) if todo else None
    except KoptError as e:  # a model onnxruntime cannot load: a note, the other models go on
        out.notes.append(f"{m.name} ({m.key[:10]}): {e}")
        return
    for c in cases:
        k = clip_key(m, c, None)
        data = cache.get(k)
        if data is None:
            try:
                audio, _ = runner(c, styles[c.id])
            except Exception as e:  # onnxruntime's own errors: a note, the other models go on
                out.notes.append(f"{m.name} ({m.key[:10]}): could not render {c.id}: "
                                 f"{(str(e).strip().splitlines() or [type(e).__name__])[-1][:200]}")
                continue
            if not np.isfinite(audio).all():  # what the model said, made playable; the note says so
                out.notes.append(f"{m.name} ({m.key[:10]}): {c.id} has non-finite samples "
                                 f"({int((~np.isfinite(audio)).sum())}), played as silence")
                audio = np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)
            data = encode_flac(audio)
            cache.put(k, data)
            out.rendered += 1
        else:
            out.reused += 1
        out.clips[c.id].append(Clip(m, c.id, data, _frames(data) / SAMPLE_RATE))
    del runner


def _frames(flac: bytes) -> int:
    import soundfile as sf

    return sf.info(io.BytesIO(flac)).frames


def _runner(path: Path, threads: int):
    from kopt.quality.synth import ModelRunner

    return ModelRunner(path, threads=threads)


def _aligned_pair(ref: Model, win: Model, case, style: np.ndarray, settings: ListenSettings, cache: _Cache,
                  clip_key, out: Listening):
    """(reference audio, winner audio, text id, aligned?) for the spectrogram."""
    from kopt.quality.align import AlignmentUnavailable, instrumented

    ref_audio = decode(next(c.flac for c in out.clips[case.id] if c.model.key == ref.key))
    k = clip_key(win, case, ref.sha256)
    data = cache.get(k)
    if data is None:
        qcache = (settings.cache_dir or (Path(settings.store.root) / ".cache" if settings.store is not None
                                         else None))
        qcache = qcache / "quality" if qcache is not None else None  # where quality scoring keeps the same graphs
        try:
            ref_run = _runner(instrumented(ref.path, accept_input=False, cache_dir=qcache), settings.threads)
            _, durations = ref_run(case, style)
            del ref_run
            if durations is None:
                raise AlignmentUnavailable(f"{ref.name}: no durations output")
            win_run = _runner(instrumented(win.path, accept_input=True, cache_dir=qcache), settings.threads)
            audio, _ = win_run(case, style, durations=durations)
            del win_run
        except (AlignmentUnavailable, KoptError) as e:
            out.notes.append(f"spectrogram: natural durations (alignment unavailable: {e})")
            win_nat = next((c for c in out.clips[case.id] if c.model.key == win.key), None)
            if win_nat is None:
                return None
            return ref_audio, decode(win_nat.flac), case.id, False
        data = encode_flac(audio)
        cache.put(k, data)
        out.rendered += 1
    else:
        out.reused += 1
    return ref_audio, decode(data), case.id, True
