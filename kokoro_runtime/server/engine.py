"""The serving core: instances of the model per mode, a bounded queue, deadlines, cancellation, and
a cache of rendered audio. No HTTP here: the Starlette app (app.py) is a thin layer over ``Engine``.

Scheduling is per chunk, not per request: an instance renders one chunk and goes back to the pool,
and a request's first chunk waits ahead of later chunks of requests already speaking. So under
load a new listener still hears audio after one short chunk, and long texts share the instances.

Admission is bounded: at most ``instances + queue`` requests are in flight per mode; one more is
refused at once (``Busy``, HTTP 503 with Retry-After) rather than queued without end.

Each request speaks one language: the one it asks for (``Request.lang``), else its voice's. Its
text is read by that language's front end, its pieces carry the language's code, and the audio
cache keys on it (the same text read as English or as Japanese is different audio).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import heapq
import itertools
import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, AsyncGenerator, Callable

import numpy as np

from .. import lang as _lang
from ..audio import SAMPLE_RATE, to_pcm16
from ..bundle import Bundle
from ..errors import InvalidInput, KokoroError
from ..feed import check_speed
from ..synth import Synthesizer, Word

log = logging.getLogger("kokoro_runtime.server")

WARM_TEXT = "Hello there."
# a line per language whose front end is worth loading before the first request (its G2P's dictionary)
WARM_TEXTS = {"ja": "こんにちは。"}


class Busy(KokoroError):
    """Every instance is busy and the queue is full."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the server is busy (every instance and queue slot taken); retry in {retry_after} s")
        self.retry_after = retry_after


class DeadlineExceeded(KokoroError):
    """The request ran past its deadline."""


@dataclass(frozen=True)
class Settings:
    instances: int = 1
    threads: int = 0
    queue: int = 8                 # requests that may wait per mode beyond the busy instances
    timeout_s: float = 120.0       # per request, from admission to the last chunk
    cache_mb: float = 64.0         # rendered-audio cache; 0 turns it off
    max_chars: int = 4096
    providers: tuple = ()
    fallback: bool = False
    verify: bool = True
    graph_optimization: "bool | None" = None
    warm_text: str = WARM_TEXT


def add_engine_arguments(p: argparse.ArgumentParser, *, queue_full: str, max_chars: str) -> None:
    """The engine's options, shared by the HTTP and Wyoming servers (defaults from ``Settings``);
    ``queue_full`` says what a request beyond the queue gets, ``max_chars`` what the limit is for."""
    d = Settings()
    p.add_argument("--instances", type=int, default=d.instances,
                   help=f"model sessions rendering in parallel (default {d.instances})")
    p.add_argument("--threads", type=int, default=d.threads,
                   help="intra-op threads per instance (default: cores / instances, at least 1)")
    p.add_argument("--queue", type=int, default=d.queue,
                   help=f"requests that may wait beyond the busy instances; more get {queue_full} (default {d.queue})")
    p.add_argument("--timeout", type=float, default=d.timeout_s,
                   help=f"deadline per request in seconds (default {d.timeout_s:g})")
    p.add_argument("--cache-mb", type=float, default=d.cache_mb,
                   help=f"memory for repeated requests' audio (default {d.cache_mb:g}; 0: no cache)")
    p.add_argument("--max-chars", type=int, default=d.max_chars, help=f"{max_chars} (default {d.max_chars})")
    p.add_argument("--provider", action="append", dest="providers", default=None,
                   help="onnxruntime execution provider, repeat for a priority list (cpu, cuda, tensorrt, ...)")
    p.add_argument("--fallback", action="store_true",
                   help="run on the next provider (at last CPU) when one cannot be had, instead of failing")
    p.add_argument("--idle-timeout", type=float, default=0.0, help="exit after this many idle seconds (0: never)")
    p.add_argument("--no-verify", action="store_true", help="skip the sha256 check of the bundle's files")


