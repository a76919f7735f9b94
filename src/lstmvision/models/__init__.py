"""Models: plain ``nn.Module`` systems built from ``lstmvision.nn``, registered by name.

``list_models()`` and ``get_model(name, **kwargs)`` are the entry points; registering a second
model under a taken name raises ``ValueError``.
"""

from __future__ import annotations

from torch import nn

from lstmvision.registry import Registry

MODELS: Registry = Registry("model")
register_model = MODELS.register


def list_models() -> list[str]:
    return MODELS.names()


def get_model(name: str, **kwargs) -> nn.Module:
    return MODELS.get(name)(**kwargs)


from lstmvision.models import (  # noqa: E402,F401
    captioner,  # noqa: E402,F401
    cnn,
    crnn,  # noqa: E402,F401
    efficientnet,
    pixelrnn,
    row_lstm,  # noqa: E402,F401  (registers its models)
    text,  # noqa: E402,F401
    video,  # noqa: E402,F401
)

__all__ = ["register_model", "list_models", "get_model"]
