"""Duration-aligned scoring needs two instrumented graphs: the reference with a ``durations``
output, and the variant with a ``durations`` input that replaces its predicted ones. A model that
already has them is used as it is; otherwise the registered ``durations`` pass
(``kopt.core.passes.get_pass("durations")``, config ``accept_input``) instruments it into a cache
folder keyed by the model's content, the pass's version and the config."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from kopt.core.errors import KoptError
from kopt.core.hashing import content_key, sha256_file
from kopt.quality.synth import DURATIONS

log = logging.getLogger("kopt.quality")


class AlignmentUnavailable(Exception):
    """Aligned scoring cannot be done for this model; the message says why."""


def graph_io(path: str | Path) -> tuple[set[str], set[str]]:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    init = {i.name for i in m.graph.initializer}
    return {i.name for i in m.graph.input if i.name not in init}, {o.name for o in m.graph.output}


def instrumented(path: str | Path, accept_input: bool, cache_dir: str | Path | None = None) -> Path:
    """A graph with a ``durations`` output (and, with ``accept_input``, a ``durations`` input)."""
    p = Path(path)
    ins, outs = graph_io(p)
    if DURATIONS in outs and (DURATIONS in ins or not accept_input):
        return p
    try:
        from kopt.core.passes import PassContext, get_pass, make_config

        cls = get_pass("durations")
    except KoptError as e:
        raise AlignmentUnavailable(f"{p.name} has no 'durations' output/input and the durations pass is not "
                                   f"available ({e})") from None
    cfg = make_config(cls, {"accept_input": accept_input}, where="quality alignment")
    key = content_key({"model": sha256_file(p), "pass": cls.name, "version": cls.version,
                       "config": cfg.model_dump(mode="json")})
    root = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "kopt-quality-durations"
    out = root / f"{key}.onnx"
    if out.is_file():
        return out
    from kopt.core.model import load_model, save_model

    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as work:
        res = cls(cfg).run(load_model(p), PassContext(workdir=Path(work), input_path=p))
        tmp = Path(work) / "model.onnx"
        if res.model is not None:
            save_model(res.model, tmp)
        elif res.path is not None:
            tmp = Path(res.path)
        else:
            raise AlignmentUnavailable(f"the durations pass returned no model for {p}")
        tmp.replace(out)
    ins, outs = graph_io(out)
    if DURATIONS not in outs or (accept_input and DURATIONS not in ins):
        raise AlignmentUnavailable(f"the durations pass did not add 'durations' to {p.name} "
                                   f"(inputs {sorted(ins)}, outputs {sorted(outs)})")
    log.info("instrumented %s for durations (accept_input=%s) -> %s", p, accept_input, out)
    return out
