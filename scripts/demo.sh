#!/usr/bin/env bash
# The main job: train a Row LSTM on MNIST with the recipe defaults, evaluate it on the test split,
# and predict a few test digits written out as PNG files. Everything lands in one run folder.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
RUN=${RUN:-runs/row-lstm/demo-$(date +%Y%m%d-%H%M%S)}
.venv/bin/lstmvision train row-lstm --dataset mnist --out "$RUN"
.venv/bin/lstmvision evaluate "$RUN"
.venv/bin/lstmvision samples mnist --count 8 --out "$RUN/samples"
.venv/bin/lstmvision predict "$RUN" "$RUN"/samples/*.png
echo "run folder: $RUN (metrics.json, model.safetensors, training_curves.png, confusion_matrix.png, predictions.png)"
