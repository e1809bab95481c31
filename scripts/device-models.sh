#!/usr/bin/env bash
# The model measurements of docs/MODELS.md on a lent GPU machine, with the binary from
# scripts/build-for-device.sh (carry .device). Writes logs, tables and pictures to $OUT.
#
#   scripts/device-models.sh            # on the device machine, from the repository root
set -uo pipefail
SULA="$PWD/.device/run-on-device.sh"
OUT="${OUT:-/tmp/sula-device-out}"
DATA=/tmp/sula-data
mkdir -p "$OUT" "$DATA"
log="$OUT/models_log.txt"
step() { echo "== $*" | tee -a "$log"; "$@" 2>&1 | tr '\r' '\n' | grep -v 'ETA' | tee -a "$log"; }

nvidia-smi -L | tee "$log"
step "$SULA" --version
step "$SULA" phantom --count 1200 --size 64 --seed 1 --out "$DATA/pool64" --with-stress
step "$SULA" phantom --count 300 --size 64 --seed 2 --out "$DATA/test64" --with-stress
step "$SULA" train-vae --data "$DATA/pool64" --out "$OUT/vae.safetensors" --size 64 --epochs "${VAE_EPOCHS:-120}" --seed 1 --device cuda
# Ablation: the earlier latent size without the KL warm-up, same epochs.
step "$SULA" train-vae --data "$DATA/pool64" --out "$DATA/vae_l16.safetensors" --size 64 --epochs "${VAE_EPOCHS:-120}" --seed 1 --latent-dim 16 --kl-warmup 0 --device cuda
step "$SULA" train --data "$DATA/pool64" --out "$DATA/f.safetensors" --size 64 --epochs 60 --masked --test "$DATA/test64" --seed 1 --device cuda
step "$SULA" train --data "$DATA/pool64" --out "$DATA/oracle.safetensors" --size 64 --epochs 60 --masked --test "$DATA/test64" --seed 1 --input label-map --device cuda
step "$SULA" eval-vae --vae "$OUT/vae.safetensors" --data "$DATA/test64" --regressor "$DATA/f.safetensors" --png "$OUT/vae_samples.png" --device cuda
step "$SULA" eval-vae --vae "$DATA/vae_l16.safetensors" --data "$DATA/test64" --regressor "$DATA/f.safetensors" --device cuda
step "$SULA" tstr --vae "$OUT/vae.safetensors" --data "$DATA/pool64" --test "$DATA/test64" --count 320 --steps 1500 --json "$OUT/tstr.json" --device cuda
step "$SULA" tstr --vae "$OUT/vae.safetensors" --data "$DATA/pool64" --test "$DATA/test64" --count 320 --steps 1500 --no-speckle --json "$OUT/tstr_no_speckle.json" --device cuda
step "$SULA" tstr --vae "$DATA/vae_l16.safetensors" --data "$DATA/pool64" --test "$DATA/test64" --count 320 --steps 1500 --device cuda
step "$SULA" learning-curve --data "$DATA/pool64" --test "$DATA/test64" --steps 1500 --png "$OUT/learning_curve.png" --json "$OUT/learning_curve.json" --device cuda
for args in "--size 64 --batch 32 --steps 50" "--size 128 --batch 64 --steps 30"; do
    # shellcheck disable=SC2086
    step python3 bench/models_reference.py --sula "$SULA" $args
done
echo "done" | tee -a "$log"
