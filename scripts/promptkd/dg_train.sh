#!/bin/bash
# Stage 2 of PromptKD, domain generalisation: distil the ImageNet teacher on an unlabeled ImageNet variant
# (imagenetv2, imagenet_sketch, imagenet_a, imagenet_r: train = test = all its images, as upstream).
#   bash scripts/promptkd/dg_train.sh <dataset> <seed> [KEY VALUE ...]
# The cross-dataset protocol (xd_train.sh) with the output under ${OUTPUT}/dg/.
set -euo pipefail
XD_OUTPUT_SUBDIR=dg/ exec bash "$(dirname "$0")/xd_train.sh" "$@"
