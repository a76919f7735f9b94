"""Text data: character streams for truncated BPTT, MR folds, vocabularies, GloVe, the adding
problem."""

import pytest
import torch

from lstmvision.data.text import (
    CharVocab,
    StreamWindows,
    WordVocab,
    adding_problem,
    kfold_indices,
    load_glove,
    load_polarity,
    read_text,
    split_text,
    tokenize_words,
)
from lstmvision.errors import DataError


def test_read_text_refuses_empty_binary_and_missing(tmp_path):
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "bin.dat").write_bytes(b"abc\x00\x01\x02")
    (tmp_path / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    for name, words in (
        ("empty.txt", "empty"),
        ("bin.dat", "binary"),
        ("latin.txt", "UTF-8"),
        ("nope.txt", "not found"),
    ):
        with pytest.raises(DataError, match=words) as e:
            read_text(tmp_path / name)
        assert str(e.value).startswith(str(tmp_path / name))


def test_char_vocab_round_trip_and_unknown_character():
    vocab = CharVocab("hello world")
    assert vocab.chars == " dehlorw" and vocab.decode(vocab.encode("hold")) == "hold"
    with pytest.raises(DataError, match="'z'"):
        vocab.encode("zoo", what="--prompt 'zoo'")


def test_split_text_is_first_90_then_last_10():
    train, val = split_text("abcdefghij" * 10, 0.1)
    assert len(train) == 90 and len(val) == 10 and train + val == "abcdefghij" * 10


def test_stream_windows_continue_each_stream():
    ids = torch.arange(101)
    data = StreamWindows(ids, batch_size=2, seq_len=10)
    assert len(data) == 5  # 2 streams of 50 ids, 5 windows of 10
    x0, y0 = data[0]
    x1, _ = data[1]
    assert x0.shape == (2, 10) and torch.equal(y0, x0 + 1)  # y is the next character
    assert x0[0].tolist() == list(range(10)) and x0[1].tolist() == list(
        range(50, 60)
    )  # stream 1 starts mid-text
    assert x1[0, 0] == x0[0, -1] + 1 and x1[1, 0] == x0[1, -1] + 1  # window 1 continues window 0


def test_stream_windows_seq_len_longer_than_text_is_clear():
    with pytest.raises(DataError, match="too few.*seq_len 100"):
        StreamWindows(torch.arange(150), batch_size=4, seq_len=100, what="tiny.txt")


def test_adding_problem_generator():
    data = adding_problem(64, 30, seed=3)
    assert data.x.shape == (64, 30, 2) and data.y.shape == (64,)
    markers = data.x[..., 1]
    assert torch.equal(markers.sum(1), torch.full((64,), 2.0))  # exactly two marked steps
    assert (markers[:, :15].sum(1) == 1).all() and (
        markers[:, 15:].sum(1) == 1
    ).all()  # one per half
    assert torch.allclose(
        (data.x[..., 0] * markers).sum(1), data.y
    )  # target = sum of marked values
    assert torch.equal(adding_problem(64, 30, seed=3).x, data.x)  # reproducible
    assert not torch.equal(adding_problem(64, 30, seed=4).x, data.x)


def test_kfold_partitions_the_data():
    tests = [kfold_indices(103, 10, k)[1] for k in range(10)]
    assert sorted(torch.cat(tests).tolist()) == list(range(103))
    train, test = kfold_indices(103, 10, 3)
    assert not set(train.tolist()) & set(test.tolist()) and len(train) + len(test) == 103
    with pytest.raises(DataError):
        kfold_indices(103, 10, 10)


def test_polarity_and_glove(data_root):
    texts, labels = load_polarity(data_root)
    assert len(texts) == 10662 and int(labels.sum()) == 5331
    words = {w for t in texts for w in t}
    assert {"n't", "'s"} <= words and not {"isn't", "it's"} & words  # clitics split, as in GloVe
    vocab = WordVocab.build(texts[:200])
    assert vocab.words[:2] == ["<pad>", "<unk>"] and vocab.encode(["zzzunseen"]) == [1]
    vectors, found = load_glove(["the", "movie", "qqqxqqq"])
    assert vectors.shape == (3, 50) and found == 2
    assert vectors[2].abs().sum() == 0 and vectors[0].abs().sum() > 0
    cos = torch.cosine_similarity(*load_glove(["good", "great"])[0], dim=0)
    assert cos > 0.7  # real GloVe: related words are close


def test_words_split_as_glove_was_tokenised():
    assert tokenize_words("It's the film's best, isn't it? Can't won't 'em") == [
        "it",
        "'s",
        "the",
        "film",
        "'s",
        "best",
        ",",
        "is",
        "n't",
        "it",
        "?",
        "ca",
        "n't",
        "wo",
        "n't",
        "'",
        "em",
    ]
    assert tokenize_words("the actors' [best] work<br />'s") == [
        "the",
        "actors",
        "'",
        "[",
        "best",
        "]",
        "work",
        "'s",
    ]
