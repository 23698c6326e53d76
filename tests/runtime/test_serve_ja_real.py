"""Japanese through `serve` on the real Kokoro model (slow): the official openai client streams a WAV
for a jf_alpha request that decodes to the library's audio, of a length Japanese speech of that
text plausibly takes; English sent to the same voice is a 400 naming lang."""

from __future__ import annotations

import io
import struct

import httpx
import numpy as np
import pytest
import soundfile as sf

from kopt.publish.publish import publish
from kopt.publish.settings import PublishSettings
from tests.runtime.serving import serve

pytestmark = pytest.mark.slow

JA = "今日は良い天気ですね。明日も晴れるでしょう。駅まで歩いて十分です。"
MORAE = 36          # kyo-u-wa-yo-i-te-n-ki-de-su-ne / a-shi-ta-mo-ha-re-ru-de-sho-u / e-ki-ma-de-a-ru-i-te-ju-p-pu-n-de-su


@pytest.fixture(scope="module")
def bundle(real_store, tmp_path_factory):
    store, base, _ = real_store
    res = publish(store, base.key, tmp_path_factory.mktemp("served_ja") / "bundle",
                  PublishSettings(cache_words=2000, tarball=False, default_voice="jf_alpha"))
    return res.bundle


def test_openai_client_streams_japanese_wav(bundle):
    import openai

    from kokoro_runtime import load, to_pcm16

    want = np.frombuffer(to_pcm16(load(bundle, threads=2).synthesize(JA, "jf_alpha")), "<i2")
    with serve(bundle, "--threads", "2", "--instances", "1", timeout=180) as s:
        client = openai.OpenAI(base_url=s.url + "/v1", api_key="unused")
        with client.audio.speech.with_streaming_response.create(model="tts-1", voice="jf_alpha", input=JA,
                                                                response_format="wav") as r:
            assert r.headers["content-language"] == "ja"
            pieces = list(r.iter_bytes())
        body = b"".join(pieces)
        assert len(pieces) >= 2 and body[:4] == b"RIFF"
        # a streamed WAV says 'size unknown'; decoders take it once the real size is written in
        fixed = body[:40] + struct.pack("<I", len(body) - 44) + body[44:]
        audio, rate = sf.read(io.BytesIO(fixed), dtype="int16")
        assert rate == 24000 and audio.shape == want.shape and np.abs(audio.astype(int) - want).max() <= 1
        seconds = len(audio) / rate
        assert MORAE / 14 < seconds < MORAE / 4, seconds        # 4-14 morae a second: Japanese speech
        assert np.abs(audio).max() > 1000                       # not silence
        en = httpx.post(s.url + "/v1/audio/speech", json={"input": "The train was late.", "voice": "jf_alpha"},
                        timeout=60)
        assert en.status_code == 400 and en.json()["error"]["param"] == "lang"
