"""Soft attention and decoding: weights sum to 1, beam search equals brute force on a tiny
vocabulary, beam 1 equals greedy, batched decoding equals one input at a time."""

import itertools

import pytest
import torch

from lstmvision.models import get_model
from lstmvision.nn.attention import SoftAttention
from lstmvision.nn.beam import beam_search, greedy_search

WORDS = ["<pad>", "<start>", "<end>", "<unk>", "a", "dog", "runs", "on", "grass"]


def test_attention_weights_sum_to_one_and_shapes():
    torch.manual_seed(0)
    att = SoftAttention(feature_size=6, query_size=5, attention_size=4)
    a, h = torch.randn(3, 7, 6), torch.randn(3, 5)
    context, alpha = att(a, att.project(a), h)
    assert context.shape == (3, 6) and alpha.shape == (3, 7)
    assert torch.allclose(alpha.sum(-1), torch.ones(3)) and (alpha >= 0).all()
    assert torch.allclose(context, (alpha[:, :, None] * a).sum(1))  # ẑ = Σ α_i a_i


class TinyLM:
    """A fixed random recurrent scorer: state h, token embedding, log-softmax output."""

    def __init__(self, vocab: int, size: int = 4, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.emb = torch.randn(vocab, size, generator=g)
        self.W = torch.randn(size, size, generator=g)
        self.out = torch.randn(size, vocab, generator=g) * 2
        self.vocab = vocab

    def step(self, tokens, state, context):
        (h,) = state
        h = torch.tanh(self.emb[tokens] + h @ self.W + context[0])  # (N, size)
        return (h @ self.out).log_softmax(-1), (h,), h[:, :1]  # extra: one number per step

    def score(self, sequence, h0, c):
        state, total, tok = (h0[None],), 0.0, 1
        for t in sequence:
            logp, state, _ = self.step(torch.tensor([tok]), state, (c[None],))
            total += float(logp[0, t])
            tok = t
        return total


def brute_force(lm, h0, c, words, end, max_len, alpha, min_len=1):
    best = (float("-inf"), None)
    for n in range(max(min_len - 1, 0), max_len):
        for seq in itertools.product(words, repeat=n):
            s = lm.score(list(seq) + [end], h0, c)
            norm = s / (n + 1) ** alpha
            if norm > best[0]:
                best = (norm, list(seq))
    return best


@pytest.mark.parametrize("alpha", [0.0, 0.7, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_search_equals_brute_force(alpha, seed):
    # tokens: 0 pad (banned), 1 start (banned), 2 end, 3, 4, 5 words; at most 4 tokens
    lm, max_len = TinyLM(6, seed=seed), 4
    h0, c = torch.randn(2, 4, generator=torch.Generator().manual_seed(seed)), torch.randn(2, 4)
    decoded = beam_search(
        lm.step, (h0,), (c,), beam=64, start=1, end=2, max_len=max_len, banned=(0, 1), alpha=alpha
    )
    for i in range(2):
        norm, seq = brute_force(lm, h0[i], c[i], [3, 4, 5], 2, max_len, alpha)
        assert decoded.tokens[i] == seq
        assert decoded.normalized[i] == pytest.approx(norm, abs=1e-5)
        assert decoded.score[i] == pytest.approx(lm.score(seq + [2], h0[i], c[i]), abs=1e-5)
        assert decoded.extras[i].shape == (len(seq), 1)


def test_min_len_and_max_len_are_respected():
    lm = TinyLM(6, seed=3)
    h0, c = torch.randn(4, 4), torch.randn(4, 4)
    for search in (
        lambda **k: greedy_search(lm.step, (h0,), (c,), **k),
        lambda **k: beam_search(lm.step, (h0,), (c,), beam=3, **k),
    ):
        out = search(start=1, end=2, max_len=5, banned=(0, 1), min_len=3)
        assert all(2 <= len(t) <= 4 for t in out.tokens)
        assert all(t not in (0, 1, 2) for seq in out.tokens for t in seq)


@pytest.mark.parametrize("seed", range(4))
def test_beam_one_is_greedy(seed):
    lm = TinyLM(9, seed=seed)
    h0, c = torch.randn(5, 4), torch.randn(5, 4)
    kw = dict(start=1, end=2, max_len=8, banned=(0, 1), alpha=0.5)
    greedy = greedy_search(lm.step, (h0,), (c,), **kw)
    beam = beam_search(lm.step, (h0,), (c,), beam=1, **kw)
    assert beam.tokens == greedy.tokens
    assert beam.score == pytest.approx(greedy.score) and beam.normalized == pytest.approx(
        greedy.normalized
    )
    assert all(torch.equal(b, g) for b, g in zip(beam.extras, greedy.extras))


def test_wider_beam_never_scores_worse_than_greedy():
    lm = TinyLM(9, seed=7)
    h0, c = torch.randn(16, 4), torch.randn(16, 4)
    kw = dict(start=1, end=2, max_len=8, banned=(0, 1))
    greedy = greedy_search(lm.step, (h0,), (c,), **kw).score
    beam = beam_search(lm.step, (h0,), (c,), beam=4, **kw).score
    assert all(b >= g - 1e-6 for b, g in zip(beam, greedy)) and sum(beam) > sum(greedy)


@pytest.mark.parametrize("name", ["show-and-tell", "show-attend-tell"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_captioner_decodes_a_batch_like_one_at_a_time(name, cell):
    torch.manual_seed(0)
    model = get_model(
        name,
        words=WORDS,
        cell=cell,
        encoder_weights=None,
        image_size=32,
        hidden_size=16,
        embed_size=8,
    ).eval()
    features = torch.randn(3, 4, 1280)
    for beam in (1, 3):
        batch = model.caption(features, beam=beam, max_len=6)
        single = [model.caption(features[i : i + 1], beam=beam, max_len=6) for i in range(3)]
        assert batch.tokens == [s.tokens[0] for s in single]
        assert batch.score == pytest.approx([s.score[0] for s in single], abs=1e-4)
        for tokens, extras in zip(batch.tokens, batch.extras):
            assert 1 <= len(tokens) <= 5 and all(t >= 4 for t in tokens)  # a word; no special token
            if name == "show-attend-tell":
                assert extras.shape == (len(tokens), 4) and torch.allclose(
                    extras.sum(-1), torch.ones(len(tokens))
                )


@pytest.mark.parametrize("name", ["show-and-tell", "show-attend-tell"])
def test_teacher_forcing_shares_photos_and_ignores_padding(name):
    torch.manual_seed(0)
    model = get_model(
        name, words=WORDS, encoder_weights=None, image_size=32, hidden_size=16, embed_size=8
    ).eval()
    features = torch.randn(2, 4, 1280)
    captions = torch.tensor([[1, 4, 5, 2, 0, 0], [1, 4, 5, 6, 7, 2], [1, 8, 2, 0, 0, 0]])
    rows = torch.tensor([0, 0, 1])
    logits, alphas = model.teacher_forced(features, captions, rows)
    assert logits.shape == (3, 5, len(WORDS))
    alone, _ = model.teacher_forced(
        features[1:], captions[2:, :3]
    )  # the same caption, no padding around it
    assert torch.allclose(logits[2, :2], alone[0], atol=1e-5)
    if alphas is not None:
        assert alphas.shape == (3, 5, 4)
        assert torch.allclose(
            alphas.sum(-1), (captions[:, 1:] != 0).float()
        )  # 1 per word, 0 after <end>
