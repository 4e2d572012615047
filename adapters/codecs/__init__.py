"""Audio codecs shared by the adapters and the endpoint's audio path (``bridge.audio``).

The lowest audio layer: 16-bit PCM frames and their network-order form (L16, :mod:`.pcm`) and
Opus through libopus (:mod:`.opus`). It imports nothing from ``bridge``; ``bridge.audio``
builds on it. Codecs of one native system only (G.711, resampling for RTP) live in that
adapter's package.
"""

from adapters.codecs.pcm import FRAME_MS, CodecError, frame_samples

__all__ = ["FRAME_MS", "CodecError", "frame_samples"]
