"""ONNX export of trained models, checked by ONNX Runtime (``lstmvision export``).

* :func:`export` (:mod:`lstmvision.export.onnx_export`): a shipped model's name, a saved model
  folder or a run folder -> ONNX graph(s) (:mod:`lstmvision.export.graphs` says which, with their
  inputs, outputs and dynamic axes), each checked against torch by ONNX Runtime before it is
  renamed into place.
* :mod:`lstmvision.export.runtime`: sessions, the graphs' metadata and CTC decoding of the
  text-line graph's outputs, without torch.
* :mod:`lstmvision.export.caption_onnx`: beam-search captioning with the captioner's two graphs,
  with nothing but numpy, Pillow and onnxruntime (``python -m lstmvision.export.caption_onnx``).

This package imports neither torch nor onnx until :func:`export` is called (the runtime modules
never do); onnx and onnxruntime come with ``pip install lstmvision[export]``.
"""

from __future__ import annotations


def export(source, out, format: str = "onnx", opset: int | None = None):
    """See :func:`lstmvision.export.onnx_export.export`."""
    from lstmvision.export.onnx_export import export as _export

    return _export(source, out, format=format, opset=opset)
