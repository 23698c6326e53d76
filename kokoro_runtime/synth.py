"""The synthesizer: one onnxruntime session, a voice pack, the text front end, streaming."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np

from . import voicepack
from .audio import JoinPolicy, fade_edges, silence, trim_silence
from .errors import BundleError
from .frontend import MAX_TOKENS, Chunk, ChunkPolicy, FrontEnd, G2P
from .lexicon import TokenCache

STYLE_DIM = 256
_TOKEN_NAMES = ("tokens", "input_ids")
_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int32)": np.int32,
               "tensor(int64)": np.int64, "tensor(double)": np.float64}


def make_session(model_path: str | Path, providers: list | None = None, threads: int = 0,
                 graph_optimization: bool = True):
    import onnxruntime as ort

    p = Path(model_path)
    if not p.is_file():
        raise BundleError(f"{p}: model file not found")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if graph_optimization
                                     else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    if p.suffix == ".ort":
        opts.add_session_config_entry("session.load_model_format", "ORT")
    try:
        return ort.InferenceSession(str(p), sess_options=opts, providers=providers or ["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own Fail/InvalidGraph/... types
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise BundleError(f"{p}: onnxruntime cannot load the model ({msg})") from None


class Synthesizer:
    def __init__(self, model_path: str | Path, voices: "dict[str, np.ndarray] | str | Path",
                 vocab: dict[str, int] | None = None, token_cache: "TokenCache | str | Path | dict | None" = None,
                 providers: list | None = None, threads: int = 0, graph_optimization: bool = True,
                 g2p: "G2P | bool | None" = None, policy: ChunkPolicy = ChunkPolicy(),
                 join: JoinPolicy = JoinPolicy()) -> None:
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
        self.session = make_session(self.model_path, providers, threads, graph_optimization)
        self.providers = self.session.get_providers()
        self._bind_signature()

    def _bind_signature(self) -> None:
        inputs = {i.name: i for i in self.session.get_inputs()}
        tok = next((n for n in _TOKEN_NAMES if n in inputs), None)
        if tok is None or "style" not in inputs or "speed" not in inputs:
            raise BundleError(f"{self.model_path}: not a Kokoro model (inputs {sorted(inputs)}; need tokens or "
                              "input_ids, style, speed)")
        self._tok = tok
        self._style_dtype = _ORT_DTYPES.get(inputs["style"].type, np.float32)
        self._speed_dtype = _ORT_DTYPES.get(inputs["speed"].type, np.float32)
        self._audio = self.session.get_outputs()[0].name

    @property
    def voices(self) -> list[str]:
        return sorted(self._voices)

    def voice_array(self, voice: "str | np.ndarray") -> np.ndarray:
        return voicepack.resolve(self._voices, voice)

    # -- text ---------------------------------------------------------------------------------
    def text_to_chunks(self, text: str, first_short: bool = False) -> list[Chunk]:
        return self.frontend.chunks(text, first_short=first_short)

    # -- model --------------------------------------------------------------------------------
    def run_tokens(self, token_ids: list[int], voice: "str | np.ndarray", speed: float = 1.0) -> np.ndarray:
        """One model call: pads with 0 at both ends; style row = number of tokens (Kokoro's rule)."""
        ids = list(token_ids)
        if len(ids) > MAX_TOKENS:
            raise ValueError(f"{len(ids)} tokens; the model takes at most {MAX_TOKENS} per call")
        pack = self.voice_array(voice)
        row = min(len(ids), MAX_TOKENS - 1)
        if np.issubdtype(self._speed_dtype, np.integer):
            spd = np.array([int(round(speed))], dtype=self._speed_dtype)
        else:
            spd = np.array([speed], dtype=self._speed_dtype)
        feeds = {
            self._tok: np.array([[0, *ids, 0]], dtype=np.int64),
            "style": pack[row].reshape(1, STYLE_DIM).astype(self._style_dtype),
            "speed": spd,
        }
        out = self.session.run([self._audio], feeds)[0]
        return np.asarray(out, dtype=np.float32).reshape(-1)

    # -- speech -------------------------------------------------------------------------------
    def stream(self, text: str, voice: "str | np.ndarray", speed: float = 1.0,
               first_short: bool = True) -> Iterator[np.ndarray]:
        """Yield audio per chunk as soon as it is rendered. The text front end runs first, so a
        word that cannot be phonemized fails before any audio. Each chunk carries its join
        (see JoinPolicy): trimmed silence, faded edges and the pause that follows it."""
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
