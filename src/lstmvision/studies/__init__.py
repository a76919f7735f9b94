"""Studies: commands that train many runs of the tasks and put their figures in one table.

``compare`` (RNN vs LSTM vs GRU), ``crossval`` (k-fold text-classify) and ``transfer_study`` (the
2x2 transfer grid) are not tasks: each drives ``lstmvision.tasks.runner`` over a grid of settings,
one run folder per cell, and writes ``results.csv`` and ``results.md`` (:func:`table.write_table`).
They sit above the tasks: they import the runner, a task never imports them.
"""
