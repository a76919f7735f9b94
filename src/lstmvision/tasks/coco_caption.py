"""Caption metrics through the coco-caption protocol (pycocoevalcap), as captioning papers report.

The protocol (``pycocoevalcap.eval.COCOEvalCap``): the raw references and generated captions are
tokenised by Stanford CoreNLP's ``PTBTokenizer`` (lower case; the tokens ``'' ' `` ` -LRB- -RRB-
-LCB- -RCB- . ? ! , : - -- ... ;`` dropped), then scored by BLEU-1..4 (``Bleu(4)``, corpus BLEU,
closest reference length), METEOR 1.5 (``Meteor``), ROUGE-L (``Rouge``) and CIDEr-D (``Cider``);
papers print them x100 (CIDEr-D too).

Java: ``PTBTokenizer`` and METEOR run jars. Without a ``java`` on the PATH, the captions are
tokenised by :func:`ptb_like_tokens` (pure Python: the same lower-casing, clitic and punctuation
splits and dropped tokens; on all 4,955 captions of the Flickr8k slice's splits it gives exactly
the PTBTokenizer's tokens, ``tests/test_benchmarks.py``) and METEOR is skipped; the returned
notes say so.

Our own metrics (:mod:`lstmvision.tasks.metrics`, logged as ``*_bleu{n}``, ``*_cider``) count the
same n-grams on our tokens (:func:`lstmvision.data.captions.tokenize`: lower-case runs of
``[a-z0-9]``). Given the same tokens, CIDEr-D is the same code, and BLEU-n differs only in the
brevity penalty: where two references are equally close in length to a caption, coco-caption
takes the shorter, torchmetrics the first listed (coco-caption's 1e-9 / 1e-15 guards against zero
counts are below 1e-8). The coco-caption figures of a run (``test_coco_*``) also tokenise the raw
captions as above, so they differ from ours by that too (``dog's``: ``dog 's`` there, ``dog s``
here).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import lru_cache

COCO_PUNCTUATION = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--"]
    + ["...", ";"]
)
"""The tokens pycocoevalcap's PTBTokenizer drops after tokenising."""

_CLITIC = re.compile(r"(?i)(n't|'s|'re|'ve|'ll|'d|'m)$")
_TOKEN = re.compile(
    r"(?:n't|'s|'re|'ve|'ll|'d|'m)(?![a-z0-9])|\.\.\.|--|[a-z0-9]+(?:[-'./&][a-z0-9]+)*'?|\S"
)


@lru_cache(maxsize=1)
def java_available() -> bool:
    """Whether a working ``java`` is on the PATH (coco-caption's tokenizer and METEOR need it)."""
    java = shutil.which("java")
    if java is None:
        return False
    try:
        return subprocess.run([java, "-version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def ptb_like_tokens(text: str) -> str:
    """Pure-Python stand-in for coco-caption's PTB tokenisation: lower case, clitics split
    (``dog's`` -> ``dog 's``, ``don't`` -> ``do n't``), hyphenated words kept whole, punctuation
    split off and the dropped tokens (:data:`COCO_PUNCTUATION`) removed; space-joined."""
    tokens = []
    text = re.sub(r"\b(can)(not)\b", r"\1 \2", text.lower().replace('"', " '' "))
    for token in _TOKEN.findall(text):
        if token.endswith("'") and len(token) > 1 and token[-2] != "s":
            token = token[:-1]  # a closing quote glued to a word
        if token.endswith(".") and len(token) > 1 and "." not in token[:-1]:
            tokens.extend([token[:-1], "."])
            continue
        clitic = _CLITIC.search(token)
        if clitic and clitic.start() > 0:
            tokens.extend([token[: clitic.start()], clitic.group(0)])
        else:
            tokens.append(token)
    return " ".join(t for t in tokens if t not in COCO_PUNCTUATION)


def coco_tokenize(captions: dict[int, list[str]], java: bool) -> dict[int, list[str]]:
    """``{id: [raw caption, ...]}`` -> the same, tokenised: PTBTokenizer with ``java``, else
    :func:`ptb_like_tokens`."""
    if not java:
        return {k: [ptb_like_tokens(c) for c in caps] for k, caps in captions.items()}
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    return PTBTokenizer().tokenize({k: [{"caption": c} for c in v] for k, v in captions.items()})


def coco_caption_scores(
    hypotheses: list[str],
    references: list[list[str]],
    tokenized: bool = False,
    java: bool | None = None,
) -> tuple[dict[str, float], list[str]]:
    """coco-caption scores of ``hypotheses`` (one caption per image) against ``references`` (each
    image's captions): ``{"bleu1".."bleu4", "meteor" (with Java), "rouge_l", "cider"}`` on the
    0-1 scale (CIDEr-D on its own, 1.0 = 100 in papers), and notes (how the captions were
    tokenised, what was skipped). ``tokenized``: the captions are already space-joined tokens
    (no tokeniser runs). ``java``: default, whether Java is available."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if len(hypotheses) != len(references) or not hypotheses:
        raise ValueError("need one hypothesis per image and at least one image")
    java = java_available() if java is None else java
    notes = []
    gts = {i: list(refs) for i, refs in enumerate(references)}
    res = {i: [h] for i, h in enumerate(hypotheses)}
    if tokenized:
        notes.append("captions scored as given (already tokenised)")
    else:
        gts, res = coco_tokenize(gts, java), coco_tokenize(res, java)
        notes.append(
            "tokenised by coco-caption's PTBTokenizer (Java)"
            if java
            else "no Java: tokenised by a pure-Python equivalent of coco-caption's PTBTokenizer"
        )
    scores: dict[str, float] = {}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores.update({f"bleu{n}": float(b) for n, b in enumerate(bleu, 1)})
    if java:
        from pycocoevalcap.meteor.meteor import Meteor

        meteor = Meteor()  # a Java process, ended when the scorer is deleted
        scores["meteor"] = float(meteor.compute_score(gts, res)[0])
        del meteor
    else:
        notes.append("METEOR skipped: it needs Java (install a JRE to get it)")
    scores["rouge_l"] = float(Rouge().compute_score(gts, res)[0])
    scores["cider"] = float(Cider().compute_score(gts, res)[0])
    return scores, notes
