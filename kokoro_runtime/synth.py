"""The synthesizer: one onnxruntime session, a voice pack, the text front end, streaming."""

from __future__ import annotations

import copy
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from . import lang as _lang
from . import session as _session
from . import voicepack
from .audio import SAMPLE_RATE, JoinPolicy, fade_edges, silence, speech_bounds
from .errors import BundleError, SynthesisError, first_line
from .feed import Signature, check_speed, pad, style_row
from .frontend import G2P, Chunk, ChunkPolicy, FrontEnd
from .lexicon import TokenCache
from .text import is_word, tokens


def make_session(model_path: str | Path, providers: list | None = None, threads: int = 0,
                 graph_optimization: bool = True, fallback: bool = False):
    """Kept for callers of 0.1: see kokoro_runtime.session.make_session."""
    return _session.make_session(model_path, providers, threads, graph_optimization, fallback=fallback)


class _PendingSession:
    """A session being created on a worker thread: onnxruntime releases the GIL while it loads and
    optimizes a model, so Python work on the calling thread goes on meanwhile. Not a daemon thread:
    a process that exits early waits for it rather than tearing onnxruntime down under it."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._made: Any = None
        self._error: BaseException | None = None
        self._seconds = 0.0
        self._thread = threading.Thread(target=self._run, args=(make,), name="kokoro-session")
        self._thread.start()

    def _run(self, make: Callable[[], Any]) -> None:
        t = time.perf_counter()
        try:
            self._made = make()
        except BaseException as e:  # handed to the thread that uses the session
            self._error = e
        self._seconds = time.perf_counter() - t

    def result(self) -> tuple[Any, float]:
        """The session and the seconds its creation took; raises what creating it raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._made, self._seconds


