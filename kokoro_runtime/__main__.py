"""python -m kokoro_runtime: speak once, serve, or speak through the local daemon.

    python -m kokoro_runtime "Some text." [-o out.wav|-]        one shot, in this process
    python -m kokoro_runtime serve [BUNDLE] [--port 8880 ...]    OpenAI-compatible HTTP server
    python -m kokoro_runtime say "Some text." [-o out.wav|-]     through the daemon (started if needed)
    python -m kokoro_runtime status | stop                      the daemon of this bundle

Imports stay inside the commands: ``say`` loads neither numpy nor onnxruntime.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from .errors import KokoroError

COMMANDS = ("serve", "wyoming", "say", "status", "stop")


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2), like every other error of the runtime."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _default_bundle() -> Path | None:
    root = Path(__file__).resolve().parent.parent
    return root if (root / "manifest.json").is_file() else None


def _bundle_of(args: argparse.Namespace) -> Path:
    root = args.bundle or _default_bundle()
    if root is None:
        raise KokoroError("no bundle: pass --bundle DIR (or run from inside a bundle directory)")
    if not (Path(root) / "manifest.json").is_file():
        raise KokoroError(f"{root}: not a bundle (no manifest.json)")
    return Path(root)


def _speed(value: str) -> float:
    try:
        s = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number; use 0.25 to 4.0") from None
    if not math.isfinite(s) or not 0.25 <= s <= 4.0:
        raise argparse.ArgumentTypeError(f"{value} is out of range; use a number from 0.25 to 4.0")
    return s


def _text(arg: str | None) -> str:
    text = arg if arg not in (None, "-") else sys.stdin.read()
    if not text.strip():
        raise KokoroError("no text to speak: give it as an argument or on standard input")
    return text


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", type=Path, default=None,
                   help="bundle directory (default: the bundle this runtime sits in)")
    p.add_argument("--voice", default=None,
                   help="voice name or blend 'a:0.7,b:0.3' / 'a(2)+b(1)' (default: the bundle's)")
    p.add_argument("--speed", type=_speed, default=1.0, help="0.25 to 4.0 (default 1.0)")
    p.add_argument("--mode", default=None, help="the bundle's quality mode (default: its default mode)")
    p.add_argument("--lang", default=None,
                   help="language to read the text in (ja, en-us, ... or a Kokoro letter: j, a, ...); "
                        "default: the voice's (its name's first letter, or the bundle's manifest)")


def _oneshot_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m kokoro_runtime",
        description="Speak text with a Kokoro bundle (24 kHz mono), in the voice's language (jf_*: Japanese, "
                    "af_*: American English, ...; --lang overrides it). Other commands: "
                    "serve (HTTP server), say (through a local daemon), status, stop; "
                    "'python -m kokoro_runtime COMMAND --help' for each.")
    p.add_argument("text", nargs="?", help="text to speak; '-' or nothing reads standard input")
    _common(p)
    p.add_argument("-o", "--output", default="out.wav", help="WAV path, or '-' for raw PCM s16le on stdout")
    p.add_argument("--provider", action="append", dest="providers", default=None,
                   help="onnxruntime execution provider (repeat for a priority list; cpu, cuda, tensorrt...)")
    p.add_argument("--fallback", action="store_true",
                   help="run on the next provider (at last CPU) when one cannot be had, instead of failing")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: onnxruntime's default)")
    p.add_argument("--no-graph-optimization", action="store_true",
                   help="load a pre-optimized .ort model without re-optimizing it")
    p.add_argument("--no-verify", action="store_true", help="skip the sha256 check of the bundle's files")
    p.add_argument("--rehash", action="store_true",
                   help="hash every file the bundle loads, even those stamped as checked in ~/.cache/kokoro_runtime")
    p.add_argument("--no-session-cache", action="store_true",
                   help="do not keep onnxruntime's optimized graph in ~/.cache/kokoro_runtime (slower next start)")
    p.add_argument("--list-voices", action="store_true", help="print the bundle's voices with their languages and exit")
    p.add_argument("--phonemes", action="store_true", help="print each chunk's phonemes and exit")
    return p


def oneshot(argv: list[str]) -> int:
    args = _oneshot_parser().parse_args(argv)
    from .audio import to_pcm16, write_wav
    from .bundle import Bundle

    if args.threads < 0:
        raise KokoroError(f"--threads: {args.threads}; use 0 (onnxruntime's default) or more")
    root = _bundle_of(args)
    bundle = Bundle(root, verify=not args.no_verify, rehash=args.rehash)
    # the session loads on a thread while the voice is checked and the text front end reads the text
    tts = bundle.synthesizer(args.providers, args.threads, False if args.no_graph_optimization else None,
                             mode=args.mode, fallback=args.fallback, session_cache=not args.no_session_cache,
                             background_session=True)
    if args.list_voices:
        for v, code in tts.languages.items():
            print(f"{v}\t{code}")
        return 0
    text = _text(args.text)
    voice = args.voice or bundle.default_voice or tts.voices[0]
    tts.voice_array(voice)                                     # an unknown voice fails before any output
    chunks = _chunks(tts, text, voice, args.lang)
    if args.phonemes:
        for c in chunks:
            print(c.phonemes)
        return 0
    if args.output == "-":
        out = sys.stdout.buffer
        for r in tts.render(text, voice, args.speed, chunks=chunks):
            out.write(to_pcm16(r.audio))
            out.flush()
    else:
        import numpy as np

        write_wav(args.output, np.concatenate([r.audio for r in tts.render(text, voice, args.speed, chunks=chunks)]))
    return 0


def _chunks(tts, text: str, voice: str, lang: str | None) -> list:
    """The text's chunks in the request's language; a word, script or language the runtime cannot
    read fails here, before any output."""
    chunks = tts.text_to_chunks(text, True, tts.resolve_language(voice, lang))
    if not chunks:
        raise KokoroError("text: nothing to speak (no words the model can say)")
    return chunks


def say(argv: list[str]) -> int:
    from . import daemon

    p = Parser(prog="python -m kokoro_runtime say",
                                description="Speak through this bundle's local daemon, starting it if none "
                                            "answers; it exits by itself after --idle-timeout seconds.")
    p.add_argument("text", nargs="?", help="text to speak; '-' or nothing reads standard input")
    _common(p)
    p.add_argument("-o", "--output", default=None,
                   help="WAV path, or '-' for raw PCM s16le on stdout (default: play it)")
    p.add_argument("--idle-timeout", type=float, default=daemon.DEFAULT_IDLE_S,
                   help=f"a daemon started now exits after this many idle seconds (default {daemon.DEFAULT_IDLE_S:g})")
    p.add_argument("--threads", type=int, default=0, help="threads for a daemon started now (default: all cores)")
    p.add_argument("--provider", action="append", dest="providers", default=None,
                   help="providers for a daemon started now")
    p.add_argument("--no-daemon", action="store_true", help="speak in this process, without a daemon")
    args = p.parse_args(argv)
    if not args.idle_timeout > 0:
        raise KokoroError(f"--idle-timeout: {args.idle_timeout}; use a number of seconds above 0")
    root = _bundle_of(args)
    if args.mode is not None:
        from .bundle import Bundle

        modes = Bundle(root, verify=False).modes
        if args.mode not in modes:
            raise KokoroError(f"--mode: {args.mode!r} is not a mode of this bundle; it has {', '.join(modes)}")
    text = _text(args.text)
    if args.no_daemon or not daemon.serve_available():
        if not args.no_daemon:
            print("kokoro_runtime: the serve extra is not installed, so no daemon: speaking in this process "
                  "(pip install 'kokoro-runtime[serve]' for the fast path)", file=sys.stderr)
        return _say_here(root, text, args)
    paths = daemon.Paths(root)
    daemon.ensure(paths, args.idle_timeout, args.threads, args.providers)
    sink = daemon.PCMSink(args.output)
    ok = False
    try:
        for data in daemon.speak(paths, text, args.voice, args.speed, args.mode, args.lang):
            sink.write(data)
        ok = True
    finally:
        sink.close(ok)
    return 0


def _say_here(root: Path, text: str, args: argparse.Namespace) -> int:
    from . import daemon
    from .audio import to_pcm16
    from .bundle import Bundle

    bundle = Bundle(root)
    tts = bundle.synthesizer(args.providers, args.threads, mode=args.mode, background_session=True)
    voice = args.voice or bundle.default_voice or tts.voices[0]
    tts.voice_array(voice)
    chunks = _chunks(tts, text, voice, args.lang)          # a bad word fails before the sink opens
    sink = daemon.PCMSink(args.output)
    ok = False
    try:
        for r in tts.render(text, voice, args.speed, chunks=chunks):
            sink.write(to_pcm16(r.audio))
        ok = True
    finally:
        sink.close(ok)
    return 0


def status(argv: list[str]) -> int:
    from . import daemon

    p = Parser(prog="python -m kokoro_runtime status",
                                description="Show this bundle's daemon (exit 0 running, 3 not running).")
    p.add_argument("--bundle", type=Path, default=None)
    p.add_argument("--json", action="store_true", help="print the daemon's /health JSON")
    args = p.parse_args(argv)
    paths = daemon.Paths(_bundle_of(args))
    info = daemon.health(paths)
    if args.json:
        print(json.dumps(info or {"status": "not running", "socket": str(paths.socket)}))
    elif info is None:
        print(f"no daemon running for {paths.bundle}")
    else:
        print(f"daemon {info.get('status')}: pid {info.get('pid')}, up {info.get('uptime_s')} s, "
              f"modes {', '.join(info.get('modes', []))}, socket {paths.socket}, log {paths.log}")
    return 0 if info else 3


def stop(argv: list[str]) -> int:
    from . import daemon

    p = Parser(prog="python -m kokoro_runtime stop", description="Stop this bundle's daemon.")
    p.add_argument("--bundle", type=Path, default=None)
    args = p.parse_args(argv)
    paths = daemon.Paths(_bundle_of(args))
    print("stopped" if daemon.stop(paths) else f"no daemon running for {paths.bundle}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "serve":
            from .server.run import main as serve_main

            return serve_main(argv[1:], _default_bundle())
        if argv and argv[0] == "wyoming":
            from .server.wyoming import main as wyoming_main

            return wyoming_main(argv[1:], _default_bundle())
        command = {"say": say, "status": status, "stop": stop}.get(argv[0] if argv else "", oneshot)
        return command(argv[1:] if command is not oneshot else argv)
    except KokoroError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
