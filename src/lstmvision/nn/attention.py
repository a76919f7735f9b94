r"""Soft (deterministic) attention over a set of feature vectors, as in Show, Attend and Tell
(Xu et al. 2015, section 4.2, "deterministic soft attention").

.. math::

    e_{ti} &= w^\top \tanh(W_a a_i + W_h h_{t-1} + b)      && \text{score of location } i \\
    \alpha_{ti} &= \frac{\exp e_{ti}}{\sum_k \exp e_{tk}}     && \text{weights, sum to 1 over } i \\
    \hat z_t &= \sum_i \alpha_{ti} a_i                         && \text{context vector}

``W_a a_i`` does not depend on ``t``: :meth:`SoftAttention.project` computes it once per image and
every step reuses it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class SoftAttention(nn.Module):
    """Additive attention of a query ``h (B, H)`` over features ``a (B, L, D)``.

    Args:
        feature_size: ``D``, size of each feature vector ``a_i``.
        query_size: ``H``, size of the query (the decoder's previous hidden state).
        attention_size: size of the hidden layer of the scoring MLP.
    """

    def __init__(self, feature_size: int, query_size: int, attention_size: int):
        super().__init__()
        self.feature_proj = nn.Linear(feature_size, attention_size)  # W_a (and b)
        self.query_proj = nn.Linear(query_size, attention_size, bias=False)  # W_h
        self.score = nn.Linear(attention_size, 1, bias=False)  # w

    def project(self, features: Tensor) -> Tensor:
        """``W_a a_i + b`` for every location: ``(B, L, D) -> (B, L, A)``."""
        return self.feature_proj(features)

    def forward(self, features: Tensor, projected: Tensor, query: Tensor) -> tuple[Tensor, Tensor]:
        """``(features (B, L, D), projected (B, L, A), query (B, H))`` ->
        ``(context (B, D), alpha (B, L))``."""
        # e_ti = w^T tanh(W_a a_i + W_h h_{t-1} + b)
        e = self.score(torch.tanh(projected + self.query_proj(query)[:, None])).squeeze(
            -1
        )  # (B, L)
        # α_ti = softmax_i(e_ti)
        alpha = e.softmax(dim=-1)  # (B, L)
        # ẑ_t = Σ_i α_ti a_i
        context = torch.bmm(alpha[:, None], features).squeeze(1)  # (B, D)
        return context, alpha
