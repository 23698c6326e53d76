"""python -m kokoro_runtime "Some text." [--bundle DIR] [--voice NAME] [--speed 1.0] [-o out.wav|-]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .audio import to_pcm16, write_wav
from .bundle import MANIFEST, Bundle
from .errors import RuntimeFailure


def _default_bundle() -> Path | None:
    root = Path(__file__).resolve().parent.parent
    return root if (root / MANIFEST).is_file() else None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m kokoro_runtime",
                                description="Speak English text with a Kokoro bundle (24 kHz mono).")
    p.add_argument("text", nargs="?", help="text to speak; '-' or nothing reads standard input")
    p.add_argument("--bundle", type=Path, default=None,
                   help="bundle directory (default: the bundle this runtime sits in)")
    p.add_argument("--voice", default=None, help="voice name or blend 'a:0.7,b:0.3' (default: the bundle's)")
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("-o", "--output", default="out.wav", help="WAV path, or '-' for raw PCM s16le on stdout")
    p.add_argument("--provider", action="append", dest="providers", default=None,
                   help="onnxruntime execution provider (repeat for a priority list)")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: onnxruntime's default)")
    p.add_argument("--no-graph-optimization", action="store_true",
                   help="load a pre-optimized .ort model without re-optimizing it")
    p.add_argument("--no-verify", action="store_true", help="skip the sha256 check of the bundle's files")
    p.add_argument("--list-voices", action="store_true", help="print the bundle's voices and exit")
    p.add_argument("--phonemes", action="store_true", help="print each chunk's phonemes and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    root = args.bundle or _default_bundle()
    try:
        if root is None:
            raise RuntimeFailure("no bundle: pass --bundle DIR (or run from inside a bundle directory)")
        bundle = Bundle(root, verify=not args.no_verify)
        tts = bundle.synthesizer(args.providers, args.threads,
                                 False if args.no_graph_optimization else None)
        if args.list_voices:
            print("\n".join(tts.voices))
            return 0
        text = args.text if args.text not in (None, "-") else sys.stdin.read()
        if not text.strip():
            raise RuntimeFailure("no text to speak")
        if args.phonemes:
            for c in tts.text_to_chunks(text, first_short=True):
                print(c.phonemes)
            return 0
        voice = args.voice or bundle.default_voice or tts.voices[0]
        if args.output == "-":
            out = sys.stdout.buffer
            for chunk in tts.stream(text, voice, args.speed):
                out.write(to_pcm16(chunk))
                out.flush()
        else:
            write_wav(args.output, tts.synthesize(text, voice, args.speed))
    except RuntimeFailure as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
