"""Multi-process encoding gives the same embeddings as encode()."""

from __future__ import annotations

import numpy as np
import pytest
from parity import model_path, texts

from pylate_clone import models


@pytest.mark.slow
def test_encode_multi_process_matches_encode():
    model = models.ColBERT(model_path("models/tiny-colbert"), device="cpu")
    sample = texts()
    expected = model.encode(sample, is_query=False)
    pool = model.start_multi_process_pool(["cpu", "cpu"])
    try:
        got = model.encode_multi_process(sample, pool, is_query=False, chunk_size=5)
        queries = model.encode_multi_process(sample[:3], pool, is_query=True)
    finally:
        model.stop_multi_process_pool(pool)
    assert len(got) == len(sample)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert all(q.shape == (32, 128) for q in queries)


def test_pool_needs_a_device():
    model = models.ColBERT(model_path("models/tiny-colbert"), device="cpu")
    with pytest.raises(ValueError, match="target_devices"):
        model.start_multi_process_pool([])