@dataclass(frozen=True)
class Piece:
    """One chunk of a response: 16-bit PCM and its words' times (seconds from the response start)."""

    pcm: np.ndarray
    words: tuple[Word, ...]
    seconds: float                 # audio seconds in this piece
    render_s: float                # model time spent on it
    cached: bool = False           # served from the rendered-audio cache
    lang: str = _lang.DEFAULT_LANGUAGE   # the code of the language the text was read in


@dataclass(frozen=True)
class Request:
    text: str
    voice: str
    speed: float = 1.0
    mode: str | None = None
    lang: str | None = None        # a language code or Kokoro letter; None: the voice's language


@dataclass(frozen=True)
class Checked:
    """A request that passed validation: what admission, chunking and the cache use."""

    mode: str
    voice: str                     # the canonical spelling (a blend's weights normalised)
    speed: float
    lang: _lang.Language

    @property
    def key(self) -> tuple:
        return (self.mode, self.voice, round(self.speed, 4), self.lang.code)


class AudioCache:
    """LRU of finished responses keyed by (mode, text, canonical voice, speed, language), bounded in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[tuple, tuple[Piece, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> tuple[Piece, ...] | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
            return hit

    def put(self, key: tuple, pieces: tuple[Piece, ...]) -> None:
        size = sum(p.pcm.nbytes for p in pieces)
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                self.bytes -= sum(p.pcm.nbytes for p in self._items.pop(key))
            self._items[key] = pieces
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self.bytes -= sum(p.pcm.nbytes for p in old)

    def __len__(self) -> int:
        return len(self._items)


class _Slots:
    """Instances handed out by priority (lower first), then arrival. Loop-thread only."""

    def __init__(self, items: list[Synthesizer]) -> None:
        self.items = list(items)
        self.free = list(items)
        self._waiters: list[tuple[int, int, asyncio.Future]] = []
        self._seq = itertools.count()

    @property
    def busy(self) -> int:
        return len(self.items) - len(self.free)

    @property
    def waiting(self) -> int:
        return sum(1 for _, _, f in self._waiters if not f.done())

    async def acquire(self, priority: int) -> Synthesizer:
        if self.free and not self.waiting:
            return self.free.pop()
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._seq), fut))
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(fut.result())
            raise

    def release(self, item: Synthesizer) -> None:
        while self._waiters:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(item)
                return
        self.free.append(item)


@dataclass
class _Mode:
    name: str
    slots: _Slots
    front: Synthesizer              # voices, vocab and front end (shared by the mode's instances)
    admitted: int = 0
    recent_s: list[float] = field(default_factory=list)   # recent request durations, for Retry-After


class Engine:
    """Load a bundle's modes, warm the default one, and render requests through a bounded pool."""

    def __init__(self, bundle: Bundle, settings: Settings = Settings(),
                 observe: Callable[[str, dict], None] | None = None) -> None:
        if settings.instances < 1:
            raise InvalidInput("instances", f"{settings.instances}; use 1 or more")
        if settings.queue < 0:
            raise InvalidInput("queue", f"{settings.queue}; use 0 or more")
        self.bundle = bundle
        self.settings = settings
        self.cache = AudioCache(int(settings.cache_mb * 1024 * 1024))
        self.modes: dict[str, _Mode] = {}
        self.ready = False
        self.started = time.time()
        self.last_active = time.monotonic()
        self.active = 0
        self._observe = observe or (lambda event, data: None)
        self._load_lock = threading.Lock()
        self._front_lock = threading.Lock()   # espeak-ng is not thread-safe; the front end is quick
        self._pool = ThreadPoolExecutor(max_workers=settings.instances * max(1, len(bundle.modes)) + 1,
                                        thread_name_prefix="kokoro")

    # -- loading --------------------------------------------------------------------------------

    def idle_for(self, seconds: float) -> bool:
        """Whether no request has run for ``seconds`` (counted from the last request's end, or from
        ready): what an idle timeout asks."""
        return self.active == 0 and time.monotonic() - self.last_active > seconds
    def load(self, mode: str | None = None) -> _Mode:
        """Create ``mode``'s instances (blocking; the default mode at start-up, others on first use)."""
        name = mode or self.bundle.default_mode
        with self._load_lock:
            if name in self.modes:
                return self.modes[name]
            s = self.settings
            first = self.bundle.synthesizer(list(s.providers) or None, s.threads, s.graph_optimization, mode=name,
                                            fallback=s.fallback)
            instances = [first] + [first.spawn() for _ in range(s.instances - 1)]
            m = _Mode(name, _Slots(instances), first)
            self.modes[name] = m
            return m

    def warm_up(self) -> None:
        """Load the default mode and speak once on every instance, so the first request pays no
        first-run costs (onnxruntime allocations, kernel choices)."""
        m = self.load()
        voice = self.bundle.default_voice or m.front.voices[0]
        for inst in m.slots.items:     # the warm text is English whatever the voice: it warms the model
            for _ in inst.render(self.settings.warm_text, voice, lang=_lang.DEFAULT_LANGUAGE):
                pass
        lang = m.front.language_of(voice)
        if lang.code in WARM_TEXTS:    # the default voice's front end too, so its first request is quick
            try:
                self._chunks(m.front, WARM_TEXTS[lang.code], lang)
            except KokoroError as e:
                log.warning("warm-up: the %s front end is not ready (%s); its first request will say why",
                            lang.code, e)
        self.last_active = time.monotonic()    # idle time counts from ready, not from start-up
        self.ready = True

    def mode_name(self, mode: str | None) -> str:
        name = mode or self.bundle.default_mode
        if name not in self.bundle.modes:
            raise InvalidInput("model", f"{mode!r} is not a mode of this bundle; use one of "
                               f"{', '.join(self.bundle.modes)}")
        return name

    # -- requests -------------------------------------------------------------------------------
    def check(self, req: Request) -> Checked:
        """Validate before admission: InvalidInput (on input, speed, model, voice or lang) or
        VoiceNotFound. Blocking (it may load the default mode and resolves blends): ``render``
        runs it on a worker thread."""
        if not isinstance(req.text, str):
            raise InvalidInput("input", "must be a string: the text to speak")
        if not req.text.strip():
            raise InvalidInput("input", "empty; give the text to speak")
        if len(req.text) > self.settings.max_chars:
            raise InvalidInput("input", f"{len(req.text)} characters; the limit is {self.settings.max_chars}: "
                               "split the text into several requests")
        speed = check_speed(req.speed)
        mode = self.mode_name(req.mode)
        if not isinstance(req.voice, str) or not req.voice:
            raise InvalidInput("voice", "missing; give a voice name or a blend")
        front = self.load().front          # every mode shares the bundle's voices
        voice = front.voice_key(req.voice)
        return Checked(mode, voice, speed, front.resolve_language(req.voice, req.lang))

    async def render(self, req: Request, cancelled: Callable[[], bool] | None = None) -> AsyncGenerator[Piece, None]:
        """Admit the request (or raise Busy), then yield its pieces as they are rendered; a cache
        hit yields at once. Closing the iterator early (a client that left) stops the model run in
        progress and frees its instance. Text with no word to say (punctuation, symbols) is an
        InvalidInput on ``input``; text in a script the language cannot read, one on ``lang``."""
        loop = asyncio.get_running_loop()
        checked = await loop.run_in_executor(self._pool, self.check, req)
        key = (req.text, *checked.key)
        self.last_active = time.monotonic()
        hit = self.cache.get(key) if self.cache.max_bytes else None
        self._observe("cache", {"hit": hit is not None})
        if hit is not None:
            for piece in hit:
                yield dataclasses.replace(piece, cached=True)
            return
        mode = self.modes.get(checked.mode)
        if mode is None:
            mode = await loop.run_in_executor(self._pool, self.load, checked.mode)
        limit = self.settings.instances + self.settings.queue
        if mode.admitted >= limit:
            raise Busy(self._retry_after(mode))
        mode.admitted += 1
        self.active += 1
        t0 = time.monotonic()
        deadline = t0 + self.settings.timeout_s
        self._observe("queue", {"depth": self.queue_depth()})
        done: list[Piece] = []
        try:
            chunks = await loop.run_in_executor(self._pool, self._chunks, mode.front, req.text, checked.lang)
            if not any(c.speaks for c in chunks):
                raise InvalidInput("input", "nothing to speak (no words the model can say, only punctuation "
                                   "or symbols)")
            pack = await loop.run_in_executor(self._pool, mode.front.voice_array, checked.voice)
            offset = 0
            for k, chunk in enumerate(chunks):
                piece, offset = await self._render_chunk(mode, chunk, pack, checked.speed, k, len(chunks), offset,
                                                         deadline)
                done.append(piece)
                yield piece
            if self.cache.max_bytes:
                self.cache.put(key, tuple(done))
        finally:
            mode.admitted -= 1
            self.active -= 1
            self.last_active = time.monotonic()
            mode.recent_s = (mode.recent_s + [time.monotonic() - t0])[-20:]
            self._observe("queue", {"depth": self.queue_depth()})

    def _chunks(self, front: Synthesizer, text: str, lang: "_lang.Language | None" = None) -> list:
        with self._front_lock:
            return front.text_to_chunks(text, first_short=True, lang=lang)

    async def _render_chunk(self, mode: _Mode, chunk, pack, speed: float, k: int, n: int, offset: int,
                            deadline: float) -> tuple[Piece, int]:
        import onnxruntime as ort

        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded(f"the request ran past its {self.settings.timeout_s:g} s deadline")
        try:
            inst = await asyncio.wait_for(mode.slots.acquire(0 if k == 0 else 1), remaining)
        except asyncio.TimeoutError:
            raise DeadlineExceeded(f"no instance was free within the {self.settings.timeout_s:g} s deadline") from None
        loop = asyncio.get_running_loop()
        opts = ort.RunOptions()
        t = time.monotonic()
        fut = loop.run_in_executor(self._pool, _one_chunk, inst, chunk, pack, speed, k, n, offset, opts)
        fut.add_done_callback(lambda f: _finished(f, mode.slots, inst))
        try:
            rendered = await asyncio.wait_for(asyncio.shield(fut), max(deadline - time.monotonic(), 0.001))
        except asyncio.TimeoutError:
            opts.terminate = True
            raise DeadlineExceeded(f"the request ran past its {self.settings.timeout_s:g} s deadline") from None
        except asyncio.CancelledError:
            opts.terminate = True     # the thread's run stops within a kernel; its done-callback frees the instance
            raise
        pcm = np.frombuffer(to_pcm16(rendered.audio), "<i2")
        piece = Piece(pcm, rendered.words, len(pcm) / SAMPLE_RATE, time.monotonic() - t, lang=chunk.lang)
        return piece, offset + len(pcm)

    def _retry_after(self, mode: _Mode) -> int:
        typical = float(np.median(mode.recent_s)) if mode.recent_s else 1.0
        waits = max(1, mode.admitted - self.settings.instances + 1) / self.settings.instances
        return max(1, int(round(typical * waits)))

    def queue_depth(self) -> int:
        return sum(m.slots.waiting for m in self.modes.values())

    def busy_instances(self) -> int:
        return sum(m.slots.busy for m in self.modes.values())

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _finished(fut: asyncio.Future, slots: _Slots, inst: Synthesizer) -> None:
    """The instance goes back when its run really ends (a terminated run ends within a kernel); the
    outcome of a run nobody waits for any more (its client left) is read here, not logged as lost."""
    slots.release(inst)
    if not fut.cancelled():
        fut.exception()


def _one_chunk(inst: Synthesizer, chunk, pack, speed: float, k: int, n: int, offset: int, opts: Any):
    return inst.render_chunk(chunk, pack, speed, k, n, offset, opts)