class Synthesizer:
    def __init__(self, model_path: str | Path, voices: "dict[str, np.ndarray] | str | Path",
                 vocab: dict[str, int] | None = None, token_cache: "TokenCache | str | Path | dict | None" = None,
                 providers: list | None = None, threads: int = 0, graph_optimization: "bool | str" = True,
                 g2p: "G2P | bool | None" = None, policy: ChunkPolicy = ChunkPolicy(),
                 join: JoinPolicy = JoinPolicy(), fallback: bool = False, model_sha256: str | None = None,
                 voice_languages: dict[str, str] | None = None,
                 default_language: str = _lang.DEFAULT_LANGUAGE, background_session: bool = False) -> None:
        """``background_session``: create the onnxruntime session on a worker thread, so the voices,
        the token cache and the first text front-end call (its G2P loading) run beside it; the first
        use of ``session`` (or ``signature``, ``providers``) waits for it and raises what creating it
        raised. Off, the session is created here and errors are raised here."""
        self.model_path = Path(model_path)
        self.load_times: dict[str, float] = {}    # seconds per loading step: where a cold start goes
        self._providers_asked, self._threads = providers, threads
        self._graph_optimization, self._fallback, self._sha = graph_optimization, fallback, model_sha256
        self._session: Any = None
        self._signature: Signature | None = None
        self._pending = _PendingSession(self._new_session) if background_session else None
        t = time.perf_counter()
        self._voices = (voicepack.load_npz(voices) if isinstance(voices, (str, Path))
                        else {k: voicepack.check_voice(k, v, "voices") for k, v in voices.items()})
        if not self._voices:
            raise BundleError("no voices given")
        self.vocab = dict(vocab) if vocab is not None else _vocab_next_to(self.model_path)
        t = self._lap("voices", t)
        if isinstance(token_cache, (str, Path)):
            token_cache = TokenCache.load(token_cache)
        elif isinstance(token_cache, dict):
            token_cache = TokenCache.from_json(token_cache)
        self.token_cache = token_cache
        # a voice's language: declared here, else by Kokoro's naming convention, else default_language
        self.voice_languages = {k: _lang.get(v, f"voice_languages[{k!r}]").code
                                for k, v in (voice_languages or {}).items()}
        self.default_language = _lang.get(default_language, "default_language").code
        self.frontend = FrontEnd(self.vocab, token_cache, g2p, policy)     # English (en-us)
        self._frontends = {self.frontend.lang.code: self.frontend}
        self._policy = policy
        t = self._lap("token_cache", t)
        self.join = join
        if self._pending is None:
            self.session = self._new_session()
            self._lap("session", t)

    def _new_session(self, threads: int | None = None) -> Any:
        return _session.make_session(self.model_path, self._providers_asked,
                                     self._threads if threads is None else threads, self._graph_optimization,
                                     fallback=self._fallback, model_sha256=self._sha)

    def _lap(self, step: str, since: float) -> float:
        now = time.perf_counter()
        self.load_times[step] = round(now - since, 4)
        return now

    @property
    def session(self) -> Any:
        """The onnxruntime session (with ``background_session``: waits for it, once; ``load_times``
        then has ``session``, its creation, and ``session_wait``, the part this thread waited)."""
        if self._pending is not None:
            t = time.perf_counter()
            made, seconds = self._pending.result()     # raises, on every use, what creating it raised
            self.load_times["session"] = round(seconds, 4)
            self.load_times["session_wait"] = round(time.perf_counter() - t, 4)
            self.session = made
        return self._session

    @session.setter
    def session(self, value: Any) -> None:
        """Replace the session (a wrapper of the same model keeps the signature read from the first)."""
        self._pending = None
        self._session = value
        if self._signature is None:
            self._signature = Signature.of(value, str(self.model_path))

    @property
    def signature(self) -> Signature:
        """The model's inputs and outputs, as the feeds need them."""
        _ = self.session             # waits for a background session
        assert self._signature is not None
        return self._signature

    @property
    def providers(self) -> list[str]:
        """The execution providers the session runs on."""
        return list(self.session.get_providers())

    @property
    def has_durations(self) -> bool:
        """Whether the model reports per-token durations (word timestamps need them)."""
        return self.signature.durations_out is not None

    @property
    def voices(self) -> list[str]:
        return sorted(self._voices)

    def voice_array(self, voice: "str | np.ndarray") -> np.ndarray:
        return voicepack.resolve(self._voices, voice)

    # -- language -----------------------------------------------------------------------------
    def language_of(self, voice: "str | np.ndarray") -> _lang.Language:
        """A voice's language (a blend: its first voice's; a raw style array: the default language)."""
        if not isinstance(voice, str):
            return _lang.get(self.default_language)
        return _lang.voice_language(voice, self.voice_languages, self.default_language)

    def resolve_language(self, voice: "str | np.ndarray", lang: "str | None" = None) -> _lang.Language:
        """The language a request speaks: ``lang`` when given (InvalidInput on ``lang`` if unknown),
        else the voice's."""
        return _lang.get(lang) if lang is not None else self.language_of(voice)

    def frontend_for(self, lang: "str | _lang.Language | None" = None) -> FrontEnd:
        """The front end reading ``lang`` (default: the default language), made on first use."""
        code = (_lang.get(lang) if isinstance(lang, str) else lang or _lang.get(self.default_language)).code
        if code not in self._frontends:
            self._frontends[code] = FrontEnd(self.vocab, self.token_cache, None, self._policy, code)
        return self._frontends[code]

    @property
    def languages(self) -> dict[str, str]:
        """Voice name -> the language code it speaks."""
        return {v: self.language_of(v).code for v in self.voices}

    # -- text ---------------------------------------------------------------------------------
    def text_to_chunks(self, text: str, first_short: bool = False,
                       lang: "str | _lang.Language | None" = None) -> list[Chunk]:
        """``text`` as model-sized chunks, read by ``lang``'s front end (default: the default language)."""
        return self.frontend_for(lang).chunks(text, first_short=first_short)

    # -- model --------------------------------------------------------------------------------
    def run_tokens(self, token_ids: list[int], voice: "str | np.ndarray", speed: float = 1.0,
                   run_options=None) -> np.ndarray:
        """One model call: pads with 0 at both ends; style row = number of tokens (Kokoro's rule)."""
        return self.run_timed(token_ids, voice, speed, run_options)[0]

    def run_timed(self, token_ids: list[int], voice: "str | np.ndarray", speed: float = 1.0,
                  run_options=None) -> tuple[np.ndarray, "np.ndarray | None"]:
        """One model call, with the per-token frame durations (pads included) when the model reports
        them (else None). ``run_options`` (onnxruntime RunOptions) lets a caller terminate the run."""
        speed = check_speed(speed)
        ids = pad(token_ids)
        pack = self.voice_array(voice)
        sig = self.signature
        feeds = sig.feeds(ids, style_row(pack, ids.shape[1] - 2), speed)
        try:
            out = self.session.run(sig.outputs(), feeds, run_options)
        except Exception as e:  # onnxruntime's own types; a terminated run lands here too
            raise SynthesisError(f"{self.model_path.name}: the model run failed ({first_line(e)})") from e
        audio = np.asarray(out[0], dtype=np.float32).reshape(-1)
        dur = np.asarray(out[1], np.int64).reshape(-1) if len(out) > 1 else None
        return audio, (dur if dur is not None and dur.size == ids.shape[1] else None)

    # -- speech -------------------------------------------------------------------------------
    def render(self, text: str, voice: "str | np.ndarray", speed: float = 1.0, first_short: bool = True,
               run_options=None, chunks: "list[Chunk] | None" = None, lang: str | None = None) -> Iterator["Rendered"]:
        """Yield each chunk's audio as soon as it is rendered, with its words' start and end times
        (seconds from the start of the whole stream; empty when the model reports no durations).
        The text front end runs first, so a word that cannot be phonemized fails before any audio.
        Each chunk carries its join (see JoinPolicy): trimmed silence, faded edges and the pause
        that follows it. ``chunks`` skips the front end (the caller already split the text). ``lang``
        overrides the voice's language."""
        speed = check_speed(speed)
        pack = self.voice_array(voice)
        if chunks is None:
            chunks = self.text_to_chunks(text, first_short, self.resolve_language(voice, lang))
        offset = 0
        for k, chunk in enumerate(chunks):
            r = self.render_chunk(chunk, pack, speed, k, len(chunks), offset, run_options)
            offset += r.audio.size
            yield r

    def render_chunk(self, chunk: Chunk, pack: np.ndarray, speed: float, index: int, count: int, offset: int = 0,
                     run_options=None) -> "Rendered":
        """Render chunk ``index`` of ``count`` (its join follows from its place); ``offset`` is where it
        starts in the stream, in samples, for its words' times."""
        raw, dur = self.run_timed(list(chunk.tokens), pack, speed, run_options)
        start, end = speech_bounds(raw, self.join.trim_db, self.join.keep_s)
        audio = fade_edges(raw[start:end], self.join.fade_s)
        fe = self.frontend_for(chunk.lang)
        words = [] if dur is None else _word_times(chunk, fe, dur, raw.size, start, audio.size, offset)
        last = index + 1 == count
        if not last:
            gap = self.join.sentence_gap_s if chunk.sentence_end else self.join.clause_gap_s
            audio = np.concatenate([audio, silence(gap / speed)])
        return Rendered(audio, chunk, tuple(words), index, last)

    def voice_key(self, voice: str) -> str:
        """The voice's one spelling (blend weights normalised): VoiceNotFound if it is not in the bundle."""
        return voicepack.canonical(self._voices, voice)

    def stream(self, text: str, voice: "str | np.ndarray", speed: float = 1.0,
               first_short: bool = True, lang: str | None = None) -> Iterator[np.ndarray]:
        """Yield audio per chunk as soon as it is rendered (``render`` without the timings)."""
        for r in self.render(text, voice, speed, first_short, lang=lang):
            yield r.audio

    def synthesize(self, text: str, voice: "str | np.ndarray", speed: float = 1.0,
                   first_short: bool = True, lang: str | None = None) -> np.ndarray:
        """The whole text as one array: exactly the stream's chunks joined."""
        parts = list(self.stream(text, voice, speed, first_short=first_short, lang=lang))
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def spawn(self, threads: int | None = None) -> "Synthesizer":
        """Another instance sharing this one's voices, vocab and front end, with its own session
        (a server's second instance: no second token cache in memory)."""
        _ = self.session             # a background session is finished before it is shared
        twin = copy.copy(self)
        twin.session = self._new_session(threads)
        return twin


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float


