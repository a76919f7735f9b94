"""Character n-gram LM (Witten-Bell) and its shallow fusion into CTC prefix beam search."""

from __future__ import annotations

import json
import math

import pytest
import torch

from lstmvision.nn.ctc import brute_force_labellings, prefix_beam_search
from lstmvision.nn.ngram import CharNGram, LineLM

TEXTS = ["abracadabra", "abba", "cab", "", "a cab", "bad"]


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_probabilities_sum_to_one_over_chars_and_end(order):
    lm = CharNGram.fit(TEXTS, order=order, chars="abcdr z")  # z: in the charset, never in a text
    assert lm.vocab == "abcdr z" + CharNGram.EOS
    for context in ["", "a", "ab", "abr", "zzzz", "dab", "q", "x" * 9]:  # seen, unseen, too long
        total = sum(math.exp(lm.log_prob(context, c)) for c in lm.vocab)
        assert total == pytest.approx(1.0, abs=1e-12), context


def test_witten_bell_by_hand():
    # one line "ab", order 2: events <s>->a, a->b, b-></s>; V = {a, b, </s>}
    lm = CharNGram.fit(["ab"], order=2)
    # no context: C = 1 each, C(ε) = 3, T(ε) = 3: (1 + 3/3) / (3 + 3) = 1/3
    assert math.exp(CharNGram.fit(["ab"], order=1).log_prob("", "a")) == pytest.approx(1 / 3)
    assert math.exp(lm.log_prob("", "a")) == pytest.approx((1 + 1 / 3) / 2)  # context <s>: C=1, T=1
    assert math.exp(lm.log_prob("a", "b")) == pytest.approx(
        (1 + 1 / 3) / 2
    )  # C(ab)=1, C(a)=1, T(a)=1
    assert math.exp(lm.log_prob("a", "a")) == pytest.approx((0 + 1 / 3) / 2)
    assert math.exp(lm.log_prob("ab", CharNGram.EOS)) == pytest.approx((1 + 1 / 3) / 2)
    assert lm.score("ab") == pytest.approx(3 * math.log(2 / 3))
    # an unknown character gets the floor: the uniform share T(ε)/(C(ε)+T(ε)) / |V| = 1/2 / 3
    assert lm.floor == pytest.approx(1 / 6) and lm.log_prob("a", "é") == pytest.approx(
        math.log(1 / 6)
    )


def test_longer_context_decides():
    lm = CharNGram.fit(["abcabd"] * 5 + ["xbd"] * 5, order=3)
    assert lm.log_prob("xb", "d") > lm.log_prob("xb", "c")  # "xb" is always followed by d
    assert lm.log_prob("ab", "c") > lm.log_prob("xb", "c")


def test_to_dict_from_dict_round_trip():
    lm = CharNGram.fit(TEXTS * 3 + ["dracula"], order=4)
    again = CharNGram.from_dict(json.loads(json.dumps(lm.to_dict())))  # through plain JSON
    assert again.order == 4 and again.chars == lm.chars
    for context in ["", "a", "abr", "cad", "ula", "zz"]:
        for c in lm.vocab + "?":
            assert again.log_prob(context, c) == lm.log_prob(context, c)
    assert again.score("abracula") == lm.score("abracula")
    with pytest.raises(ValueError, match="lstmvision-char-ngram"):
        CharNGram.from_dict({"format": "pickle"})
    with pytest.raises(ValueError, match="start/end"):
        CharNGram.fit(["a\x03b"])


def test_ctc_scorer_matches_log_prob():
    lm = CharNGram.fit(TEXTS, order=3)
    charset = "abc"  # class i is charset[i - 1]; "d" and "r" are not classes, "x" is not in the LM
    scorer = lm.ctc_scorer(charset + "x")
    assert scorer((1, 2), 3) == lm.log_prob("ab", "c")
    assert scorer((3, 1, 2), None) == lm.log_prob("cab", CharNGram.EOS)
    assert scorer((), 1) == lm.log_prob("", "a") and scorer((1,), 4) == lm.log_floor


