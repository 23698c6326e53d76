"""`python -m kokoro_runtime wyoming` on the real Kokoro model (slow): info names the Japanese voices,
synthesize sends what the library renders, streaming synthesis speaks sentence by sentence."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytest.importorskip("wyoming", reason="the wyoming package (kopt's test extra) is not installed")

from wyoming.client import AsyncTcpClient  # noqa: E402
from wyoming.info import Describe, Info  # noqa: E402
from wyoming.tts import SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice  # noqa: E402

from kopt.publish.loadtest import running_wyoming  # noqa: E402
from kopt.publish.publish import publish  # noqa: E402
from kopt.publish.settings import PublishSettings  # noqa: E402
from tests.runtime.helpers import REPO  # noqa: E402
from tests.runtime.test_wyoming import audio_of, kinds, same, synthesize, until  # noqa: E402

pytestmark = pytest.mark.slow

FIRST, SECOND = "今朝の電車はまた遅れました。", "それでマリアは会社まで歩きました。"


@pytest.fixture(scope="module")
def bundle(real_store, tmp_path_factory):
    store, base, _ = real_store
    return publish(store, base.key, tmp_path_factory.mktemp("wyoming-real") / "bundle",
                   PublishSettings(cache_words=2000, tarball=False, default_voice="jf_alpha")).bundle


@pytest.fixture(scope="module")
def library(bundle):
    from kokoro_runtime import G2PUnavailable, load, to_pcm16

    tts = load(bundle, threads=2)
    try:
        return {t: np.frombuffer(to_pcm16(tts.synthesize(t, "jf_alpha")), "<i2") for t in (FIRST, SECOND)}
    except G2PUnavailable as e:
        pytest.skip(f"no Japanese G2P here (the runtime's ja extra): {e}")


def test_wyoming_on_the_real_model(bundle, library):
    with running_wyoming(bundle, "--threads", "2", cwd=REPO, timeout=180) as (port, _):
        async def go():
            async with AsyncTcpClient("127.0.0.1", port) as c:
                await c.write_event(Describe().event())
                info = Info.from_event((await until(c, "info"))[-1])
                await c.write_event(SynthesizeStart(voice=SynthesizeVoice("jf_alpha")).event())
                for piece in (FIRST[:5], FIRST[5:] + SECOND[:4], SECOND[4:]):
                    await c.write_event(SynthesizeChunk(piece).event())
                await c.write_event(SynthesizeStop().event())
                return info, await until(c, "synthesize-stopped")

        info, stream = asyncio.run(go())
        whole = asyncio.run(synthesize(port, FIRST, "jf_alpha"))
    voices = {v.name: v.languages for v in info.tts[0].voices}
    assert voices["jf_alpha"] == ["ja"] and voices["jm_kumo"] == ["ja"]
    assert kinds(whole) == ["audio-start", "audio-chunk", "audio-stop"]
    assert same(audio_of(whole), library[FIRST])
    # 。 ends the first sentence (no space follows it in Japanese): spoken before the second arrives whole
    assert kinds(stream) == ["audio-start", "audio-chunk", "audio-stop"] * 2 + ["synthesize-stopped"]
    assert same(audio_of(stream), np.concatenate([library[FIRST], library[SECOND]]))
