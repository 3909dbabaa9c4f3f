"""Seeds of synthetic videos: one master seed -> per-video seeds -> named random streams.

Per-video seeds depend only on (master seed, video index), so a dataset can be
generated in any order, interrupted and resumed, and still give identical files.
"""

from __future__ import annotations

import numpy as np

from facepulse.errors import ConfigError

# Independent random streams of one video (never renumber: it would change every video).
STREAMS = {"physiology": 0, "motion": 1, "lighting": 2, "background": 3, "noise": 4, "scenario": 5, "person": 6}


def check_seed(seed: object, name: str = "seed") -> int:
    """``seed`` as an int, or ConfigError if it is not a non-negative integer."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"{name}={seed!r}: must be a non-negative integer")
    return int(seed)


def video_seed(master_seed: int, index: int) -> int:
    """Seed of video ``index`` of a dataset generated with ``master_seed`` (63-bit int)."""
    seq = np.random.SeedSequence(entropy=check_seed(master_seed), spawn_key=(check_seed(index, "index"),))
    return int(seq.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def stream_rng(seed: int, stream: str) -> np.random.Generator:
    """The random generator of one named stream (see ``STREAMS``) of the video ``seed``."""
    seq = np.random.SeedSequence(entropy=check_seed(seed), spawn_key=(STREAMS[stream],))
    return np.random.default_rng(seq)
