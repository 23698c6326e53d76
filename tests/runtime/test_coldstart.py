"""What a one-shot cold start skips on its second run: hashing files a stamp vouches for, and
onnxruntime's optimizing and weight packing (the cached graph with its weights pre-packed)."""

import json
import os
import shutil
import time

import numpy as np
import onnx
import pytest

import kokoro_runtime.bundle as B
from kokoro_runtime import Bundle, BundleError
from kokoro_runtime import session as S
from kopt.publish.bundle import write_bundle
from tests.graphs import tiny_kokoro, tiny_voices
from tests.runtime.helpers import VOCAB, small_cache

TEXT = "The cat sat on the mat."


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "kokoro_runtime"


@pytest.fixture
def hashes(monkeypatch):
    """The bundle files the runtime hashes, in order (the hash function counted, not timed)."""
    seen: list[str] = []
    real = B.sha256_file

    def counting(path):
        root = next(d for d in path.parents if (d / "manifest.json").is_file())
        seen.append(path.relative_to(root).as_posix())
        return real(path)

    monkeypatch.setattr(B, "sha256_file", counting)
    return seen


def _age(root, seconds: float = 60.0) -> None:
    """Every file of the bundle last written ``seconds`` ago (older than the racy window)."""
    t = time.time() - seconds
    for p in root.rglob("*"):
        if p.is_file():
            os.utime(p, (t, t))


@pytest.fixture
def bundle(tmp_path, cache):
    b = write_bundle(tmp_path / "b", tiny_kokoro(tmp_path / "tiny.onnx"), tiny_voices(), VOCAB, small_cache())
    _age(b)
    return b


def _listed(b) -> set[str]:
    return set(json.loads((b / "manifest.json").read_text())["files"])


def test_a_stamp_spares_the_next_check_its_hashing(bundle, cache, hashes):
    first = Bundle(bundle)
    assert set(first.hashed) == set(hashes) == _listed(bundle)
    stamp = json.loads(next((cache / "verified").glob("*.json")).read_text())
    assert stamp["root"] == str(bundle.resolve()) and set(stamp["files"]) == _listed(bundle)
    hashes.clear()
    again = Bundle(bundle)
    assert again.hashed == [] and hashes == []          # nothing changed: nothing hashed
    assert again.synthesizer(g2p=False).synthesize(TEXT, "voice_0").size > 0


def test_a_file_changed_in_place_is_hashed_again_and_refused(bundle, cache, hashes):
    Bundle(bundle)
    p = bundle / "voices.npz"
    st = p.stat()
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF                        # same size, new content
    p.write_bytes(bytes(data))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))   # and a different (older) mtime
    hashes.clear()
    with pytest.raises(BundleError, match="^voices.npz: sha256 does not match manifest.json"):
        Bundle(bundle)
    assert hashes == ["voices.npz"]                     # the others' stamps still stand
    hashes.clear()
    with pytest.raises(BundleError, match="^voices.npz: sha256"):
        Bundle(bundle)                                  # a refused file is never stamped
    assert hashes == ["voices.npz"]


def test_a_touched_file_with_the_same_content_is_hashed_once_then_stamped(bundle, hashes):
    Bundle(bundle)
    p = bundle / "vocab.json"
    t = time.time() - 30
    os.utime(p, (t, t))
    hashes.clear()
    Bundle(bundle)
    assert hashes == ["vocab.json"]
    hashes.clear()
    Bundle(bundle)
    assert hashes == []


def test_a_file_written_just_now_is_not_stamped(bundle, hashes):
    """File times tick coarsely: a write within the tick of the check could keep the stamped mtime."""
    (bundle / "vocab.json").write_bytes((bundle / "vocab.json").read_bytes())   # same bytes, mtime now
    Bundle(bundle)
    hashes.clear()
    Bundle(bundle)
    assert hashes == ["vocab.json"]


def test_rehash_hashes_every_file_whatever_the_stamps_say(bundle, hashes):
    Bundle(bundle)
    hashes.clear()
    assert set(Bundle(bundle, rehash=True).hashed) == _listed(bundle)
    hashes.clear()
    B.load(bundle, rehash=True, g2p=False)
    assert set(hashes) == _listed(bundle)
    hashes.clear()
    assert Bundle(bundle, verify=False).hashed == [] and hashes == []   # --no-verify: nothing at all


