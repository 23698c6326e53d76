"""``python -m kokoro_runtime wyoming``: the bundle as a Wyoming text-to-speech service (Home Assistant).

The protocol is the ``wyoming`` package's (events, framing, info types); this module maps its
events onto the same ``Engine`` as ``serve``: the same instances, bounded queue, deadlines and cache.

- ``describe`` -> ``info``: one TTS program, ``kokoro``, whose voices are the bundle's voices with
  their languages; in a bundle with several modes, each other mode's voices are also listed as
  ``voice@mode`` (a Wyoming request has no model field, so the mode rides on the voice name);
- ``synthesize`` -> ``audio-start``, ``audio-chunk``... (24 kHz, 16-bit, mono), ``audio-stop``;
- ``synthesize-start``, ``synthesize-chunk``..., ``synthesize-stop``: text as it is written (an
  LLM's answer); each complete sentence is spoken as soon as it has arrived, as its own
  ``audio-start`` ... ``audio-stop``, and ``synthesize-stopped`` ends the stream. The plain
  ``synthesize`` a client sends inside a stream, for older servers, is ignored;
- a request the server cannot take (unknown voice, empty text, every instance and queue slot
  taken) is answered with an ``error`` event at once and the connection keeps serving.

Events of one connection are handled in order by one task; a client that leaves cancels it, which
stops the model run in progress (the engine's cancellation) and frees the instance.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from .. import __version__
from ..audio import SAMPLE_RATE
from ..bundle import Bundle
from ..errors import G2PUnavailable, InvalidInput, KokoroError, SynthesisError, VoiceNotFound
from .engine import Busy, DeadlineExceeded, Engine, Request, add_engine_arguments

try:
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.error import Error
    from wyoming.event import Event
    from wyoming.info import Attribution, Describe, Info, TtsProgram, TtsVoice
    from wyoming.ping import Ping, Pong
    from wyoming.server import AsyncEventHandler, AsyncStdioServer
    from wyoming.tts import (
        Synthesize,
        SynthesizeChunk,
        SynthesizeStart,
        SynthesizeStop,
        SynthesizeStopped,
        SynthesizeVoice,
    )
except ImportError as e:   # the command says what to install, in one line
    raise KokoroError(f"the wyoming command needs the wyoming package ({e.name} is missing): "
                      "pip install 'kokoro-runtime[wyoming]'") from None

log = logging.getLogger("kokoro_runtime.wyoming")

DEFAULT_URI = "tcp://127.0.0.1:10200"
WIDTH, CHANNELS = 2, 1
PENDING_EVENTS = 64            # events read ahead of the one being handled, per connection
LONGEST_PENDING = 400          # streamed characters held back waiting for a sentence end
ATTRIBUTION = Attribution(name="hexgrad (Kokoro-82M)", url="https://huggingface.co/hexgrad/Kokoro-82M")

# A sentence is complete once its end mark (and any closing quote or bracket) is followed by space;
# a full-width one (Japanese, Chinese) needs none.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*\s+|[。！？]+[」』”’）)]*\s*|\n\s*\n\s*")
def voice_language(voice: str, manifest: dict | None = None) -> str:
    """A voice's language as a BCP-47 tag (``en-US``), as Home Assistant writes languages: the
    runtime's ``lang.voice_language`` (the manifest's ``voice_languages``, Kokoro's name convention,
    the bundle's ``default_language``); English for a voice it cannot place."""
    from .. import lang

    manifest = manifest or {}
    code = "en-us"
    with contextlib.suppress(KokoroError):
        code = lang.voice_language(voice, manifest.get("voice_languages"),
                                   manifest.get("default_language") or lang.DEFAULT_LANGUAGE).code
    base, _, region = code.replace("_", "-").partition("-")
    return f"{base.lower()}-{region.upper()}" if region else base.lower()


def _same_language(asked: str, tag: str) -> bool:
    """``en``, ``en_US`` and ``en-us`` all ask for ``en-US``; ``en-GB`` does not."""
    a, t = asked.replace("_", "-").lower(), tag.lower()
    return a == t or a == t.split("-")[0]


