"""The synthesizer: one onnxruntime session, a voice pack, the text front end, streaming."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np

from . import voicepack
from .audio import JoinPolicy, fade_edges, silence, trim_silence
from . import session as _session
from .errors import BundleError, InvalidInput, SynthesisError, first_line
from .feed import Signature, check_speed, pad, style_row
from .frontend import Chunk, ChunkPolicy, FrontEnd, G2P
from .lexicon import TokenCache


def make_session(model_path: str | Path, providers: list | None = None, threads: int = 0,
                 graph_optimization: bool = True, fallback: bool = False):
    """Kept for callers of 0.1: see kokoro_runtime.session.make_session."""
    return _session.make_session(model_path, providers, threads, graph_optimization, fallback=fallback)


class Synthesizer:
    def __init__(self, model_path: str | Path, voices: "dict[str, np.ndarray] | str | Path",
                 vocab: dict[str, int] | None = None, token_cache: "TokenCache | str | Path | dict | None" = None,
                 providers: list | None = None, threads: int = 0, graph_optimization: "bool | str" = True,
                 g2p: "G2P | bool | None" = None, policy: ChunkPolicy = ChunkPolicy(),
                 join: JoinPolicy = JoinPolicy(), fallback: bool = False) -> None:
        self.model_path = Path(model_path)
        self._voices = (voicepack.load_npz(voices) if isinstance(voices, (str, Path))
                        else {k: voicepack.check_voice(k, v, "voices") for k, v in voices.items()})
        if not self._voices:
            raise BundleError("no voices given")
        self.vocab = dict(vocab) if vocab is not None else _vocab_next_to(self.model_path)
        if isinstance(token_cache, (str, Path)):
            token_cache = TokenCache.load(token_cache)
        elif isinstance(token_cache, dict):
            token_cache = TokenCache.from_json(token_cache)
        self.token_cache = token_cache
        self.frontend = FrontEnd(self.vocab, token_cache, g2p, policy)
        self.join = join
        self.session = _session.make_session(self.model_path, providers, threads, graph_optimization,
                                             fallback=fallback)
        self.providers = self.session.get_providers()
        self.signature = Signature.of(self.session, str(self.model_path))

    @property
    def has_durations(self) -> bool:
        """Whether the model reports per-token durations (word timestamps need them)."""
        return self.signature.durations_out is not None

    @property
    def voices(self) -> list[str]:
        return sorted(self._voices)

    def voice_array(self, voice: "str | np.ndarray") -> np.ndarray:
        return voicepack.resolve(self._voices, voice)

    # -- text ---------------------------------------------------------------------------------
    def text_to_chunks(self, text: str, first_short: bool = False) -> list[Chunk]:
        return self.frontend.chunks(text, first_short=first_short)

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
    def stream(self, text: str, voice: "str | np.ndarray", speed: float = 1.0,
               first_short: bool = True) -> Iterator[np.ndarray]:
        """Yield audio per chunk as soon as it is rendered. The text front end runs first, so a
        word that cannot be phonemized fails before any audio. Each chunk carries its join
        (see JoinPolicy): trimmed silence, faded edges and the pause that follows it."""
        speed = check_speed(speed)
        pack = self.voice_array(voice)
        chunks = self.text_to_chunks(text, first_short=first_short)
        for k, chunk in enumerate(chunks):
            audio = self.run_tokens(list(chunk.tokens), pack, speed)
            audio = fade_edges(trim_silence(audio, self.join.trim_db, self.join.keep_s), self.join.fade_s)
            if k + 1 < len(chunks):
                gap = self.join.sentence_gap_s if chunk.sentence_end else self.join.clause_gap_s
                audio = np.concatenate([audio, silence(gap / max(speed, 0.1))])
            yield audio

    def synthesize(self, text: str, voice: "str | np.ndarray", speed: float = 1.0,
                   first_short: bool = True) -> np.ndarray:
        """The whole text as one array: exactly the stream's chunks joined."""
        parts = list(self.stream(text, voice, speed, first_short=first_short))
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


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
