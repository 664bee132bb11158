"""Residual codec: training, packing, round-trip error, fused decode + MaxSim, torch path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pylate_clone.indexes.engine import codec as C
from pylate_clone.indexes.engine import ivf as _ivf
from pylate_clone.indexes.engine.codec_torch import compress_torch, decompress_torch
from pylate_clone.indexes.engine.compressed import (
    ScoringBook,
    maxsim_codes,
    maxsim_codes_torch,
)
from pylate_clone.scores.kernels.maxsim import maxsim_flat

DIM = 64


def clustered(rng, count, dim, topics=40):
    """Unit vectors around a few topics with unequal spread per dimension.

    Like contextual token embeddings: tokens cluster, and some dimensions vary
    far more than others (the case per-dimension buckets are for).
    """
    centres = rng.standard_normal((topics, dim))
    scale = np.exp(rng.uniform(-1.5, 0.5, size=dim))  # per-dimension spread
    x = centres[rng.integers(0, topics, count)] + 0.6 * scale * rng.standard_normal(
        (count, dim)
    )
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def collection():
    rng = np.random.default_rng(7)
    lengths = rng.integers(1, 90, size=240)
    lengths[[0, 100, 239]] = 0  # empty documents, first and last included
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    tokens = clustered(rng, int(offsets[-1]), DIM)
    centroids = _ivf.train_centroids(tokens, 128, seed=1)
    codes = _ivf.assign(tokens, centroids).astype(C.code_dtype(128))
    return tokens, offsets, centroids, codes


def trained(collection, nbits, normalize=False):
    tokens, _, centroids, codes = collection
    return C.train_codec(tokens, centroids, codes, nbits, normalize=normalize)


def round_trip(collection, codec):
    tokens, _, centroids, codes = collection
    packed, gains = C.compress(tokens, centroids, codes, codec)
    return packed, gains, C.decompress(codes, packed, gains, centroids, codec)


# -- arguments -------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, 3, 8, -4, 4.0, "4", True, None])
def test_bad_nbits_is_a_value_error_naming_it(bad):
    with pytest.raises(ValueError, match=r"nbits must be one of 1, 2 or 4"):
        C.check_nbits(bad)
    with pytest.raises(ValueError, match=r"nbits"):
        C.train_codec(np.ones((10, 4), np.float32), np.ones((1, 4)), np.zeros(10), bad)


def test_code_dtype_and_widths():
    assert C.code_dtype(1) == np.uint16 and C.code_dtype(65_536) == np.uint16
    assert C.code_dtype(65_537) == np.int32
    assert [C.packed_width(128, b) for b in (1, 2, 4)] == [16, 32, 64]
    assert [C.packed_width(13, b) for b in (1, 2, 4)] == [2, 4, 7]


def test_bad_arrays_are_named(collection):
    tokens, offsets, centroids, codes = collection
    codec = trained(collection, 2)
    bad_codes = codes.astype(np.int64)
    bad_codes[5] = 128
    with pytest.raises(ValueError, match=r"codes\[5\] = 128 is not a centroid number"):
        C.compress(tokens, centroids, bad_codes, codec)
    with pytest.raises(ValueError, match=r"codes must be"):
        C.compress(tokens, centroids, codes[:-1], codec)
    with pytest.raises(ValueError, match=r"centroids must be \(K, 64\)"):
        C.compress(tokens, centroids[:, :10], codes, codec)
    with pytest.raises(ValueError, match=r"the codec is for dimension 64"):
        C.compress(tokens[:, :32], centroids[:, :32], codes, codec)
    with pytest.raises(ValueError, match=r"packed must be \(T, 16\)"):
        C.unpack(np.zeros((3, 15), np.uint8), 2, DIM)
    with pytest.raises(ValueError, match=r"\(D, 31\)"):
        C.Codec.from_array(np.zeros((DIM, 30), np.float32), 4)
    with pytest.raises(ValueError, match=r"cutoffs \(D, 3\) and weights \(D, 4\)"):
        C.Codec(2, np.zeros((DIM, 4), np.float32), np.zeros((DIM, 4), np.float32))
    one = np.zeros((1, 4), np.float32)
    with pytest.raises(ValueError, match=r"tokens contains NaN"):
        C.train_codec(np.full((5, 4), np.nan, np.float32), one, np.zeros(5), 2)
    with pytest.raises(ValueError, match=r"tokens must be a non-empty"):
        C.train_codec(np.zeros((0, 4), np.float32), one, np.zeros(0), 2)
    with pytest.raises(ValueError, match=r"values contains NaN"):
        C.fit_buckets(np.full((5, 4), np.inf, np.float32), 2)
    book = ScoringBook.build(centroids, codec)
    packed, gains = C.compress(tokens, centroids, codes, codec)
    with pytest.raises(ValueError, match=r"gains must be \(\d+,\)"):
        C.decompress(codes, packed, gains[:-1], centroids, codec)
    query = [tokens[:8]]
    store = (codes, packed, gains, offsets)
    with pytest.raises(ValueError, match=r"rows\[0\] names 240, not a document"):
        maxsim_codes(query, book, *store, [np.array([1, 240])])
    with pytest.raises(ValueError, match=r"queries\[0\] must be a non-empty"):
        maxsim_codes([tokens[:8, :10]], book, *store, [np.array([1])])
    with pytest.raises(ValueError, match=r"one array per query \(1\), got 2"):
        maxsim_codes(query, book, *store, [np.array([1])] * 2)


# -- packing ---------------------------------------------------------------------------


@pytest.mark.parametrize("nbits", [1, 2, 4])
@pytest.mark.parametrize("dim", [64, 13])
def test_pack_unpack_is_exact(nbits, dim):
    rng = np.random.default_rng(nbits * dim)
    buckets = rng.integers(0, 1 << nbits, size=(50, dim)).astype(np.uint8)
    packed = C.pack(buckets, nbits)
    assert packed.dtype == np.uint8 and packed.shape == (50, C.packed_width(dim, nbits))
    np.testing.assert_array_equal(C.unpack(packed, nbits, dim), buckets)


def test_bit_layout():
    # dimension p * per + j sits in bits j * nbits of byte p
    assert C.pack(np.array([[1, 2]], np.uint8), 4).tolist() == [[0x21]]
    assert C.pack(np.array([[3, 0, 1, 2]], np.uint8), 2).tolist() == [[0b10010011]]
    bits = np.array([[1, 0, 0, 0, 0, 0, 0, 1, 1]], np.uint8)
    assert C.pack(bits, 1).tolist() == [[0x81, 0x01]]


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_byte_table_matches_the_weights(collection, nbits):
    codec = trained(collection, nbits)
    table = C.byte_table(codec)
    per = 8 // nbits
    values = np.arange(256, dtype=np.uint8)[:, None]
    for p in (0, codec.width - 1):
        buckets = C.unpack(values, nbits, per)  # (256, per)
        expected = codec.weights[p * per + np.arange(per), buckets]
        np.testing.assert_array_equal(table[p], expected)


# -- training and round trip --------------------------------------------------------------


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_codec_is_ordered_and_serialises(collection, nbits):
    codec = trained(collection, nbits)
    assert codec.cutoffs.shape == (DIM, (1 << nbits) - 1)
    assert codec.weights.shape == (DIM, 1 << nbits)
    assert (np.diff(codec.weights, axis=1) > 0).all()
    # every cutoff lies between the weights of the buckets it separates
    assert (codec.cutoffs > codec.weights[:, :-1]).all()
    assert (codec.cutoffs < codec.weights[:, 1:]).all()
    again = C.Codec.from_array(codec.to_array(), nbits, True)
    np.testing.assert_array_equal(again.cutoffs, codec.cutoffs)
    np.testing.assert_array_equal(again.weights, codec.weights)
    assert again.normalize is True


# Lloyd-Max quantiser of a Gaussian: relative RMS error 0.603 / 0.343 / 0.097 at
# 1 / 2 / 4 bits; the learned per-dimension buckets must come close to it.
@pytest.mark.parametrize("nbits, bound", [(1, 0.62), (2, 0.36), (4, 0.11)])
def test_gaussian_error_is_near_lloyd_max(nbits, bound):
    rng = np.random.default_rng(3)
    scale = np.exp(rng.uniform(-2, 1, size=32)).astype(np.float32)
    values = rng.standard_normal((60_000, 32)).astype(np.float32) * scale
    cutoffs, weights = C.fit_buckets(values[:30_000], nbits)
    held_out = values[30_000:]
    buckets = C.bucketize(held_out, C.Codec(nbits, cutoffs, weights))
    decoded = weights[np.arange(32), buckets]
    relative = np.sqrt(((decoded - held_out) ** 2).mean(axis=0)) / scale
    assert relative.max() < bound
    assert relative.mean() > 0.9 * bound - 0.02  # not suspiciously exact either


# Measured on this fixture: mean cosine ~0.87 / 0.96 / 0.997.
@pytest.mark.parametrize("nbits, cosine", [(1, 0.82), (2, 0.94), (4, 0.99)])
def test_round_trip_on_clustered_tokens(collection, nbits, cosine):
    tokens, _, centroids, codes = collection
    codec = trained(collection, nbits)
    packed, gains, decoded = round_trip(collection, codec)
    assert packed.shape == (len(tokens), DIM * nbits // 8) and packed.dtype == np.uint8
    assert gains.dtype == np.float16
    # the gain is the residual's norm
    residual = np.linalg.norm(tokens - centroids[codes], axis=1)
    np.testing.assert_allclose(gains.astype(np.float32), residual, rtol=1e-3, atol=1e-6)
    cos = (decoded * tokens).sum(1) / np.linalg.norm(decoded, axis=1)
    assert cos.mean() > cosine
    assert cos.mean() > (centroids[codes] * tokens).sum(1).mean() + 0.01
    # float16 storage gives (almost) the same bytes
    half, _ = C.compress(tokens.astype(np.float16), centroids, codes, codec)
    assert (half == packed).mean() > 0.97


def test_normalized_codec_gives_unit_vectors_closer_to_the_tokens(collection):
    tokens = collection[0]
    for nbits in (1, 2, 4):
        _, _, raw = round_trip(collection, trained(collection, nbits))
        _, _, unit = round_trip(collection, trained(collection, nbits, True))
        np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
        assert ((unit - tokens) ** 2).sum(1).mean() < ((raw - tokens) ** 2).sum(
            1
        ).mean()


def test_more_bits_means_less_error(collection):
    tokens = collection[0]
    errors = []
    for nbits in (1, 2, 4):
        _, _, decoded = round_trip(collection, trained(collection, nbits))
        errors.append(float(((decoded - tokens) ** 2).sum(1).mean()))
    assert errors[0] > 2 * errors[1] > 4 * errors[2]


# -- fused kernel ---------------------------------------------------------------------


def _queries(rng, tokens, lengths):
    return [
        tokens[rng.integers(0, len(tokens), n)]
        + 0.2 * rng.standard_normal((n, tokens.shape[1])).astype(np.float32)
        for n in lengths
    ]


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_fused_kernel_equals_decode_then_maxsim(collection, nbits, normalize):
    tokens, offsets, centroids, codes = collection
    codec = trained(collection, nbits, normalize)
    packed, gains, decoded = round_trip(collection, codec)
    rng = np.random.default_rng(nbits)
    queries = _queries(rng, tokens, [32, 1, 47, 16])  # wide, narrow and mixed tiles
    rows = [
        rng.permutation(240),
        np.array([0, 0, 239, 5, 5], np.int64),  # empty docs and repeats
        rng.integers(0, 240, 60),
        np.zeros(0, np.int64),
    ]
    book = ScoringBook.build(centroids, codec)
    store = (codes, packed, gains, offsets)
    got = maxsim_codes(queries, book, *store, rows, num_threads=2)
    for query, r, scores in zip(queries, rows, got):
        expected = maxsim_flat([query], decoded, offsets, r)[0]
        assert scores.shape == (len(r),) and scores.dtype == np.float32
        np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-4)
    assert got[1][0] == 0.0 and got[1][2] == 0.0  # empty documents score 0
    # one thread and many give the same numbers (each pair's arithmetic is its own)
    single = maxsim_codes(queries, book, *store, rows, num_threads=1)
    for a, b in zip(got, single):
        np.testing.assert_array_equal(a, b)


def test_fused_kernel_with_padded_dimension():
    rng = np.random.default_rng(11)
    dim = 52  # not a multiple of 8 dimensions per byte at 1 bit, nor of 16 lanes
    lengths = rng.integers(0, 40, size=50)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    tokens = clustered(rng, int(offsets[-1]), dim)
    centroids = _ivf.train_centroids(tokens, 16, seed=2)
    codes = _ivf.assign(tokens, centroids)
    for nbits in (1, 4):
        codec = C.train_codec(tokens, centroids, codes, nbits, normalize=nbits == 4)
        packed, gains = C.compress(tokens, centroids, codes, codec)
        decoded = C.decompress(codes, packed, gains, centroids, codec)
        queries = _queries(rng, tokens, [20, 33])
        rows = [np.arange(50), np.arange(49, -1, -1)]
        book = ScoringBook.build(centroids, codec)
        got = maxsim_codes(queries, book, codes, packed, gains, offsets, rows)
        for query, r, scores in zip(queries, rows, got):
            expected = maxsim_flat([query], decoded, offsets, r)[0]
            np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-4)


# -- torch path -------------------------------------------------------------------------


@pytest.mark.parametrize("nbits, normalize", [(1, False), (2, True), (4, False)])
def test_torch_path_equals_numpy_path(collection, nbits, normalize):
    tokens, offsets, centroids, codes = collection
    codec = trained(collection, nbits, normalize)
    tokens_t, centroids_t = torch.from_numpy(tokens), torch.from_numpy(centroids)
    codes_t = torch.from_numpy(codes.astype(np.int64))
    # training from tensors gives the codec of the numpy arrays
    again = C.train_codec(tokens_t, centroids_t, codes_t, nbits, normalize)
    np.testing.assert_array_equal(again.weights, codec.weights)
    packed, gains, decoded = round_trip(collection, codec)
    packed_t, gains_t = compress_torch(tokens_t, centroids_t, codes_t, codec)
    assert packed_t.dtype == torch.uint8 and gains_t.dtype == torch.float16
    np.testing.assert_array_equal(packed_t.numpy(), packed)
    np.testing.assert_array_equal(gains_t.numpy(), gains)
    decoded_t = decompress_torch(codes_t, packed_t, gains_t, centroids_t, codec)
    np.testing.assert_allclose(decoded_t.numpy(), decoded, atol=1e-6)
    rng = np.random.default_rng(5)
    queries = _queries(rng, tokens, [32, 9])
    rows = [rng.integers(0, 240, 80), np.array([0, 239, 3], np.int64)]
    book = ScoringBook.build(centroids, codec)
    cpu = maxsim_codes(queries, book, codes, packed, gains, offsets, rows)
    dev = maxsim_codes_torch(
        queries, codec, centroids_t, codes_t, packed_t, gains_t, offsets, rows
    )
    for a, b in zip(cpu, dev):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