class Catalog:
    """The voice names a Wyoming client may ask for, and what each means: (voice, mode)."""

    def __init__(self, voices: list[str], modes: list[str], default_mode: str, default_voice: str,
                 manifest: dict | None = None) -> None:
        self.voices, self.modes, self.default_mode, self.default_voice = voices, modes, default_mode, default_voice
        self.variant = ((manifest or {}).get("variant") or {}).get("name")
        self.languages = {v: voice_language(v, manifest) for v in voices}

    def info(self) -> Info:
        entries = [(v, self.default_mode, v) for v in self.voices]
        entries += [(f"{v}@{m}", m, v) for m in self.modes if m != self.default_mode for v in self.voices]
        voices = [TtsVoice(name=name, attribution=ATTRIBUTION, installed=True, version=None,
                           description=f"{voice} ({self.languages[voice]}), {mode} mode", languages=[self.languages[voice]])
                  for name, mode, voice in entries]
        what = f"Kokoro-82M ({self.variant})" if self.variant else "Kokoro-82M"
        program = TtsProgram(name="kokoro", attribution=ATTRIBUTION, installed=True, version=__version__,
                             description=f"{what} through kokoro_runtime; modes: {', '.join(self.modes)}",
                             voices=voices, supports_synthesize_streaming=True)
        return Info(tts=[program])

    def resolve(self, voice: SynthesizeVoice | None) -> tuple[str, str]:
        """(voice or blend, mode) for what the client asked; the engine checks the voice itself."""
        if voice is None or (not voice.name and not voice.language):
            return self.default_voice, self.default_mode
        if voice.name:
            name, at, mode = voice.name.rpartition("@")
            if not at:
                return voice.name, self.default_mode
            if mode not in self.modes:
                raise InvalidInput("voice", f"{voice.name!r}: {mode!r} is not a mode of this bundle; use "
                                   f"{', '.join(self.modes)}")
            return name, mode
        lang = voice.language or ""
        if _same_language(lang, self.languages.get(self.default_voice, "")):
            return self.default_voice, self.default_mode
        for v in self.voices:
            if _same_language(lang, self.languages[v]):
                return v, self.default_mode
        raise InvalidInput("voice", f"no voice speaks {lang!r}; this bundle's languages are "
                           f"{', '.join(sorted(set(self.languages.values())))}")


def error_code(e: BaseException) -> str:
    return {Busy: "busy", DeadlineExceeded: "deadline_exceeded", SynthesisError: "synthesis_failed",
            VoiceNotFound: "voice_not_found", G2PUnavailable: "g2p_unavailable",
            InvalidInput: "invalid_input"}.get(type(e), "invalid_request")


def split_sentences(text: str, longest: int = LONGEST_PENDING) -> tuple[str, str]:
    """(the complete sentences at the start of ``text``, the rest still being written). Text that
    runs past ``longest`` characters with no sentence end is cut at its last space instead."""
    end = 0
    for m in _SENTENCE_END.finditer(text):
        end = m.end()
    if len(text) - end > longest:
        space = text.rfind(" ", end, len(text) - 1)
        end = space + 1 if space > end else end
    return text[:end], text[end:]


class Service:
    """What every connection shares: the engine, the catalog, and the warm-up's outcome."""

    def __init__(self, engine: Engine, catalog: Catalog, samples_per_chunk: int = 1024) -> None:
        self.engine, self.catalog, self.samples_per_chunk = engine, catalog, samples_per_chunk
        self.warm = asyncio.Event()
        self.failed: str | None = None

    async def warm_up(self) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.engine.warm_up)
            log.info("ready: %s", self.engine.bundle.root)
        except Exception as e:  # answered to every request; the server stays up to say why
            self.failed = f"{type(e).__name__}: {e}"
            log.error("warm-up failed: %s", self.failed)
        finally:
            self.warm.set()

    async def ready(self) -> None:
        if not self.warm.is_set():
            try:
                await asyncio.wait_for(self.warm.wait(), self.engine.settings.timeout_s)
            except asyncio.TimeoutError:
                raise DeadlineExceeded("the server is still warming up; retry in a few seconds") from None
        if self.failed:
            raise KokoroError(f"the server could not load its model: {self.failed}")


@dataclass
class _Stream:
    voice: SynthesizeVoice | None
    text: str = ""
    failed: bool = False       # an error was sent: the rest of this stream's text is dropped


