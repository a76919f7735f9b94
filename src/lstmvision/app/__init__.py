"""``lstmvision app``: every system on the user's own input in the browser (a Gradio Blocks app),
with the views inside it.

One module per tab, each a pure part (plain functions: the model's answer and its pictures, no
Gradio; ``lstmvision bench app`` and the tests call them) and a ``build`` that lays out the tab's
Gradio components: :mod:`~lstmvision.app.digits` (Row LSTM: probabilities, the answer forming row
by row, the gates), :mod:`~lstmvision.app.captions` (beam search, attention per word),
:mod:`~lstmvision.app.lines` (transcription, CTC alignment, PAGE XML),
:mod:`~lstmvision.app.video` (clip classes, next-frame forecasts), :mod:`~lstmvision.app.char_lm`
(streamed samples) and :mod:`~lstmvision.app.inside` (the vanishing gradient, live).
:mod:`~lstmvision.app.served` loads the models once, :mod:`~lstmvision.app.uploads` checks what
users upload, :mod:`~lstmvision.app.blocks` assembles the page and :mod:`~lstmvision.app.server`
starts it (Gradio is imported there and nowhere at ``import lstmvision``).
"""
