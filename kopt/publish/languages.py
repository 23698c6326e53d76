"""What a bundle says about its languages: the ones its voices speak, the G2P packages each needs
(with the versions this build had), and ``voice_languages`` for the voices whose names do not say
their language (Kokoro's ``<letter><f|m>_name`` convention), which the runtime reads from the
manifest (kokoro_runtime.bundle) together with ``default_language``.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Mapping

from kopt.core.errors import KoptError

_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def runtime_extras() -> dict[str, list[str]]:
    """The runtime's optional dependencies by extra (its own pyproject.toml, which bundles carry)."""
    import tomllib

    import kokoro_runtime

    p = Path(kokoro_runtime.__file__).with_name("pyproject.toml")
    data = tomllib.loads(p.read_text(encoding="utf-8"))
    extras = data.get("project", {}).get("optional-dependencies", {})
    return {k: [m.group(1) for r in v if (m := _REQ_NAME.match(r))] for k, v in extras.items()}


def _installed(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def voice_languages(voices: Mapping[str, Any], blends: Mapping[str, str], declared: Mapping[str, str],
                    default_language: str) -> tuple[dict[str, str], dict[str, str]]:
    """(every voice -> its language code, the manifest's ``voice_languages``: only the voices whose
    names do not follow Kokoro's convention). A declared language for a conventionally named voice
    that contradicts its name is an error; a blend speaks its first voice's language."""
    from kokoro_runtime import lang as rlang
    from kokoro_runtime.errors import InvalidInput

    def code(x: str, where: str) -> str:
        try:
            return rlang.get(x, where).code
        except InvalidInput as e:
            raise KoptError(f"publish.{e}") from None

    decl = {k: code(v, f"voice_languages.{k}") for k, v in declared.items()}
    unknown = sorted(set(decl) - set(voices))
    if unknown:
        raise KoptError(f"publish.voice_languages: no voice {unknown[0]!r} in the bundle; voices: "
                        f"{', '.join(sorted(voices))}")
    default = code(default_language, "default_language")
    every: dict[str, str] = {}
    listed: dict[str, str] = {}
    for name in sorted(voices):
        by_name = rlang.of_voice_name(name)
        if name in blends and name not in decl:
            lang = rlang.voice_language(blends[name], decl, default).code
        else:
            lang = decl.get(name) or (by_name.code if by_name else default)
        if by_name is not None and lang != by_name.code:
            raise KoptError(f"publish.voice_languages.{name}: {lang}, but the name says {by_name.code} "
                            "(Kokoro's first letter); rename the voice or drop the entry")
        every[name] = lang
        if by_name is None:
            listed[name] = lang
    return every, listed


def languages_entry(spoken: Mapping[str, str], metrics: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Per language the voices speak: its name, the runtime extra with its G2P, the extra's
    packages and the versions this build had installed (None: not installed here), its voices, and
    whether the build measured its quality (the metrics carry ``<metric>@<language>`` figures)."""
    from kokoro_runtime import lang as rlang
    measured = {k.rpartition("@")[2] for k in (metrics or {}) if "@" in k}  # kopt.select.metrics' LANGUAGE_SEP
    extras = runtime_extras()
    out: dict[str, dict[str, Any]] = {}
    counts = {c: sum(1 for x in spoken.values() if x == c) for c in set(spoken.values())}
    for code in sorted(counts, key=lambda c: (-counts[c], c)):  # the language most voices speak first
        lang = rlang.get(code)
        pkgs = extras.get(lang.extra, [])
        out[code] = {"name": lang.name, "extra": lang.extra, "g2p": lang.g2p,
                     "g2p_packages": {p: _installed(p) for p in pkgs},
                     "voices": sorted(v for v, c in spoken.items() if c == code),
                     "quality_measured": code in measured}
    return out
