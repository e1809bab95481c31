#!/usr/bin/env bash
# One lease's worth of GPU measurements, run side by side so that a 15-minute lease covers
# them: each job is launch-bound at 64² (one CPU thread issuing small kernels), so several
# processes share the GPU well as long as their CPU threads do not oversubscribe the cores.
# Needs the binary of scripts/build-for-device.sh (carry .device/sula-torch-2.11.0 and
# .device/run-on-device.sh; SULA=PATH runs another binary). Everything lands in
# $OUT/lease.tgz (the device tool returns at most 8 files) and a summary in $OUT/lease.txt.
#
#   scripts/device-lease.sh [SECONDS] [PART] [MODES]   # on the device machine; every job ends by then
#
# PART measure (default), jobs each with 4 CPU threads, 16 cores in all:
#   f300   F(image) for 300 epochs, validation (phantom seed 3) and test reported
#          (docs/journal/models.md: does a longer schedule close the accuracy / R² gap?)
#   curve  F's learning curve at 1500 steps per size, seeds 1, 2, 3
#   sel-si, sel-snn   `sula experiment --select` at the default protocol, 4 repeats per
#          setting, with the shipped VAE (the test set is not loaded)
# PART f-next: issue 12's open F target (accuracy 0.64 against 0.7; docs/journal/models.md), three
#          jobs with 5 CPU threads each, validation (phantom seed 3) and test reported:
#   f24_300  F(image) at width 24 (chosen on validation at 150 epochs) for 300 epochs, 64²
#   f128     F(image) at 128² (width 16, 150 epochs): does a finer image let F see lipid
#            and calcium in speckle? Pool, validation and test made at 128², same seeds.
#   oracle   F(label map) at 64² (150 epochs, validation only), and `sula eval-f` on every
#            F above: accuracy on fibrous-only frames against frames with plaque, and the
#            tissue head's Dice (needs a binary built after eval-f was added).
#          The rule that reads them: docs/journal/results/models/f_next_rule.md (written before).
# PART f-next2: the second lease of that rule's addendum 2, side by side, 5 threads each:
#   f24_600 (64², width 24, 600 epochs), f16_128_300 and f24_128_300 (128², widths 16 and
#          24, 300 epochs), each followed by `sula eval-f` on validation.
# PART f-average: the best 64² F (width 24, 300 epochs) and the recommended 128² F (width
#          16, 300 epochs), side by side, 5 threads each, each scored by `sula eval-f` on
#          validation with its single prediction and with `--symmetry-average` (rule and
#          addendum: docs/journal/results/models/cpu_val_f_symmetry_average.md; needs a binary
#          built after 2026-12-03). The test set is scored only after the reading.
# PART vae-width: CUDA throughput (alone), then a width-48 VAE, its width-32 control and the
#          shipped VAE, each with eval-vae and TSTR on validation at seeds 1-5, side by side
#          (rule: docs/journal/results/models/cuda_val_vae_width.md). `vae-width SEED`: the two
#          widths' VAEs at another training seed, without the bench and the shipped VAE.
# PART study [MODES]: `sula experiment` at the default protocol with its defaults (the
#          settings chosen on validation), 10 repeats (the GPU default), test reported; the
#          modes side by side (default "si snn"; `study si` after a change to SI alone)
# PART paper: the paper-sized protocol (`--protocol paper`, 10 repeats, every arm), both
#          modes. It needs about an hour of one process per mode, more than a lease, so each
#          repeat's unfinished arms run two to a process (one CPU thread each), every process
#          in its own folder paper-MODE-rREPEAT-ARMS. An arm that a lease cut off restarts
#          its repeat at the next lease, so units are kept small. After each lease, unpack
#          lease.tgz, copy every paper-MODE-NAME to docs/journal/results/cuda_paper/MODE/NAME and
#          commit: the next lease runs only what no folder there finished. Once all is
#          finished, `sula experiment --protocol paper --mode MODE --repeats 10 --merge
#          docs/journal/results/cuda_paper/MODE/* --out DIR` gathers them, on any machine (adding
#          --gather-only summarises the repeats every arm finished so far). SI's random,
#          core-set and TTA arms are SNN's (they depend on neither mode nor η; k is 100 in
#          both): docs/journal/results/cuda_paper/si/pool-arms-from-snn holds them, merged from
#          SNN's folders, so SI's paper part runs only its ten adaptive repeats.
set -uo pipefail
LIMIT="${1:-540}"
PART="${2:-measure}"
SULA="${SULA:-$PWD/.device/run-on-device.sh}"
OUT="${OUT:-/tmp/sula-device-out}"
WORK=/tmp/sula-lease
DATA=/tmp/sula-data
mkdir -p "$OUT" "$WORK" "$DATA"
export OMP_NUM_THREADS=4 MKL_NUM_THREADS=4 RAYON_NUM_THREADS=4
start=$(date +%s)
left() { echo $((LIMIT - ($(date +%s) - start))); }