def test_the_one_shot_command_rehashes_with_its_flag(bundle, hashes, capsys):
    from kokoro_runtime.__main__ import main

    assert main(["--bundle", str(bundle), "--list-voices"]) == 0
    hashes.clear()
    assert main(["--bundle", str(bundle), "--list-voices"]) == 0
    assert hashes == []
    assert main(["--bundle", str(bundle), "--list-voices", "--rehash"]) == 0
    assert set(hashes) == _listed(bundle)
    assert "voice_0" in capsys.readouterr().out


def test_a_stamp_of_another_path_or_file_is_never_used(bundle, tmp_path, cache, hashes):
    Bundle(bundle)
    twin = tmp_path / "twin"
    shutil.copytree(bundle, twin)                       # copy2: same sizes and mtimes, other inodes
    hashes.clear()
    Bundle(twin)
    assert set(hashes) == _listed(twin)                 # another folder: its own stamps
    # the original's stamp file put where the twin's belongs: its root does not match
    stamps = {p.name: p for p in (cache / "verified").glob("*.json")}
    mine = B.Stamps(bundle).path
    theirs = B.Stamps(twin).path
    assert {mine.name, theirs.name} <= set(stamps)
    shutil.copy(mine, theirs)
    hashes.clear()
    Bundle(twin)
    assert set(hashes) == _listed(twin)
    # a file swapped for another with the same size and mtime (a different inode) is hashed
    p = bundle / "token_cache.json.gz"
    st = p.stat()
    other = tmp_path / "other.gz"
    shutil.copy2(twin / "token_cache.json.gz", other)
    os.replace(other, p)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    hashes.clear()
    Bundle(bundle)
    assert hashes == ["token_cache.json.gz"]


def test_a_stamp_checked_against_another_sha256_is_not_used(bundle, hashes):
    """The manifest names a new sha256 for a file (e.g. a bundle rewritten in place): hash it."""
    Bundle(bundle)
    m = json.loads((bundle / "manifest.json").read_text())
    m["files"]["vocab.json"]["sha256"] = "0" * 64
    (bundle / "manifest.json").write_text(json.dumps(m))
    hashes.clear()
    with pytest.raises(BundleError, match="^vocab.json: sha256"):
        Bundle(bundle)
    assert hashes == ["vocab.json"]


def test_an_unwritable_cache_only_costs_the_hashing(bundle, tmp_path, monkeypatch, hashes):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    Bundle(bundle)
    hashes.clear()
    Bundle(bundle)
    assert set(hashes) == _listed(bundle)


# -- the cached graph, its weights pre-packed ----------------------------------------------------
def _plain(model):
    import onnxruntime as ort

    opts = S.session_options(1, True)
    return ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])


def _feeds(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"tokens": rng.integers(1, 170, (1, 24)).astype(np.int64),
            "style": (rng.standard_normal((1, 256)) * 0.1).astype(np.float32),
            "speed": np.array([1.0], np.float32)}


def test_the_prepacked_cache_gives_the_plain_sessions_audio_bit_for_bit(tmp_path, cache):
    model = tiny_kokoro(tmp_path / "tiny.onnx")
    sha = B.sha256_file(model)
    first = S.make_session(model, threads=1, model_sha256=sha)             # optimizes and keeps the graph
    cached = S._cached_model(sha)
    assert cached.is_file() and cached.name.endswith("-prepacked.onnx")
    data = S._data_files(cached)
    assert len(data) == 1                                                   # the weights, pre-packed
    named = {e.value for t in onnx.load(str(cached), load_external_data=False).graph.initializer
             for e in t.external_data if e.key == "location"}
    assert named == {data[0].name}
    again = S.make_session(model, threads=1, model_sha256=sha)
    assert again.get_session_options().graph_optimization_level.name == "ORT_DISABLE_ALL"   # loaded as kept
    plain = _plain(model)
    for seed in range(3):
        feeds = _feeds(seed)
        want = plain.run(None, feeds)[0]
        assert np.array_equal(first.run(None, feeds)[0], want)
        assert np.array_equal(again.run(None, feeds)[0], want)             # bit-exact, not close
    assert not [p for p in cached.parent.iterdir() if p.name.startswith(".")]   # no temporary left


