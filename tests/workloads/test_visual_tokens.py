"""workloads.visual_tokens: the codebook, its vocabulary ids and the least-squares map."""

import numpy as np
import pytest

from workloads.visual_tokens import VisualTokens, kmeans, word_ids


def test_kmeans_finds_separated_centres_and_is_seeded():
    rng = np.random.default_rng(0)
    true = rng.standard_normal((4, 6)) * 10
    x = np.repeat(true, 50, axis=0) + rng.standard_normal((200, 6)) * 0.1
    c = kmeans(x, 4, seed=1)
    assert np.abs(np.sort(c[:, 0]) - np.sort(true[:, 0])).max() < 0.1
    np.testing.assert_array_equal(c, kmeans(x, 4, seed=1))
    with pytest.raises(
        ValueError, match=r"^k must be in 1\.\.200 \(the training patches\), not 0$"
    ):
        kmeans(x, 0, seed=0)


def test_word_ids_are_distinct_plain_words():
    vocab = ["\u0120the", "\u0120a", "x", "\u0120Dog", "\u0120house", "\u0120tree", "\u0120sky"]
    ids = word_ids(vocab, 3, seed=0)
    assert len(set(ids.tolist())) == 3 and set(ids.tolist()) <= {0, 4, 5, 6}
    np.testing.assert_array_equal(ids, word_ids(vocab, 3, seed=0))
    with pytest.raises(ValueError, match=r"^the vocabulary has 4 plain words, fewer than 5$"):
        word_ids(vocab, 5, seed=0)


def test_fit_maps_patches_to_codes_and_embeddings():
    vocab = [f"\u0120w{chr(97 + i % 26)}{chr(97 + i // 26)}x" for i in range(300)]
    table = np.random.default_rng(2).standard_normal((300, 12)).astype(np.float32)
    vis = VisualTokens.fit(
        tokens_per_frame=10, codebook_size=16, vocab=vocab, embed=lambda ids: table[ids], seed=0
    )
    assert vis.centres.shape == (16, 192) and vis.ids.shape == (16,)
    ids = vis.token_ids(vis.centres)
    np.testing.assert_array_equal(ids, vis.ids)  # a centre maps to its own code
    emb = vis.embeddings(vis.centres)
    assert emb.shape == (16, 12) and emb.dtype == np.float32
    # The least-squares map lands centres nearer their own word's embedding than a random one.
    own = np.linalg.norm(emb - table[vis.ids], axis=1).mean()
    other = np.linalg.norm(emb - table[np.roll(vis.ids, 1)], axis=1).mean()
    assert own < other