nvidia-smi -L | tee "$WORK/lease.txt"
"$SULA" --version | tee -a "$WORK/lease.txt"
[ -d "$DATA/pool64" ] || "$SULA" phantom --count 1200 --size 64 --seed 1 --out "$DATA/pool64" --with-stress
[ -d "$DATA/test64" ] || "$SULA" phantom --count 300 --size 64 --seed 2 --out "$DATA/test64" --with-stress
[ -d "$DATA/val64" ] || "$SULA" phantom --count 300 --size 64 --seed 3 --out "$DATA/val64" --with-stress

job() {
    local name="$1"
    shift
    (
        echo "== $name start $(date +%T)"
        timeout "$(left)" "$@"
        echo "== $name end rc $? $(date +%T)"
    ) >"$WORK/$name.log" 2>&1
}

case "$PART" in
measure)
    job f300 "$SULA" train --data "$DATA/pool64" --out "$DATA/f_300ep.safetensors" --size 64 \
        --epochs 300 --masked --validation "$DATA/val64" --test "$DATA/test64" --seed 1 --device cuda &
    (
        for seed in 1 2 3; do
            job "curve_s$seed" "$SULA" learning-curve --data "$DATA/pool64" --test "$DATA/test64" \
                --steps 1500 --seed "$seed" --png "$WORK/curve_s$seed.png" --json "$WORK/curve_s$seed.json" \
                --device cuda
        done
    ) &
    for mode in si snn; do
        job "sel_$mode" "$SULA" experiment --select --mode "$mode" --repeats 4 --device cuda \
            --out "$WORK/sel-$mode" &
    done
    ;;
f-next)
    export OMP_NUM_THREADS=5 MKL_NUM_THREADS=5 RAYON_NUM_THREADS=5
    (
        job f24_300 "$SULA" train --data "$DATA/pool64" --out "$DATA/f24_300ep.safetensors" --size 64 \
            --width 24 --epochs 300 --masked --validation "$DATA/val64" --test "$DATA/test64" --seed 1 \
            --device cuda
        job eval_f24_300 "$SULA" eval-f --regressor "$DATA/f24_300ep.safetensors" --data "$DATA/val64" \
            --device cuda
    ) &
    (
        job oracle "$SULA" train --data "$DATA/pool64" --out "$DATA/oracle150.safetensors" --size 64 \
            --input label-map --epochs 150 --masked --validation "$DATA/val64" --seed 1 --device cuda
        job eval_oracle "$SULA" eval-f --regressor "$DATA/oracle150.safetensors" --data "$DATA/val64" \
            --device cuda
    ) &
    (
        for set in pool:1200:1 val:300:3 test:300:2; do
            IFS=: read -r name count seed <<<"$set"
            [ -d "$DATA/${name}128" ] || "$SULA" phantom --count "$count" --size 128 --seed "$seed" \
                --out "$DATA/${name}128" --with-stress
        done
        job f128 "$SULA" train --data "$DATA/pool128" --out "$DATA/f128.safetensors" --size 128 \
            --epochs 150 --masked --validation "$DATA/val128" --test "$DATA/test128" --seed 1 \
            --device cuda
        job eval_f128 "$SULA" eval-f --regressor "$DATA/f128.safetensors" --data "$DATA/val128" \
            --device cuda
    ) &
    ;;
f-next2)
    export OMP_NUM_THREADS=5 MKL_NUM_THREADS=5 RAYON_NUM_THREADS=5
    for set in pool:1200:1 val:300:3 test:300:2; do
        IFS=: read -r name count seed <<<"$set"
        [ -d "$DATA/${name}128" ] || "$SULA" phantom --count "$count" --size 128 --seed "$seed" \
            --out "$DATA/${name}128" --with-stress
    done
    for run in f24_600:64:24:600 f16_128_300:128:16:300 f24_128_300:128:24:300; do
        IFS=: read -r name size width epochs <<<"$run"
        (
            job "$name" "$SULA" train --data "$DATA/pool$size" --out "$DATA/$name.safetensors" \
                --size "$size" --width "$width" --epochs "$epochs" --masked --validation "$DATA/val$size" \
                --test "$DATA/test$size" --seed 1 --device cuda
            job "eval_$name" "$SULA" eval-f --regressor "$DATA/$name.safetensors" \
                --data "$DATA/val$size" --device cuda
        ) &
    done
    ;;
f-average)
    export OMP_NUM_THREADS=5 MKL_NUM_THREADS=5 RAYON_NUM_THREADS=5
    for set in pool:1200:1 val:300:3; do
        IFS=: read -r name count seed <<<"$set"
        [ -d "$DATA/${name}128" ] || "$SULA" phantom --count "$count" --size 128 --seed "$seed" \
            --out "$DATA/${name}128" --with-stress
    done
    for run in f24_300:64:24 f16_128_300:128:16; do
        IFS=: read -r name size width <<<"$run"
        (
            job "$name" "$SULA" train --data "$DATA/pool$size" --out "$DATA/$name.safetensors" \
                --size "$size" --width "$width" --epochs 300 --masked --validation "$DATA/val$size" \
                --seed 1 --device cuda
            job "eval_$name" "$SULA" eval-f --regressor "$DATA/$name.safetensors" \
                --data "$DATA/val$size" --device cuda
            job "eval_${name}_average" "$SULA" eval-f --regressor "$DATA/$name.safetensors" \
                --data "$DATA/val$size" --symmetry-average --device cuda
        ) &
    done
    ;;