class Handler(AsyncEventHandler):
    """One connection. Events are read ahead (at most ``PENDING_EVENTS``) and handled in order by
    one task, so reading goes on while audio is rendered and a client that leaves is seen at once."""

    def __init__(self, service: Service, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(reader, writer)
        self.service = service
        self.pending: asyncio.Queue[Event | None] = asyncio.Queue(PENDING_EVENTS)
        self.stream: _Stream | None = None
        self.worker = asyncio.create_task(self._work(), name="wyoming connection")

    async def handle_event(self, event: Event) -> bool:
        if self.worker.done():          # the client is gone (a write failed)
            return False
        await self.pending.put(event)
        return True

    async def disconnect(self) -> None:
        self.worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.worker

    async def finish(self) -> None:
        """Handle the events already read, then stop (the input has ended but the output is open)."""
        await self.pending.put(None)
        await self.worker

    async def _work(self) -> None:
        while True:
            event = await self.pending.get()
            if event is None:
                return
            try:
                await self._handle(event)
            except (ConnectionError, BrokenPipeError):
                return
            except KokoroError as e:
                if self.stream is not None:
                    self.stream.failed = True
                await self._error(e)
            except Exception as e:
                log.exception("internal error on %s", event.type)
                await self.write_event(Error(text=f"internal error ({type(e).__name__}); see the server log",
                                             code="internal_error").event())

    async def _error(self, e: KokoroError) -> None:
        await self.write_event(Error(text=str(e), code=error_code(e)).event())

    async def _handle(self, event: Event) -> None:
        if Describe.is_type(event.type):
            await self.write_event(self.service.catalog.info().event())
        elif Ping.is_type(event.type):
            await self.write_event(Pong(text=Ping.from_event(event).text).event())
        elif Synthesize.is_type(event.type):
            if self.stream is None:     # inside a stream it is the copy sent for older servers
                syn = Synthesize.from_event(event)
                await self._speak(syn.text, syn.voice)
        elif SynthesizeStart.is_type(event.type):
            self.stream = _Stream(SynthesizeStart.from_event(event).voice)
        elif SynthesizeChunk.is_type(event.type):
            if self.stream is None:
                raise InvalidInput("synthesize-chunk", "outside a stream; send synthesize-start first")
            self.stream.text += SynthesizeChunk.from_event(event).text
            ready, self.stream.text = split_sentences(self.stream.text)
            if ready.strip() and not self.stream.failed:
                await self._speak(ready, self.stream.voice)
        elif SynthesizeStop.is_type(event.type):
            stream, self.stream = self.stream, None
            if stream is not None and stream.text.strip() and not stream.failed:
                try:
                    await self._speak(stream.text, stream.voice)
                except KokoroError as e:
                    await self._error(e)
            await self.write_event(SynthesizeStopped().event())

    async def _speak(self, text: str, voice: SynthesizeVoice | None) -> None:
        name, mode = self.service.catalog.resolve(voice)
        await self.service.ready()
        pieces = self.service.engine.render(Request(text=text, voice=name, mode=mode))
        started = False
        step = self.service.samples_per_chunk
        try:
            async for piece in pieces:
                if not started:
                    await self.write_event(AudioStart(rate=SAMPLE_RATE, width=WIDTH, channels=CHANNELS).event())
                    started = True
                pcm = np.ascontiguousarray(piece.pcm, "<i2")
                for k in range(0, len(pcm), step):
                    await self.write_event(AudioChunk(rate=SAMPLE_RATE, width=WIDTH, channels=CHANNELS,
                                                      audio=pcm[k:k + step].tobytes()).event())
        finally:
            await pieces.aclose()
        if started:
            await self.write_event(AudioStop().event())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", nargs="?", type=Path, default=None,
                   help="bundle directory (default: the bundle this runtime sits in)")
    p.add_argument("--uri", default=DEFAULT_URI,
                   help=f"where to listen: tcp://HOST:PORT (port 0: any free port, printed at start), "
                        f"unix://PATH (mode 0600) or stdio:// (default {DEFAULT_URI}: this machine only)")
    p.add_argument("--voice", default=None, help="voice for requests that name none (default: the bundle's)")
    p.add_argument("--mode", default=None, help="mode for plain voice names (default: the bundle's default mode)")
    add_engine_arguments(p, queue_full="an error event", max_chars="longest text accepted per request")
    p.add_argument("--samples-per-chunk", type=int, default=1024, help="samples per audio-chunk event (default 1024)")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])