@dataclass(frozen=True)
class Rendered:
    """One rendered chunk: its audio (the join's pause included), the chunk, its words' times."""

    audio: np.ndarray
    chunk: Chunk
    words: tuple[Word, ...]
    index: int
    last: bool


def word_spans(chunk: Chunk, ids, words: "list[str] | None" = None) -> list[tuple[str, int, int]]:
    """(word, first token, end token) over the chunk's tokens (pads excluded). Phoneme words are
    the space-separated runs of its phonemes; when their count differs from the text's words (a
    cached word pair, a number read out, Japanese words against their romanized runs), text words
    are shared out over them in order. ``words``: the text's words (default: English tokens)."""
    runs: list[tuple[int, int]] = []
    pos = 0
    for piece in chunk.phonemes.split(" "):
        n = len(ids(piece))
        if any(c.isalpha() for c in piece):
            runs.append((pos, pos + n))
        pos += n + len(ids(" "))
    if words is None:
        words = [t for t in tokens(chunk.text) if is_word(t)]
    if not runs or not words:
        return []
    out = []
    for k, (a, b) in enumerate(runs):
        lo, hi = round(k * len(words) / len(runs)), round((k + 1) * len(words) / len(runs))
        if hi > lo:
            out.append((" ".join(words[lo:hi]), a, b))
        elif out:
            out[-1] = (out[-1][0], out[-1][1], b)
    return out


def _word_times(chunk: Chunk, fe: FrontEnd, dur: np.ndarray, n_samples: int, trim_start: int, kept: int,
                offset: int) -> list[Word]:
    frames = np.concatenate([[0], np.cumsum(dur)]).astype(np.float64)
    if frames[-1] <= 0:
        return []
    edges = np.round(frames * (n_samples / frames[-1])).astype(np.int64)  # edges[k]: padded token k starts
    out = []
    for word, a, b in word_spans(chunk, fe.ids, fe.words(chunk.text)):
        s = min(max(int(edges[a + 1]) - trim_start, 0), kept)
        e = min(max(int(edges[b + 1]) - trim_start, 0), kept)
        out.append(Word(word, round((offset + s) / SAMPLE_RATE, 3), round((offset + e) / SAMPLE_RATE, 3)))
    return out


def _vocab_next_to(model_path: Path) -> dict[str, int]:
    p = model_path.parent / "vocab.json"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{p}: no vocab given and no vocab.json next to the model") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{p}: not a readable vocab JSON ({type(e).__name__})") from None
    return load_vocab_dict(data, str(p))


def load_vocab_dict(data: object, source: str) -> dict[str, int]:
    vocab = data.get("vocab", data) if isinstance(data, dict) else None
    if not isinstance(vocab, dict) or not all(isinstance(v, int) for v in vocab.values()):
        raise BundleError(f"{source}: not a Kokoro vocab: expected {{'vocab': {{symbol: id}}}}")
    return dict(vocab)
