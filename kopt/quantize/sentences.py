"""kopt's sentence files, one per (purpose, language): the check sets and the calibration corpora.

Every file in ``kopt/data/calib/`` is tab-separated text with its Kokoro phonemes precomputed, so no
build stage needs a G2P. Its header says what it holds::

    # language: ja
    # g2p: pyopenjtalk 0.4.1.post10, misaki 0.9.4 via kokoro_runtime.ja
    # id	category	text	phonemes

The ``# language:`` line must agree with the language the file is registered under below (a file
without one, the English calibration corpus whose bytes are in every calibrated variant's cache
key, takes the registered one). Regenerate a file's phoneme column from the runtime's G2P (the
text column is kept, the header's g2p line is rewritten)::

    python -m kopt.quantize.sentences kopt/data/calib/checkset-ja.tsv          # rewrite in place
    python -m kopt.quantize.sentences --check kopt/data/calib/checkset-ja.tsv  # exit 1 if stale
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Mapping, Sequence

from kopt.core.errors import KoptError
from kopt.core.hashing import sha256_bytes

# language -> file name, per purpose; the first language of each is the default
CHECKSETS: dict[str, str] = {"en-us": "checkset.tsv", "ja": "checkset-ja.tsv"}
CALIBRATION: dict[str, str] = {"en-us": "sentences.tsv", "ja": "sentences-ja.tsv"}
DEFAULT_LANGUAGE = "en-us"


@dataclass(frozen=True)
class Sentence:
    id: str
    category: str  # short | medium | long ("" in a calibration corpus)
    language: str
    text: str
    phonemes: str

    def tokens(self, vocab: Mapping[str, int] | None = None) -> tuple[int, ...]:
        """Kokoro token ids with the boundary 0 at both ends (symbols outside the vocab dropped)."""
        from kopt.core.vocab import default_vocab

        v = vocab or default_vocab()
        return (0, *(v[c] for c in self.phonemes if c in v), 0)


@dataclass(frozen=True)
class SentenceFile:
    name: str  # file name, e.g. "checkset-ja.tsv"
    language: str
    g2p: str
    version: int
    sha256: str
    items: tuple[Sentence, ...]
    columns: tuple[str, ...]
    header: tuple[str, ...]  # the comment lines as written

    def select(self, names: Sequence[str] | None = None) -> tuple[Sentence, ...]:
        """Items whose id or category is in ``names`` (all when None); KoptError when none is left."""
        if names is None:
            return self.items
        out = tuple(s for s in self.items if s.id in names or s.category in names)
        if not out:
            known = sorted({s.id for s in self.items} | {s.category for s in self.items} - {""})
            raise KoptError(f"kopt/data/calib/{self.name} ({self.language}): nothing matches "
                            f"{', '.join(names) or '(empty)'}; known ids and categories: {', '.join(known)}")
        return out

    def as_inputs(self) -> dict[str, object]:
        """What a result record says about its texts (the keys the text set writes too)."""
        return {"text_set": self.name.rsplit(".", 1)[0], "text_set_version": self.version,
                "text_set_sha256": self.sha256}


def data_path(name: str) -> Path:
    return Path(str(resources.files("kopt") / "data" / "calib" / name))


def _file_for(registry: Mapping[str, str], language: str, what: str) -> str:
    from kokoro_runtime import lang as rlang

    try:
        code = rlang.get(language, what).code
    except Exception:  # InvalidInput: not a language at all
        code = language
    if code not in registry:
        raise KoptError(f"{what}: no {language!r} sentences in kopt/data/calib; languages with them: "
                        f"{', '.join(registry)}")
    return registry[code]


def checkset(language: str = DEFAULT_LANGUAGE) -> SentenceFile:
    """The check set of ``language``: short/medium/long passages held out from calibration."""
    return read(_file_for(CHECKSETS, language, "check set language"))


def calibration_corpus(language: str = DEFAULT_LANGUAGE) -> SentenceFile:
    return read(_file_for(CALIBRATION, language, "calibration language"))


def checkset_languages() -> tuple[str, ...]:
    return tuple(CHECKSETS)


@functools.lru_cache(maxsize=16)
def read(name: str, path: str | None = None) -> SentenceFile:
    """Parse one sentence file (``path``, or kopt's ``kopt/data/calib/<name>``)."""
    p = Path(path) if path else data_path(name)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise KoptError(f"{p}: sentence file not found") from None
    return parse(raw.decode("utf-8"), p.name, sha256_bytes(raw))


def parse(text: str, name: str, sha: str = "") -> SentenceFile:
    registered = _registered().get(name)
    meta: dict[str, str] = {}
    columns: tuple[str, ...] = ()
    header: list[str] = []
    items: list[Sentence] = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            header.append(line)
            body = line[1:].strip()
            if "\t" in body:
                columns = tuple(c.split()[0].lower() for c in body.split("\t"))
                if columns and columns[0] == "name":
                    columns = ("id", *columns[1:])
            else:
                key, sep, value = body.partition(":")
                if sep and key.strip().isidentifier():
                    meta[key.strip().lower()] = value.strip()
            continue
        if not columns:
            raise KoptError(f"{name}:{i}: a data line before the column header (# text<TAB>phonemes ...)")
        cells = line.split("\t")
        if len(cells) != len(columns):
            raise KoptError(f"{name}:{i}: {len(cells)} columns, the header names {len(columns)} ({', '.join(columns)})")
        row = dict(zip(columns, cells))
        try:
            text_, phon = row["text"], row["phonemes"]
        except KeyError as e:
            raise KoptError(f"{name}: the column header has no {e.args[0]!r} column") from None
        sid = row.get("id") or f"{Path(name).stem}-{len(items)}"
        items.append(Sentence(sid, row.get("category", sid if sid in ("short", "medium", "long") else ""),
                              "", text_, phon))
    language = meta.get("language") or registered
    if not language:
        raise KoptError(f"{name}: no '# language:' header line and not a registered kopt sentence file")
    if registered and language != registered:
        raise KoptError(f"{name}: its header says language {language!r}, kopt registers it as {registered!r}")
    items = [Sentence(s.id, s.category, language, s.text, s.phonemes) for s in items]
    ids = [s.id for s in items]
    dup = sorted({x for x in ids if ids.count(x) > 1})
    if dup:
        raise KoptError(f"{name}: ids used twice: {', '.join(dup)}")
    return SentenceFile(name, language, meta.get("g2p", ""), int(meta.get("version", "1")), sha, tuple(items),
                        columns, tuple(header))


def _registered() -> dict[str, str]:
    """File name -> the language kopt registers it under (both purposes)."""
    return {f: lang for reg in (CHECKSETS, CALIBRATION) for lang, f in reg.items()}


# -- regenerating the phoneme column ------------------------------------------------------------

def g2p_for(language: str):
    """The runtime's G2P for ``language`` (G2PUnavailable naming the extra when it is missing)."""
    from kokoro_runtime import lang as rlang

    return rlang.make_g2p(rlang.get(language))


def phonemize(language: str, texts: Sequence[str], g2p=None) -> list[str]:
    """Kokoro phonemes of whole texts, as the sentence files store them: Japanese through the
    runtime's normalizer (numbers, dates, NFKC) and G2P; other languages' text straight to espeak."""
    from kokoro_runtime import lang as rlang

    g = g2p or g2p_for(language)
    if rlang.get(language).g2p == "ja":
        from kokoro_runtime import ja

        texts = [ja.normalize(t) for t in texts]
    return [p.strip() for p in g.phonemize(list(texts))]


def g2p_label(language: str, g2p=None) -> str:
    from kokoro_runtime import lang as rlang

    g = g2p or g2p_for(language)
    mod = "kokoro_runtime.ja" if rlang.get(language).g2p == "ja" else "kokoro_runtime.g2p"
    return f"{getattr(g, 'version', type(g).__name__)} via {mod}"


def regenerate(path: str | Path) -> tuple[str, list[str]]:
    """The file's text with its phoneme column (and g2p header line) from the installed G2P, and the
    ids whose phonemes changed."""
    p = Path(path)
    sf = read.__wrapped__(p.name, str(p))  # type: ignore[attr-defined]
    g = g2p_for(sf.language)
    fresh = phonemize(sf.language, [s.text for s in sf.items], g)
    changed = [s.id for s, ph in zip(sf.items, fresh) if ph != s.phonemes]
    label = g2p_label(sf.language, g)
    lines, seen_g2p, k = [], False, 0
    for line in p.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            if line[1:].strip().lower().startswith("g2p:"):
                line, seen_g2p = f"# g2p: {label}", True
            elif "\t" in line and not seen_g2p:
                lines.append(f"# g2p: {label}")
                seen_g2p = True
            lines.append(line)
            continue
        if not line.strip():
            lines.append(line)
            continue
        cells = line.split("\t")
        cells[sf.columns.index("phonemes")] = fresh[k]
        k += 1
        lines.append("\t".join(cells))
    return "\n".join(lines) + "\n", changed


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m kopt.quantize.sentences",
                                 description="Regenerate the phoneme column of kopt sentence files from the "
                                             "runtime's G2P.")
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--check", action="store_true", help="Change nothing; exit 1 if any file is stale.")
    a = ap.parse_args(argv)
    stale = False
    for f in a.files:
        text, changed = regenerate(f)
        if a.check:
            stale |= bool(changed)
            sys.stdout.write(f"{f}: {'stale: ' + ', '.join(changed) if changed else 'up to date'}\n")
        else:
            f.write_text(text, encoding="utf-8")
            sys.stdout.write(f"{f}: {len(changed)} phoneme line(s) changed\n")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
