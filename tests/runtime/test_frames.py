"""kokoro_runtime.frames: windows over a tiny frame-stream cut (tests/stream_graphs.py, cut by kopt).

The tiny back is frame-local once fed the sentence's statistics and the carried phase, so the
stitched windows equal the whole-sentence back up to float rounding: the CumSum summed per window
plus an offset, on phases up to about 200 radians (float32 spacing ~1.5e-5 there), through the
sines and the generator norm's 1/std: atol 2e-4 on audio in [-1, 1] (a dropped carry is off by
> 1e-2). Sessions run at ORT_DISABLE_ALL on CPU.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from kokoro_runtime.errors import InvalidInput
from kokoro_runtime.frames import Crossfade, FrameStream, Schedule
from kopt.optimize import frame_stream as fs
from tests import stream_graphs as sg

ATOL = 2e-4


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("fs")
    model = sg.stream_kokoro_model()
    fs.save(fs.build(model, fs.FrameStreamConfig(overlap=3)), d)
    (d / "whole.onnx").write_bytes(model.SerializeToString())
    return d


def _sess(path):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _stream(folder, schedule=None) -> FrameStream:
    return FrameStream(*(_sess(folder / n) for n in ("front.onnx", "stats.onnx", "back.onnx")), schedule=schedule,
                       samples_per_frame=sg.SPF)


@pytest.mark.parametrize("frames,sizes", [(45, (8, 12, 16)), (7, (8, 12)), (9, (8,)), (40, (6,))])
def test_stitched_windows_equal_the_whole(folder, frames, sizes):
    import onnx

    st = _stream(folder, Schedule(sizes, overlap=3))
    feeds = sg.feeds(frames)
    stats = fs.calibrate(onnx.load(str(folder / "whole.onnx")), [st.features(feeds)])
    whole = st.whole(feeds, stats)
    original = _sess(folder / "whole.onnx").run(["audio"], feeds)[0]
    np.testing.assert_allclose(whole, original, rtol=0, atol=ATOL)   # the sentence's statistics: the model's audio
    chunks = list(st.stream(feeds, stats))
    assert len(chunks) == len(st.schedule.windows(frames))
    audio = np.concatenate(chunks)
    assert audio.shape == whole.shape == (frames * sg.SPF,)
    np.testing.assert_allclose(audio, whole, rtol=0, atol=ATOL)


def test_without_the_carried_phase_the_windows_click(folder):
    import onnx

    st = _stream(folder, Schedule((8, 12, 16), overlap=3))
    feeds = sg.feeds(45)
    stats = fs.calibrate(onnx.load(str(folder / "whole.onnx")), [st.features(feeds)])
    whole = st.whole(feeds, stats)
    feats = st.features(feeds)
    fed = st.sentence_stats(feats, stats)
    zero = np.zeros((1, 1, sg.H), np.float32)
    s, e = st.schedule.windows(45)[2]
    audio, _ = st.window(feats, fed, s, e, zero, 1)
    assert np.max(np.abs(audio - whole[s * sg.SPF:e * sg.SPF])) > 1e-2


def test_the_back_needs_the_generators_statistics(folder):
    st = _stream(folder)
    with pytest.raises(InvalidInput, match="norm_stats: the back takes 2 statistics"):
        st.whole(sg.feeds(10))


def test_the_schedule_reads_the_overlap_from_the_back(folder):
    assert _stream(folder).schedule == Schedule(overlap=3)


@pytest.mark.parametrize("frames", [1, 39, 40, 41, 100, 427, 1000])
@pytest.mark.parametrize("sched", [Schedule(), Schedule((40,), 16), Schedule((10, 20), 5), Schedule((3,), 0)])
def test_the_schedule_covers_every_frame_exactly_once(frames, sched):
    wins = sched.windows(frames)
    assert wins[0][0] == 0 and wins[-1][1] == frames
    for k, (s, e) in enumerate(wins):
        assert e - s <= sched.sizes[min(k, len(sched.sizes) - 1)]
        if k + 1 < len(wins):
            assert wins[k + 1][0] == e - sched.overlap
    # what a stream emits per window, as frame indices: every frame once, in order
    spf = 2
    fade = Crossfade(sched.overlap * spf)
    out = []
    for k, (s, e) in enumerate(wins):
        out.append(fade.push(np.repeat(np.arange(s, e, dtype=np.float32), spf), k + 1 == len(wins)))
    emitted = np.concatenate(out)
    assert emitted.shape == (frames * spf,)
    # equal values crossfaded stay themselves, up to float32 rounding of frame numbers below 1000
    np.testing.assert_allclose(emitted, np.repeat(np.arange(frames, dtype=np.float32), spf), rtol=0, atol=1e-3)


def test_default_schedule_grows_40_80_160():
    assert Schedule().windows(427) == [(0, 40), (24, 104), (88, 248), (232, 392), (376, 427)]


@pytest.mark.parametrize("sizes,overlap", [((20,), 16), ((), 4), ((40, 0), 0), ((40,), -1)])
def test_bad_schedules_are_refused(sizes, overlap):
    with pytest.raises(InvalidInput):
        Schedule(sizes, overlap)


def test_crossfade_ramps_sum_to_one():
    fade = Crossfade(4)
    a = fade.push(np.ones(10, np.float32), False)
    b = fade.push(np.ones(8, np.float32), True)
    assert len(a) == 6 and len(b) == 8
    np.testing.assert_allclose(np.concatenate([a, b]), 1.0, rtol=0, atol=1e-7)
    assert 0 < fade.fade_in[0] < fade.fade_in[-1] < 1
