"""`kopt tokencache build|stats`: the phoneme cache a bundle ships so most text needs no G2P."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperCommand

from kopt.cli import state
from kopt.cli.options import DryRun, Voice, show_settings_defaults

CACHE_SETTINGS = "kopt.publish.settings:CacheConfig"   # what `build` fills; its help shows the defaults


class _FillsCacheConfig(TyperCommand):
    """``tokencache build``: its help shows CacheConfig's defaults (a subcommand, so kopt.cli.main's
    COMMANDS table, which does this for top-level commands, does not reach it)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        show_settings_defaults(self, CACHE_SETTINGS)


tc_app = typer.Typer(help="Token cache: build it, and measure hit rate and drift from sentence-level G2P.",
                     no_args_is_help=True)


@tc_app.command("build", cls=_FillsCacheConfig)
def build_cmd(
    output: Path = typer.Option(Path("token_cache.json.gz"), "--output", "-o", help="Cache file to write (gzip JSON)."),
    words: Optional[int] = typer.Option(None, "--words", help="How many of the most frequent English words to "
                                        "include."),
    phrases: Optional[Path] = typer.Option(None, "--phrases", help="Text file, one phrase a line, phonemized whole."),
    dry_run: DryRun = False,
) -> None:
    """Phonemize frequent words, number words and listed phrases with espeak-ng."""
    from kopt.core.recipe import validate
    from kopt.publish.tokencache import CacheConfig, build_cache, read_phrases

    config = validate(CacheConfig, state.overrides(words=words, phrases=read_phrases(phrases) if phrases else ()),
                      "kopt tokencache build")
    if dry_run:
        state.say(f"would build {output}: {config.words} words, {len(config.phrases)} phrases, {config.language}")
        state.emit({"command": "tokencache build", "dry_run": True, "output": str(output),
                    "words": config.words, "phrases": list(config.phrases), "language": config.language})
        return
    cache = build_cache(config, progress=state.progress())
    cache.save(output)
    size = output.stat().st_size
    state.say(f"wrote {output}: {len(cache.words)} words, {len(cache.phrases)} phrases, {size / 1024:.0f} KiB ({cache.g2p})")
    state.emit({"command": "tokencache build", "output": str(output), "words": len(cache.words),
                "phrases": len(cache.phrases), "bytes": size, "g2p": cache.g2p})


@tc_app.command("stats")
def stats_cmd(
    cache_file: Path = typer.Argument(..., help="Token cache (.json.gz) or a bundle folder holding one."),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Text to measure on (default: kopt's prose sample)."),
    drift: bool = typer.Option(True, "--drift/--no-drift", help="Also compare with sentence-level G2P (needs espeak-ng)."),
    model: Optional[Path] = typer.Option(None, "--model", help="With a model: score the audio of both paths with PESQ."),
    voices: Optional[Path] = typer.Option(None, "--voices", help="Voices for --model."),
    voice: Voice = None,
) -> None:
    """Hit rate on a corpus, and how far cached phonemes drift from sentence-level G2P."""
    from importlib import resources

    from kokoro_runtime.lexicon import TokenCache
    from kopt.core.errors import KoptError
    from kopt.core.vocab import default_vocab
    from kopt.publish.tokencache import audio_agreement, hit_stats, measure

    path = cache_file / "token_cache.json.gz" if cache_file.is_dir() else cache_file
    cache = TokenCache.load(path) if path.exists() else None
    if cache is None:
        raise KoptError(f"{path}: token cache not found; build one with `kopt tokencache build`")
    text = corpus.read_text(encoding="utf-8") if corpus else (resources.files("kopt") / "data" / "prose.txt").read_text(encoding="utf-8")
    stats = measure(cache, text, default_vocab()) if drift else hit_stats(cache, text)
    out = stats.as_dict()
    state.say(f"{path}: {len(cache.words)} words, {len(cache.phrases)} phrases")
    state.say(f"hit rate {stats.hit_rate:.2%} ({stats.hits}/{stats.words} words); misses: {', '.join(stats.misses[:20]) or 'none'}")
    if drift:
        state.say(f"drift from sentence-level G2P: {stats.edits} token edits over {stats.ref_symbols} tokens "
                  f"({stats.edit_rate:.2%}); {stats.differing_clauses}/{stats.clauses} clauses differ")
        for clause, a, b in stats.examples[:5]:
            state.say(f"  {clause}\n    cache: {a}\n    g2p:   {b}")
    if model:
        if voices is None:
            raise KoptError("--model needs --voices")
        from kopt.source.voices import load_voices

        vs = load_voices(voices)
        agree = audio_agreement(model, vs, default_vocab(), cache, text, voice or sorted(vs)[0])
        out["audio"] = agree
        state.say(f"audio: {agree['identical']}/{agree['sentences']} sentences identical; the rest PESQ-wb "
                  f"mean {agree['pesq_wb_mean']} min {agree['pesq_wb_min']} (cached vs sentence-level G2P)")
    state.emit({"command": "tokencache stats", "cache": str(path), **out})