vae-width)
    # docs/journal/results/models/cuda_val_vae_width.md: CUDA throughput alone first, then a VAE at
    # width 48, its width-32 control trained here and the shipped VAE, each with eval-vae
    # and TSTR on validation at seeds 1-5, side by side with one CPU thread per job.
    # A third argument, the training seed (default 1), trains the two VAEs at that seed
    # (named w48sSEED, w32sSEED) and skips the bench and the shipped VAE's runs.
    train_seed="${3:-1}"
    suffix="" names="w48 w32 shipped"
    if [ "$train_seed" != 1 ]; then
        suffix="s$train_seed" names="w48s$train_seed w32s$train_seed"
    else
        export OMP_NUM_THREADS=16 MKL_NUM_THREADS=16 RAYON_NUM_THREADS=16
        job bench64 python3 bench/models_reference.py --sula "$SULA" --size 64 --batch 32 --steps 50
        job bench128 python3 bench/models_reference.py --sula "$SULA" --size 128 --batch 64 --steps 30
    fi
    export OMP_NUM_THREADS=8 MKL_NUM_THREADS=8 RAYON_NUM_THREADS=8
    for width in 48 32; do
        job "train_w$width$suffix" "$SULA" train-vae --data "$DATA/pool64" \
            --out "$WORK/w$width$suffix.safetensors" --size 64 --epochs 80 --seed "$train_seed" \
            --width "$width" --device cuda &
    done
    wait
    export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 RAYON_NUM_THREADS=1
    for name in $names; do
        vae="$WORK/$name.safetensors"
        [ "$name" = shipped ] && vae=assets/phantom64_vae.safetensors
        job "eval_$name" "$SULA" eval-vae --vae "$vae" --data "$DATA/val64" --draws 1000 \
            --png "$WORK/$name.png" --device cuda &
        for seed in 1 2 3 4 5; do
            job "tstr_${name}_s$seed" "$SULA" tstr --vae "$vae" --data "$DATA/pool64" --test "$DATA/val64" \
                --count 320 --steps 1500 --seed "$seed" --device cuda --json "$WORK/tstr_${name}_s$seed.json" &
        done
    done
    ;;
study)
    export OMP_NUM_THREADS=8 MKL_NUM_THREADS=8 RAYON_NUM_THREADS=8
    for mode in ${3:-si snn}; do
        job "study_$mode" "$SULA" experiment --mode "$mode" --device cuda --out "$WORK/study-$mode" &
    done
    ;;
paper)
    export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 RAYON_NUM_THREADS=1
    for mode in si snn; do
        kept_root="docs/journal/results/cuda_paper/$mode"
        # "arm repeat" of every arm that some kept folder ran to the last size.
        finished=$(cat "$kept_root"/*/results.csv 2>/dev/null | awk -F, '
            $1 != "arm" { rows[NR] = $1 " " $3; size[NR] = $5; if ($5 > last) last = $5 }
            END { for (i in rows) if (size[i] == last) print rows[i] }' | sort -u)
        for repeat in 0 1 2 3 4 5 6 7 8 9; do
            missing=()
            for arm in adaptive baseline core-set tta; do
                grep -qx "$arm $repeat" <<<"$finished" || missing+=("$arm")
            done
            for ((i = 0; i < ${#missing[@]}; i += 2)); do
                arms=$(IFS=,; echo "${missing[*]:i:2}")
                name="r$repeat-${arms//,/+}"
                out="$WORK/paper-$mode-$name"
                kept="$kept_root/$name"
                resume=()
                if [ -f "$kept/results.json" ]; then
                    cp -r "$kept" "$out"
                    resume=(--resume)
                fi
                job "paper_${mode}_$name" "$SULA" experiment --protocol paper --mode "$mode" \
                    --repeats 10 --shard "$repeat/10" --arms "$arms" --device cuda --out "$out" \
                    "${resume[@]}" &
            done
        done
    done
    ;;
*) echo "unknown part $PART"; exit 2 ;;
esac
wait
echo "all jobs ended after $(($(date +%s) - start)) s" | tee -a "$WORK/lease.txt"
for f in "$WORK"/*.log; do
    echo "--- $(basename "$f")"
    grep -v '^\s*$' "$f" | tail -n 25
done >>"$WORK/lease.txt"
# The paper-sized shards' rounds/ (about 10 MB a mode) stay behind: resuming and merging
# need only results.csv and results.json, and the working tree that travels is limited.
# Checkpoints come back as files of their own (16 MiB each at most), not in the archive.
tar czf "$OUT/lease.tgz" --exclude='./paper-*/rounds' --exclude='*.safetensors' -C "$WORK" .
cp "$WORK/lease.txt" "$OUT/"
for ckpt in "$WORK"/*.safetensors; do
    [ -f "$ckpt" ] && cp "$ckpt" "$OUT/"
done