def _listen_on(uri: str) -> tuple[str, str, int, Path | None]:
    """(scheme, host, port, socket path) of a --uri; a one-line error names what to write instead."""
    u = urlparse(uri)
    if u.scheme == "tcp":
        try:
            port = u.port
        except ValueError:
            port = None
        if not u.hostname or port is None:
            raise InvalidInput("--uri", f"{uri!r}: give a host and a port, e.g. {DEFAULT_URI} (port 0: any free one)")
        return "tcp", u.hostname, port, None
    if u.scheme == "unix" and u.path:
        return "unix", "", 0, Path(u.path)
    if u.scheme == "stdio":
        return "stdio", "", 0, None
    raise InvalidInput("--uri", f"{uri!r}: use tcp://HOST:PORT, unix://PATH or stdio://")


def serve(args: argparse.Namespace, root: Path) -> int:
    from .run import bind, settings_from

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    scheme, host, port, path = _listen_on(args.uri)
    if args.samples_per_chunk < 1:
        raise InvalidInput("--samples-per-chunk", f"{args.samples_per_chunk}; use 1 or more")
    settings = settings_from(argparse.Namespace(**vars(args), port=port))
    bundle = Bundle(root, verify=settings.verify)
    mode = args.mode or bundle.default_mode
    if mode not in bundle.modes:
        raise InvalidInput("--mode", f"{mode!r} is not a mode of this bundle; use {', '.join(bundle.modes)}")
    engine = Engine(bundle, settings)
    front = engine.load().front          # sessions now: a bad model or provider fails here, in one line
    voice = args.voice or bundle.default_voice or front.voices[0]
    front.voice_key(voice)               # an unknown --voice too
    catalog = Catalog(list(front.voices), list(bundle.modes), mode, voice, bundle.manifest)
    sock = None
    if scheme != "stdio":
        sock, where = bind(host, port, path)
        sock.listen(128)                 # before the address is printed: a client may connect at once
        where = f"tcp://{host}:{sock.getsockname()[1]}" if scheme == "tcp" else f"unix://{path}"
        print(f"kokoro_runtime wyoming {where} serving {bundle.root} (modes: {', '.join(bundle.modes)}; "
              f"{len(front.voices)} voices; {settings.instances} x {settings.threads} threads)", flush=True)
    try:
        asyncio.run(_main(Service(engine, catalog, args.samples_per_chunk), sock, scheme, args.idle_timeout))
    finally:
        engine.close()
        if sock is not None:
            sock.close()
        if path is not None:
            path.unlink(missing_ok=True)
    return 0


async def _main(service: Service, sock, scheme: str, idle_s: float) -> None:
    warm = asyncio.create_task(service.warm_up())
    if scheme == "stdio":     # one client, Wyoming's own stdin/stdout server; answers everything it read
        handlers: list[Handler] = []

        def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Handler:
            handlers.append(Handler(service, reader, writer))
            return handlers[-1]

        await AsyncStdioServer().run(handler)
        for h in handlers:
            await h.finish()
        return
    connections: set[asyncio.Task[Any]] = set()

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None                 # a connection callback runs as a task
        connections.add(task)
        try:
            await Handler(service, reader, writer).run()
        except ConnectionError:         # the client left; its render is already cancelled
            pass
        finally:
            connections.discard(task)

    start = asyncio.start_server if scheme == "tcp" else asyncio.start_unix_server
    server = await start(connected, sock=sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    watcher: asyncio.Task[None] | None = asyncio.create_task(_idle_watch(service.engine, idle_s, stop)) if idle_s else None
    try:
        await stop.wait()
    finally:
        server.close()
        for task in list(connections):
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        warm.cancel()
        if watcher is not None:
            watcher.cancel()


async def _idle_watch(engine: Engine, idle_s: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(min(1.0, idle_s / 4))
        if engine.idle_for(idle_s):
            log.info("idle for %.0f s: exiting", idle_s)
            stop.set()


def main(argv: list[str], default_bundle: Path | None) -> int:
    from .run import command

    return command("python -m kokoro_runtime wyoming",
                   "Serve a Kokoro bundle as a Wyoming text-to-speech service (Home Assistant).",
                   add_arguments, serve, argv, default_bundle)
