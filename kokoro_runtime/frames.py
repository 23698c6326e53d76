"""Kokoro's decoder streamed by frames: the front once per sentence, the back over windows of frames.

Three graphs (kopt's frame-stream cut writes them as ``front.onnx``, ``stats.onnx``, ``back.onnx``):

- the **front** takes the whole model's inputs and gives ``asr`` [1, C, T], ``f0`` and ``n`` [1, 2T];
- the **stats** graph gives, from ``asr, f0, n, style``, the whole sentence's statistics of the
  decoder's frame-rate instance norms (``norm{i}_mean/var``), which no window could compute;
- the **back** takes a window's slice of ``asr, f0, n``, ``style``, the fed norms' statistics,
  ``phase_offset`` [1, 1, H] and ``carry_at`` int64 [1], and gives the window's ``audio`` and
  ``phase_carry``: the phase offset of a window starting ``carry_at`` frames later.

Statistics the stats graph does not give (the generator's norms, when the back takes them) are the
voice's calibrated ones, passed in as ``norm_stats``. ``Schedule`` lays the windows: sizes
``(40, 80, 160)`` by default, the last repeated, each starting ``overlap`` frames before the
previous one ends. ``FrameStream.stream`` runs them in order and yields audio as each finishes:
a window's frames up to the start of the next, its last ``overlap`` frames held back and
crossfaded (linear ramps summing to one) into the next window's first ones, so the chunks tile the
sentence's frames exactly once, ``samples_per_frame`` samples each (600 for Kokoro at 24 kHz).
``FrameStream.whole`` runs the back on the whole sentence in one window: the reference a stream is
compared with (same statistics, no windows).

numpy and onnxruntime only; sessions come from ``kokoro_runtime.session.make_session``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from .errors import BundleError, InvalidInput, SynthesisError, first_line
from .session import ProviderSpec, make_session

FRONT, STATS, BACK = "front.onnx", "stats.onnx", "back.onnx"
META_OVERLAP, META_FED = "frame_stream.overlap", "frame_stream.fed"  # the back's metadata: the cut's config
SAMPLES_PER_FRAME = 600  # Kokoro at 24 kHz: the iSTFT vocoder's hop times its upsampling
FEATURES = ("asr", "f0", "n")


@dataclass(frozen=True)
class Schedule:
    """Windows of ``sizes[k]`` frames (the last size repeated), each starting ``overlap`` frames
    before the previous one ends. Every size must hold two overlaps (a window's head is crossfaded
    with the previous tail, its tail with the next head)."""

    sizes: tuple[int, ...] = (40, 80, 160)
    overlap: int = 16

    def __post_init__(self) -> None:
        if isinstance(self.overlap, bool) or not isinstance(self.overlap, int) or self.overlap < 0:
            raise InvalidInput("overlap", f"{self.overlap!r} is not a whole number of frames >= 0")
        if not self.sizes or any(isinstance(w, bool) or not isinstance(w, int) or w < max(1, 2 * self.overlap)
                                 for w in self.sizes):
            raise InvalidInput("sizes", f"{self.sizes!r}: every window needs at least {max(1, 2 * self.overlap)} "
                                        f"frames (twice the overlap of {self.overlap})")

    def windows(self, frames: int) -> list[tuple[int, int]]:
        """(start, end) frames of each window over a sentence of ``frames`` frames."""
        if frames < 1:
            raise InvalidInput("frames", f"{frames!r}: a sentence has at least one frame")
        out: list[tuple[int, int]] = []
        start = 0
        while True:
            end = min(start + self.sizes[min(len(out), len(self.sizes) - 1)], frames)
            out.append((start, end))
            if end >= frames:
                return out
            start = end - self.overlap


class Crossfade:
    """Stitches consecutive windows' audio: ``push`` takes a window's audio and gives what can be
    played now (the previous tail crossfaded into this head, then this window's audio up to its own
    tail, which is held back, or to its end for the last window)."""

    def __init__(self, overlap_samples: int) -> None:
        self.n = overlap_samples
        self.fade_in = np.linspace(0.0, 1.0, overlap_samples + 2, dtype=np.float64)[1:-1].astype(np.float32)
        self.tail: np.ndarray | None = None

    def push(self, audio: np.ndarray, last: bool) -> np.ndarray:
        a = np.asarray(audio, np.float32).reshape(-1)
        if self.tail is not None:
            head = self.tail * (1.0 - self.fade_in) + a[: self.n] * self.fade_in
            a = np.concatenate([head, a[self.n:]])
        if last or self.n == 0:
            self.tail = None
            return a
        self.tail = a[len(a) - self.n:]
        return a[: len(a) - self.n]


class FrameStream:
    """The three sessions and a window schedule; see the module docstring. Sessions are anything
    with onnxruntime's ``run``, ``get_inputs``, ``get_outputs`` (and ``get_modelmeta`` for the
    back, read when no schedule is given)."""

    def __init__(self, front: Any, stats: Any, back: Any, schedule: Schedule | None = None,
                 samples_per_frame: int = SAMPLES_PER_FRAME) -> None:
        self.front, self.stats, self.back = front, stats, back
        inputs = {i.name: i for i in back.get_inputs()}
        need = [*FEATURES, "style", "phase_offset", "carry_at"]
        missing = [k for k in need if k not in inputs]
        if missing:
            raise BundleError(f"{BACK}: not a frame-stream back (no input {', '.join(missing)})")
        h = list(inputs["phase_offset"].shape)
        if len(h) != 3 or not isinstance(h[2], int):
            raise BundleError(f"{BACK}: phase_offset has shape {h}, not [1, 1, H] with H static")
        self.harmonics = h[2]
        self.fed = [k for k in inputs if k.startswith("norm")]
        self.front_inputs = [i.name for i in front.get_inputs()]
        self.stats_outputs = [o.name for o in stats.get_outputs()]
        self.schedule = schedule or Schedule(overlap=self._overlap(back))
        self.samples_per_frame = samples_per_frame

    @staticmethod
    def _overlap(back: Any) -> int:
        meta = getattr(back, "get_modelmeta", None)
        value = meta().custom_metadata_map.get(META_OVERLAP) if meta is not None else None
        return Schedule.overlap if value is None else int(value)

    @classmethod
    def open(cls, folder: str | Path, providers: Sequence[ProviderSpec] | None = None, threads: int = 0,
             schedule: Schedule | None = None, samples_per_frame: int = SAMPLES_PER_FRAME) -> "FrameStream":
        """The three graphs of ``folder`` (``front.onnx``, ``stats.onnx``, ``back.onnx``)."""
        d = Path(folder)
        front, stats, back = (make_session(d / name, providers, threads) for name in (FRONT, STATS, BACK))
        return cls(front, stats, back, schedule, samples_per_frame)

    # -- the pieces -------------------------------------------------------------------------
    @staticmethod
    def _run(sess: Any, feeds: Mapping[str, np.ndarray], what: str) -> list[Any]:
        try:
            return list(sess.run(None, dict(feeds)))
        except Exception as e:  # onnxruntime raises its own Fail/InvalidArgument/... types
            raise SynthesisError(f"{what}: {first_line(e)}") from e

    def features(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The front on the whole model's ``feeds`` (tokens, style, speed, ...): asr, f0, n and the style."""
        if "style" not in feeds:
            raise InvalidInput("feeds", "no style row")
        asr, f0, n = self._run(self.front, {k: v for k, v in feeds.items() if k in self.front_inputs}, FRONT)[:3]
        if f0.shape[1] % asr.shape[2] or n.shape[1] != f0.shape[1]:
            raise SynthesisError(f"{FRONT}: f0 {f0.shape} / n {n.shape} are no whole number of rows per frame "
                                 f"of asr {asr.shape}")
        return {"asr": asr, "f0": f0, "n": n, "style": np.asarray(feeds["style"], np.float32).reshape(1, -1)}

    def sentence_stats(self, feats: Mapping[str, np.ndarray],
                       norm_stats: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """What the back's norm inputs are fed: the stats graph's (the sentence's own frame-rate
        statistics) over ``norm_stats`` (the voice's calibrated ones); an InvalidInput naming the
        norms neither gives."""
        got = dict(zip(self.stats_outputs, self._run(self.stats, {k: feats[k] for k in (*FEATURES, "style")}, STATS)))
        stats = {**(norm_stats or {}), **got}
        missing = [k for k in self.fed if k not in stats]
        if missing:
            raise InvalidInput("norm_stats", f"the back takes {len(missing)} statistics neither the stats graph "
                                             f"nor the voice's calibration gives ({', '.join(missing[:4])}...)")
        return {k: np.asarray(stats[k], np.float32) for k in self.fed}

    def window(self, feats: Mapping[str, np.ndarray], stats: Mapping[str, np.ndarray], start: int, end: int,
               offset: np.ndarray, carry_at: int) -> tuple[np.ndarray, np.ndarray]:
        """The back on frames [start, end): (audio, phase_carry at ``carry_at`` frames from ``start``)."""
        per = feats["f0"].shape[1] // feats["asr"].shape[2]
        feeds = {"asr": feats["asr"][:, :, start:end], "f0": feats["f0"][:, per * start:per * end],
                 "n": feats["n"][:, per * start:per * end], "style": feats["style"], **stats,
                 "phase_offset": offset, "carry_at": np.array([carry_at], np.int64)}
        audio, carry = self._run(self.back, feeds, BACK)[:2]
        audio = np.asarray(audio, np.float32).reshape(-1)
        if len(audio) != (end - start) * self.samples_per_frame:
            raise SynthesisError(f"{BACK}: {len(audio)} samples for {end - start} frames; expected "
                                 f"{self.samples_per_frame} per frame")
        return audio, np.asarray(carry, np.float32)

    # -- whole sentences --------------------------------------------------------------------
    def stream(self, feeds: Mapping[str, np.ndarray],
               norm_stats: Mapping[str, np.ndarray] | None = None) -> Iterator[np.ndarray]:
        """One sentence's audio, a chunk as each window finishes (the front and the stats graph run
        before the first); the chunks together are the sentence, every frame once."""
        feats = self.features(feeds)
        stats = self.sentence_stats(feats, norm_stats)
        wins = self.schedule.windows(int(feats["asr"].shape[2]))
        fade = Crossfade(self.schedule.overlap * self.samples_per_frame)
        offset = np.zeros((1, 1, self.harmonics), np.float32)
        for k, (s, e) in enumerate(wins):
            last = k + 1 == len(wins)
            audio, carry = self.window(feats, stats, s, e, offset, (e - s) if last else wins[k + 1][0] - s)
            offset = carry
            yield fade.push(audio, last)

    def whole(self, feeds: Mapping[str, np.ndarray], norm_stats: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """The back on the whole sentence in one window, with the statistics a stream feeds: what
        ``stream``'s chunks approximate."""
        feats = self.features(feeds)
        stats = self.sentence_stats(feats, norm_stats)
        frames = int(feats["asr"].shape[2])
        return self.window(feats, stats, 0, frames, np.zeros((1, 1, self.harmonics), np.float32), frames)[0]
