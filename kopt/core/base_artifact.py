"""Facts about the base artifact (`kopt fetch`'s output) that later stages rely on, written once.

``BASE_VOICES``: the voice pack's file name in the base artifact (validated, one (510, 1, 256)
float32 array per voice); every stage that reads the fetched voices opens ``art.file(BASE_VOICES)``
(kopt.source.fetch.load_base_voices when it wants them loaded). A bundle's own voice file is a
separate fact of the bundle layout (kopt.publish.bundle.VOICES_FILE).

``PROBE_VOICE_ROW``: the row of a voice's style pack the contract check speaks with when it is given
a voice (the check's test sentence is about 40 tokens; the probe style used without a voice,
kopt.core.contract.default_style, is row 40 of jf_alpha too).
"""

from __future__ import annotations

BASE_VOICES = "voices.npz"
PROBE_VOICE_ROW = 40
