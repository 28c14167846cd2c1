"""The sentence encoder policies read guidance through: unit-norm MiniLM vectors, cached per string, with a bounded cache."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from s2kit.core.types import Guidance
from s2kit.learning.text import DIM, GuidanceEncoder, SentenceEncoder


@pytest.fixture(scope="module")
def encoder() -> Iterator[SentenceEncoder]:
    """One encoder with a cache of 4 strings, whose model counts the strings it is given."""
    enc = SentenceEncoder(max_cache=4)
    model = enc._model
    calls: list[list[str]] = []

    class Counting:
        def encode(self, texts: list[str], **kw: Any) -> np.ndarray:
            calls.append(list(texts))
            return model.encode(texts, **kw)

    enc._model = Counting()  # type: ignore[assignment]
    enc.calls = calls  # type: ignore[attr-defined]
    yield enc


def test_embeddings_are_unit_norm_float32_and_place_paraphrases_close(encoder: SentenceEncoder) -> None:
    v = encoder.encode(["pick up the red cube", "grasp the red block", "open the fridge door"])
    assert v.shape == (3, DIM) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2  # what a policy reads is the meaning, not the words
    assert encoder.encode([]).shape == (0, DIM)


def test_a_string_is_encoded_once_and_repeated_strings_come_back_identical(encoder: SentenceEncoder) -> None:
    encoder._cache.clear()
    encoder.calls.clear()  # type: ignore[attr-defined]
    first = encoder.encode(["place it in the bowl", "place it in the bowl", "stack the cups"])
    again = encoder.encode(["stack the cups", "place it in the bowl"])
    assert encoder.calls == [["place it in the bowl", "stack the cups"]]  # type: ignore[attr-defined]
    np.testing.assert_array_equal(first[0], first[1])
    np.testing.assert_array_equal(again, first[[2, 0]])


def test_a_full_cache_is_emptied_and_every_string_asked_for_still_comes_back(encoder: SentenceEncoder) -> None:
    encoder._cache.clear()
    texts = ["a", "b", "c"]
    before = encoder.encode(texts)
    # two new strings do not fit beside three cached ones: the cache is emptied, yet "a" (cached until then) is returned
    out = encoder.encode(["a", "d", "e"])
    assert len(encoder._cache) <= 4
    np.testing.assert_allclose(out[0], before[0], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_guidance_becomes_goal_trajectory_and_current_subtask(encoder: SentenceEncoder) -> None:
    g = Guidance(goal="tidy the table", trajectory="cups first", subtasks=["pick the cup", "place the cup"], current=1)
    text = GuidanceEncoder(encoder)(g)
    np.testing.assert_allclose(text, encoder.encode(["tidy the table", "cups first", "place the cup"]), atol=1e-6)
    done = GuidanceEncoder(encoder)(g.model_copy(update={"current": 2}))  # past the last subtask: an empty one
    np.testing.assert_allclose(done[2], encoder.encode([""])[0], atol=1e-6)
