#!/usr/bin/env bash
# The recipe of the trained tiny weights shipped in weights/ (see weights/README.md and weights/MANIFEST.json).
#
#   bash scripts/train-tiny-weights.sh [ONLY...]      # e.g. ONLY = restormer-tiny-dn25
#
# Env: OUT_DIR (default weights/), WORK_DIR (run directories; default /tmp/irlens-tiny-weights).
# Data: the built-in images (data/*.png) plus data/extra/*.png (data/SOURCES.md), linked into one folder whose
# sorted names put the held-out images last: camera, coffee, rocket are never trained on (--eval-count 3).
# One core per run (the wasm backend is single-threaded); about 35 minutes for all eight on an idle core.
# Independent runs: two invocations with disjoint ONLY lists may run side by side.
# After training, `npx tsx scripts/evaluate-tiny-weights.ts` measures the held-out PSNR/SSIM of each model against
# its degraded input and writes weights/MANIFEST.json.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT_DIR="${OUT_DIR:-$ROOT/weights}"
WORK_DIR="${WORK_DIR:-/tmp/irlens-tiny-weights}"
DATA="$WORK_DIR/data"
TRAIN_IMAGES="astronaut brick chelsea grass gravel hubble_deep_field retina extra/ascent extra/cell extra/face"
EVAL_IMAGES="camera coffee rocket"

mkdir -p "$OUT_DIR" "$DATA"
# ln -sf, never rm: a second invocation running side by side must not pull images from under the first.
for f in $TRAIN_IMAGES; do ln -sf "$ROOT/data/$f.png" "$DATA/train-$(basename "$f").png"; done
for f in $EVAL_IMAGES; do ln -sf "$ROOT/data/$f.png" "$DATA/zeval-$f.png"; done

# name model tasks steps batch patch
# Deblurring: restormer-tiny's default weights are trained on disk (defocus) blur of radius 2, a fixed kernel a tiny
# network learns to invert in a few hundred steps; on random motion blur (the *-motion weights) this budget gains
# only about 0.1 dB. mprnet-tiny ships its motion-blur weights (the default of mprnet-tiny).
RUNS=(
  "restormer-tiny-motion    restormer-tiny blur-motion      1200 4 48"
  "mprnet-tiny-motion       mprnet-tiny    blur-motion       600 4 48"
  "restormer-tiny-deblur    restormer-tiny blur-defocus-r2   300 4 48"
  "swinir-tiny-sr-x2        swinir-tiny    sr-x2             600 4 48"
  "edt-tiny-sr-x2           edt-tiny       sr-x2             800 4 48"
  "restormer-tiny-dn25      restormer-tiny dn-25             300 4 48"
  "swinir-tiny-dn25         swinir-tiny    dn-25             400 4 48"
  "edt-tiny-dn25            edt-tiny       dn-25             400 2 96"
  "edt-tiny-sr-x2-dn25      edt-tiny       sr-x2,dn-25       500 2 96"
)

# Second stages: `pretrain finetune` of a first stage's weights on the same task (name task steps batch patch lr).
# SwinIR-tiny's SR x2 is still below bicubic after 600 steps; 400 more steps (seed 1) continue it.
STAGE2=(
  "swinir-tiny-sr-x2        sr-x2  400 4 48 5e-4"
)

for run in "${RUNS[@]}"; do
  read -r name model tasks steps batch patch <<<"$run"
  if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then continue; fi
  dir="$WORK_DIR/$name"
  args=(pretrain train --model "$model" --tasks "$tasks" --steps "$steps" --batch "$batch" --patch "$patch"
        --lr 5e-4 --warmup 50 --schedule cosine --seed 0 --data "$DATA" --eval-count 3
        --eval-every 0 --ckpt-every 300 --log-every 10 --no-progress --run-dir "$dir")
  echo "== $name: irlens ${args[*]}"
  start=$(date +%s)
  # A failed start is retried from the last complete checkpoint (--resume), e.g. after an interrupted machine.
  for attempt in 1 2 3; do
    if [ -f "$dir/model.safetensors" ]; then break; fi
    if [ -f "$dir/run.json" ]; then extra=(--resume); else extra=(); fi
    (cd "$ROOT" && npx tsx src/cli/main.ts "${args[@]}" "${extra[@]}") && break || { echo "attempt $attempt failed"; sleep 60; }
  done
  [ -f "$dir/model.safetensors" ] || { echo "$name: training failed"; exit 1; }
  cp "$dir/run.json" "$OUT_DIR/.$name.run.json"
  final="$dir/model.safetensors"
  for st in "${STAGE2[@]}"; do
    read -r sname stask ssteps sbatch spatch slr <<<"$st"
    [ "$sname" = "$name" ] || continue
    sdir="$WORK_DIR/$name-stage2"
    sargs=(pretrain finetune --from "$dir/model.safetensors" --task "$stask" --steps "$ssteps" --batch "$sbatch" --patch "$spatch"
           --lr "$slr" --warmup 20 --schedule cosine --seed 1 --data "$DATA" --eval-count 3
           --eval-every 0 --ckpt-every 100 --log-every 10 --no-progress --run-dir "$sdir")
    echo "== $name (stage 2): irlens ${sargs[*]}"
    for attempt in 1 2 3; do
      if [ -f "$sdir/model.safetensors" ]; then break; fi
      if [ -f "$sdir/run.json" ]; then extra=(--resume); else extra=(); fi
      (cd "$ROOT" && npx tsx src/cli/main.ts "${sargs[@]}" "${extra[@]}") && break || { echo "attempt $attempt failed"; sleep 60; }
    done
    [ -f "$sdir/model.safetensors" ] || { echo "$name: stage 2 failed"; exit 1; }
    cp "$sdir/run.json" "$OUT_DIR/.$name.stage2.run.json"
    final="$sdir/model.safetensors"
  done
  cp "$final" "$OUT_DIR/$name.safetensors.tmp" && mv "$OUT_DIR/$name.safetensors.tmp" "$OUT_DIR/$name.safetensors"
  echo "== $name done in $(( $(date +%s) - start )) s"
done