def test_an_old_layout_entry_is_never_read_and_a_damaged_one_is_rebuilt(tmp_path, cache, caplog):
    model = tiny_kokoro(tmp_path / "tiny.onnx")
    sha = B.sha256_file(model)
    cached = S._cached_model(sha)
    old = cached.with_name(cached.name.replace("-prepacked.onnx", ".onnx"))   # the earlier layout's name
    old.parent.mkdir(parents=True, exist_ok=True)
    old.write_bytes(b"an entry of the earlier layout")
    S.make_session(model, threads=1, model_sha256=sha)
    assert cached.is_file() and old.read_bytes() == b"an entry of the earlier layout"
    (data,) = S._data_files(cached)
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])        # truncated weights
    with caplog.at_level("WARNING", logger="kokoro_runtime"):
        healed = S.make_session(model, threads=1, model_sha256=sha)
    assert "unusable" in caplog.text
    (fresh,) = S._data_files(cached)                                        # rebuilt; the old one is gone
    assert fresh.name != data.name and not data.exists()
    feeds = _feeds()
    assert np.array_equal(healed.run(None, feeds)[0], _plain(model).run(None, feeds)[0])
    assert S.make_session(model, threads=1, model_sha256=sha).get_session_options() \
        .graph_optimization_level.name == "ORT_DISABLE_ALL"


def test_a_session_starts_when_the_cache_cannot_be_written(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    model = tiny_kokoro(tmp_path / "tiny.onnx")
    sess = S.make_session(model, threads=1, model_sha256=B.sha256_file(model))
    feeds = _feeds()
    assert np.array_equal(sess.run(None, feeds)[0], _plain(model).run(None, feeds)[0])


# -- the session created beside the front end ------------------------------------------------------

def test_a_background_session_loads_while_the_front_end_reads_the_text(tmp_path, monkeypatch):
    """The session is made on another thread and is still being made while the voices, the token
    cache and the text front end work on this one (made to wait on an event this test sets only
    after the front end ran); the first use of the session waits for it."""
    import threading

    from kokoro_runtime import Synthesizer
    from kokoro_runtime import synth as Y

    model = tiny_kokoro(tmp_path / "tiny.onnx")
    release, made_on = threading.Event(), []
    real = S.make_session

    def slow_make(*a, **k):
        made_on.append(threading.current_thread().name)
        assert release.wait(30), "the test never released the session"
        return real(*a, **k)

    monkeypatch.setattr(Y._session, "make_session", slow_make)
    tts = Synthesizer(model, tiny_voices(), vocab=VOCAB, token_cache=small_cache(), g2p=False, threads=1,
                      background_session=True)
    chunks = tts.text_to_chunks(TEXT, True)       # runs while the session waits on the event
    assert chunks and "session" not in tts.load_times
    release.set()
    audio = np.concatenate([r.audio for r in tts.render(TEXT, "voice_0", chunks=chunks)])
    assert made_on == ["kokoro-session"]
    assert tts.load_times["session"] >= tts.load_times["session_wait"] >= 0
    plain = Synthesizer(model, tiny_voices(), vocab=VOCAB, token_cache=small_cache(), g2p=False, threads=1)
    np.testing.assert_array_equal(audio, plain.synthesize(TEXT, "voice_0"))
    assert tts.providers == plain.providers and tts.signature == plain.signature


def test_a_background_session_that_fails_raises_at_every_use(tmp_path):
    from kokoro_runtime import Synthesizer

    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not an onnx model")
    tts = Synthesizer(bad, tiny_voices(), vocab=VOCAB, token_cache=small_cache(), g2p=False, threads=1,
                      background_session=True)          # no error yet: the session is being made
    assert tts.text_to_chunks(TEXT, True)
    with pytest.raises(BundleError) as first:
        tts.synthesize(TEXT, "voice_0")
    with pytest.raises(BundleError) as again:
        _ = tts.session
    assert str(first.value) == str(again.value) and "broken.onnx" in str(first.value)
    with pytest.raises(BundleError):                    # the same error as without the thread
        Synthesizer(bad, tiny_voices(), vocab=VOCAB, token_cache=small_cache(), g2p=False, threads=1)


def test_the_one_shot_command_fails_on_a_broken_model_with_no_output(bundle, capsys, tmp_path):
    from kokoro_runtime.__main__ import main

    (bundle / "model.onnx").write_bytes(b"broken")
    out = tmp_path / "out.wav"
    assert main(["--bundle", str(bundle), "--no-verify", TEXT, "-o", str(out)]) == 1
    assert not out.exists()
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