# ------------------------------------------------------------------------------ shallow fusion


def _ambiguous():
    # blank 0, a 1, b 2: frame 0 is surely "a"; frame 1 is b (0.45), a (0.35: merges) or blank (0.2)
    # -> p("a") = 0.9*0.35 + 0.9*0.2 + 0.05*0.35 = 0.5125 beats p("ab") = 0.9*0.45 = 0.405
    return torch.tensor([[0.05, 0.9, 0.05], [0.2, 0.35, 0.45]], dtype=torch.float64).log()


def test_an_lm_changes_the_beam_decision_and_weight_zero_changes_nothing():
    log_probs = _ambiguous()
    plain = prefix_beam_search(log_probs, beam=5)
    assert plain[0][0] == [1] and plain[0][1] == pytest.approx(math.log(0.5125))
    lm = CharNGram.fit(["ab"] * 20, order=3, chars="ab").ctc_scorer(
        "ab"
    )  # lines are "ab", never "a"
    fused = prefix_beam_search(log_probs, beam=5, lm=lm, lm_weight=1.0)
    assert fused[0][0] == [1, 2]
    assert fused[0][1] == pytest.approx(math.log(0.405))  # the returned score stays log p_ctc
    assert (
        prefix_beam_search(log_probs, beam=5, lm=lm, lm_weight=0.0) == plain
    )  # exactly the old result
    assert prefix_beam_search(log_probs, beam=5, length_bonus=1.0)[0][0] == [
        1,
        2,
    ]  # +β per character


@pytest.mark.parametrize("seed", range(3))
def test_fused_wide_beam_is_the_exact_fused_argmax(seed):
    torch.manual_seed(seed)
    log_probs = torch.randn(5, 3, dtype=torch.float64).mul(2).log_softmax(-1)  # T=5, blank + a, b
    ngram = CharNGram.fit(["abba", "ab", "baab", "a"], order=3, chars="ab")
    lm, weight, bonus = ngram.ctc_scorer("ab"), 0.8, 0.5
    exact = brute_force_labellings(log_probs)
    fused = {
        seq: s + weight * ngram.score("".join("ab"[i - 1] for i in seq)) + bonus * len(seq)
        for seq, s in exact.items()
    }
    wide = prefix_beam_search(
        log_probs, beam=1000, prune=None, lm=lm, lm_weight=weight, length_bonus=bonus
    )
    assert tuple(wide[0][0]) == max(fused, key=fused.get)
    assert {tuple(seq): s for seq, s in wide} == pytest.approx(
        exact, rel=1e-9, abs=1e-12
    )  # CTC scores returned
    # weight 0 with an LM given: identical to the plain search, order and scores
    for beam in (1, 3):
        assert prefix_beam_search(log_probs, beam, lm=lm, lm_weight=0.0) == prefix_beam_search(
            log_probs, beam
        )


def test_line_lm_fusion_and_json_round_trip(tmp_path):
    ngram = CharNGram.fit(["ab"] * 20, order=3, chars="ab")
    assert LineLM(ngram).fusion("ab") == {}  # both weights 0: plain beam search
    lm = LineLM(ngram, 0.6, 1.0, {"beam": 10, "grid": [{"lm_weight": 0.6}]})
    fusion = lm.fusion("ab")
    assert (fusion["lm_weight"], fusion["length_bonus"]) == (0.6, 1.0)
    assert fusion["lm"]((1,), 2) == ngram.log_prob("a", "b")  # class i is charset[i - 1]
    assert prefix_beam_search(_ambiguous(), beam=5, **fusion)[0][0] == [1, 2]
    again = LineLM.load(lm.save(tmp_path / "lm.json"))
    assert (again.lm_weight, again.length_bonus, again.info) == (0.6, 1.0, lm.info)
    assert again.ngram.to_dict() == ngram.to_dict()
    assert [p.name for p in tmp_path.iterdir()] == ["lm.json"]  # no temporary file left
    (tmp_path / "bad.json").write_text('{"lm_weight": 1}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.json: not a textline language model"):
        LineLM.load(tmp_path / "bad.json")
