"""text-classify: packed = padded, GloVe in the embedding, a few steps on real MR, crossval."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lstmvision.data.text import load_glove
from lstmvision.errors import ConfigError
from lstmvision.models import get_model
from lstmvision.studies.crossval import crossval, format_markdown
from lstmvision.tasks import runner
from lstmvision.tasks.text_classify import SentenceClassifierModule, TextClassifyConfig

SMALL = {"hidden_size": 16, "batch_size": 32, "epochs": 2, "ensemble": 1}


@pytest.mark.parametrize("pooling,cell", [("last", "lstm"), ("max", "lstm"), ("last", "gru")])
def test_padding_never_changes_the_output(pooling, cell):
    torch.manual_seed(0)
    model = get_model(
        "text-bilstm", vocab_size=20, hidden_size=5, embed_size=4, pooling=pooling, cell=cell
    ).eval()
    a, b = torch.tensor([3, 4, 5]), torch.tensor([6, 7, 8, 9, 10, 11])
    padded = torch.nn.utils.rnn.pad_sequence([a, b], batch_first=True)  # (2, 6), zeros after a
    batch = model(padded, torch.tensor([3, 6]))
    alone = torch.cat([model(a[None]), model(b[None])])
    more_padding = model(
        torch.cat([padded, torch.zeros(2, 4, dtype=torch.long)], 1), torch.tensor([3, 6])
    )
    assert torch.allclose(batch, alone, atol=1e-6) and torch.allclose(
        batch, more_padding, atol=1e-6
    )


def test_few_steps_on_real_mr_with_glove(data_root, tmp_path):
    cfg = {**SMALL, "limit_train": 1600, "data_root": str(data_root), "lr": 5e-3}
    m = runner.train("text-classify", cfg, out=tmp_path / "glove", quiet=True).metrics
    assert m["test_accuracy"] > 0.55  # chance is 0.5; GloVe helps from the first steps
    task, _, model = runner.load(tmp_path / "glove")
    vectors, _ = load_glove(model.words[2:5])
    assert model.embed.weight.shape[1] == 50 and model.words[:2] == ["<pad>", "<unk>"]
    assert (
        torch.cosine_similarity(model.embed.weight[2:5], vectors, dim=1).min() > 0.8
    )  # started from GloVe
    added = model.words[model.embed.num_embeddings :][
        :3
    ]  # GloVe words the training part lacks: frozen
    assert added and torch.equal(model.embed_fixed.weight[: len(added)], load_glove(added)[0])
    (tmp_path / "reviews.txt").write_text(
        "a gorgeous , moving and funny film .\n\nthe worst , dullest mess of the year .\n"
    )
    preds, errors = runner.predict(tmp_path / "glove", [tmp_path / "reviews.txt"])
    assert (
        not errors and len(preds) == 2 and {p["label"] for p in preds} <= {"positive", "negative"}
    )


def test_vocabulary_comes_from_the_training_part_only(data_root):
    from lstmvision.data.text import kfold_indices, load_polarity
    from lstmvision.tasks.text_classify import SentenceData, TextClassifyConfig

    dm = SentenceData(TextClassifyConfig(data_root=str(data_root), fold=2, embeddings="scratch"))
    dm.setup()
    texts, _ = load_polarity(data_root)
    train_idx, test_idx = kfold_indices(len(texts), 10, 2)
    train_words = {w for i in train_idx for w in texts[i]}
    only_test = {w for i in test_idx for w in texts[i]} - train_words
    assert only_test and not only_test & set(dm.vocab.words)
    assert len(dm.sets["test"]) == len(test_idx)
    # the validation part is held out of the vocabulary too, so it meets unseen words as test does
    fit_words = {
        w for ids, _ in dm.sets["train"] for w in (dm.vocab.words[i] for i in ids.tolist())
    }
    assert set(dm.vocab.words) - {"<pad>", "<unk>"} == fit_words
    val_unknown = sum(ids.eq(1).sum().item() for ids, _ in dm.sets["val"])
    assert val_unknown > 0


def test_glove_vocabulary_adds_glove_words_not_test_words(data_root):
    from lstmvision.data.text import glove_words
    from lstmvision.tasks.text_classify import SentenceData, TextClassifyConfig

    base = SentenceData(TextClassifyConfig(data_root=str(data_root), fold=2, embeddings="scratch"))
    glove = SentenceData(TextClassifyConfig(data_root=str(data_root), fold=2, glove_words=5000))
    base.setup(), glove.setup()
    n = len(base.vocab)
    assert glove.vocab.words[:n] == base.vocab.words  # the training words keep their indices
    added = glove.vocab.words[n:]
    assert (
        added
        and set(added) <= set(glove_words(5000))
        and len(set(glove.vocab.words)) == len(glove.vocab)
    )
    unknown = lambda dm: sum(ids.eq(1).sum().item() for ids, _ in dm.sets["test"])  # noqa: E731
    assert unknown(glove) < unknown(
        base
    )  # test words never seen in training still get GloVe vectors


def test_crossval_driver_writes_the_table(data_root, tmp_path):
    overrides = {**SMALL, "epochs": 1, "limit_train": 300, "data_root": str(data_root)}
    rows = crossval(
        tmp_path / "cv",
        folds=10,
        embeddings=("scratch",),
        only_folds=[0, 1],
        overrides=overrides,
        log=lambda line: None,
    )
    assert [r["fold"] for r in rows] == [0, 1] and (tmp_path / "cv" / "results.csv").is_file()
    table = (tmp_path / "cv" / "results.md").read_text()
    assert "2/10" in table and "81.5%" in table and "79.4%" in table
    again = crossval(
        tmp_path / "cv", folds=10, embeddings=("scratch",), only_folds=[0, 1], overrides=overrides
    )
    assert again == rows  # finished folds are read back, not retrained
    assert format_markdown(rows, 10) == table
    more = crossval(
        tmp_path / "cv", folds=10, embeddings=("scratch",), only_folds=[2], overrides=overrides
    )
    assert more[:2] == rows and [r["fold"] for r in more] == [
        0,
        1,
        2,
    ]  # the table keeps earlier calls' folds
    assert "3/10" in (tmp_path / "cv" / "results.md").read_text()
    assert {(r["ensemble"], r["adversarial"]) for r in more} == {
        (1, 1.0)
    }  # read from each run's config.yaml
    other = crossval(
        tmp_path / "cv",
        folds=10,
        embeddings=("scratch",),
        only_folds=[3],
        overrides={**overrides, "adversarial": 0.0},
    )
    table = (tmp_path / "cv" / "results.md").read_text()  # another recipe: a row of its own
    assert (
        "| BiLSTM, embedding from scratch, adversarial 1 (ours) |" in table and "| 3/10 |" in table
    )
    assert (
        "| BiLSTM, embedding from scratch (ours) |" in table
        and "| 1/10 |" in table
        and len(other) == 4
    )


def test_fixed_words_are_a_frozen_table_and_give_the_same_vectors():
    torch.manual_seed(0)
    model = get_model("text-bilstm", vocab_size=12, hidden_size=5, embed_size=4, fixed_words=5)
    assert model.embed.num_embeddings == 7 and model.embed_fixed.num_embeddings == 5
    assert not model.embed_fixed.weight.requires_grad
    tokens = torch.tensor([[3, 7, 11, 0], [8, 1, 0, 0]])
    table = torch.cat([model.embed.weight, model.embed_fixed.weight])  # one table, ids as indices
    assert torch.equal(model.embed_tokens(tokens), table[tokens])
    model(tokens).sum().backward()
    assert model.embed_fixed.weight.grad is None and model.embed.weight.grad[[3, 1]].abs().sum() > 0
    with pytest.raises(ValueError, match="fixed_words"):
        get_model("text-bilstm", vocab_size=4, fixed_words=4)


def test_ensemble_is_the_mean_of_its_members_probabilities():
    torch.manual_seed(0)
    model = get_model(
        "text-bilstm-ensemble", members=3, vocab_size=12, hidden_size=5, embed_size=4, fixed_words=5
    )
    model.eval()
    tokens = torch.tensor([[3, 7, 11, 0], [8, 1, 2, 0]])
    members = model.member_logits(tokens)  # (3, 2, 2)
    assert members.shape == (3, 2, 2) and not torch.allclose(
        members[0], members[1]
    )  # each its own start
    assert torch.allclose(model(tokens).exp(), members.softmax(-1).mean(0), atol=1e-6)
    # member 0 with the shared frozen table reads as a single classifier holding that table would
    single = get_model(
        "text-bilstm", vocab_size=12, hidden_size=5, embed_size=4, fixed_words=5
    ).eval()
    single.load_state_dict(
        {**model.members[0].state_dict(), "embed_fixed.weight": model.embed_fixed.weight}
    )
    assert torch.allclose(single(tokens), members[0], atol=1e-6)
    with pytest.raises(ValueError, match="members"):
        get_model("text-bilstm-ensemble", members=0, vocab_size=12)


@pytest.mark.parametrize("members,frozen", [(1, False), (3, False), (3, True)])
def test_adversarial_loss_moves_the_word_vectors_uphill(members, frozen):
    torch.manual_seed(0)
    kind, extra = (
        ("text-bilstm-ensemble", {"members": members}) if members > 1 else ("text-bilstm", {})
    )
    model = get_model(
        kind, vocab_size=12, hidden_size=5, embed_size=4, fixed_words=5, **extra
    ).eval()
    for member in getattr(model, "members", [model]):
        member.embed.weight.requires_grad_(not frozen)
    tokens, lengths, y = (
        torch.tensor([[3, 7, 11, 2], [8, 1, 2, 0]]),
        torch.tensor([4, 3]),
        torch.tensor([0, 1]),
    )
    vectors = model.member_vectors(tokens)  # (M, B, T, E)
    assert vectors.shape == (members, 2, 4, 4) and vectors.requires_grad != frozen
    clean = F.cross_entropy(
        model.logits_from_vectors(vectors, lengths).flatten(0, 1), y.repeat(members)
    )
    moved = {
        eps: SentenceClassifierModule(model, TextClassifyConfig(adversarial=eps))._adversarial_loss(
            vectors, lengths, y, None if frozen else clean
        )
        for eps in (0.0, 0.5)
    }
    assert torch.allclose(moved[0.0], clean)
    assert moved[0.5] > clean + 1e-3
    torch.manual_seed(1)  # a random move of the same size raises the loss less
    noise = torch.randn_like(vectors)
    noise = 0.5 * noise / noise.flatten(2).norm(dim=2)[..., None, None]
    randomly = F.cross_entropy(
        model.logits_from_vectors(vectors + noise, lengths).flatten(0, 1), y.repeat(members)
    )
    assert moved[0.5] > randomly


def test_ensemble_trains_each_member_from_glove_and_predicts(data_root, tmp_path):
    cfg = {
        **SMALL,
        "epochs": 1,
        "limit_train": 300,
        "data_root": str(data_root),
        "ensemble": 2,
        "glove_words": 1000,
        "adversarial": 1.0,
    }
    runner.train("text-classify", cfg, out=tmp_path / "ens", quiet=True)
    task, _, model = runner.load(tmp_path / "ens")  # rebuilt from the saved files alone
    assert len(model.members) == 2 and model.embed_fixed.num_embeddings > 0
    vectors, _ = load_glove(model.words[2:5])
    for member in model.members:  # every member's trained words started from GloVe
        assert torch.cosine_similarity(member.embed.weight[2:5], vectors, dim=1).min() > 0.8
    (tmp_path / "r.txt").write_text("a gorgeous , moving film .\n")
    preds, errors = runner.predict(tmp_path / "ens", [tmp_path / "r.txt"])
    assert not errors and 0.5 <= preds[0]["confidence"] <= 1
    with pytest.raises(ConfigError, match="--ensemble"):
        runner.train("text-classify", {**cfg, "ensemble": 0}, out=tmp_path / "bad", quiet=True)


def test_crossval_command_passes_the_ensemble_size_and_adversarial_move(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from lstmvision import cli
    from lstmvision.studies import crossval as crossval_module

    seen = {}

    def fake(out, folds, embeddings, only, overrides):
        seen.update(overrides, embeddings=embeddings, only=only)
        return []

    monkeypatch.setattr(crossval_module, "crossval", fake)
    args = ["crossval", "--out", str(tmp_path), "--embeddings", "glove", "--only", "0,3"]
    result = CliRunner().invoke(cli.app, [*args, "--ensemble", "1", "--adversarial", "0"])
    assert result.exit_code == 0, result.output
    assert (
        seen["ensemble"] == 1
        and seen["adversarial"] == 0
        and seen["embeddings"] == ["glove"]
        and seen["only"] == [0, 3]
    )
    seen.clear()
    assert CliRunner().invoke(cli.app, args).exit_code == 0
    assert "ensemble" not in seen and "adversarial" not in seen  # the task's recipe decides
