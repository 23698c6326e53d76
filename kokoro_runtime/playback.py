"""Where ``say`` sends its audio: a local player's stdin, a WAV file, or raw PCM on stdout.

Stdlib only, like the daemon client: 16-bit 24 kHz mono PCM in, nothing decoded or resampled.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import IO

from .errors import KokoroError

SAMPLE_RATE = 24000
_PLAYERS = (("aplay", ["-q", "-t", "raw", "-f", "S16_LE", "-r", "24000", "-c", "1"]),
            ("paplay", ["--raw", "--format=s16le", "--rate=24000", "--channels=1"]),
            ("play", ["-q", "-t", "raw", "-e", "signed", "-b", "16", "-r", "24000", "-c", "1", "-"]),
            ("ffplay", ["-loglevel", "quiet", "-autoexit", "-nodisp", "-f", "s16le", "-ar", "24000", "-ch_layout",
                        "mono", "-i", "-"]))


class PlaybackError(KokoroError):
    """No way to play the audio here (no player found)."""


def find_player() -> list[str] | None:
    for name, args in _PLAYERS:
        exe = shutil.which(name)
        if exe:
            return [exe, *args]
    return None


class PCMSink:
    """Where ``say`` writes: a WAV file (written to a temporary name, renamed when complete), raw
    PCM on stdout, or a player's stdin."""

    def __init__(self, output: str | None) -> None:
        self.output = output
        self._wav = None
        self._tmp: Path | None = None
        self._proc = None
        self._out: IO[bytes] | None = None
        if output == "-":
            self._out = sys.stdout.buffer
        elif output:
            import wave

            target = Path(output)
            self._tmp = target.with_name(f".{target.name}.part")
            self._wav = wave.open(str(self._tmp), "wb")
            self._wav.setnchannels(1)
            self._wav.setsampwidth(2)
            self._wav.setframerate(SAMPLE_RATE)
        else:
            player = find_player()
            if player is None:
                raise PlaybackError("no audio player found (aplay, paplay, play or ffplay); pass -o out.wav or -o -")
            self._proc = subprocess.Popen(player, stdin=subprocess.PIPE)
            self._out = self._proc.stdin

    def write(self, data: bytes) -> None:
        if self._wav is not None:
            self._wav.writeframes(data)
        else:
            assert self._out is not None
            self._out.write(data)
            self._out.flush()

    def close(self, ok: bool) -> None:
        if self._wav is not None:
            self._wav.close()
            assert self._tmp is not None and self.output is not None
            if ok:
                os.replace(self._tmp, self.output)
            else:
                self._tmp.unlink(missing_ok=True)
        if self._proc is not None:
            with contextlib.suppress(BrokenPipeError):
                if self._proc.stdin is not None:
                    self._proc.stdin.close()
            self._proc.wait()
