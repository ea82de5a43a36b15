#!/usr/bin/env bash
# `make demo`: phantom BRATS data on the MNI brain (--anatomy=mni) -> build -> train
# Fproi-GAN at 64x64 -> export -> evaluate (prints the paper-style table) -> synthesize
# paired data. Runs on a 2-core CPU in minutes.
# Extra arguments go to every launch.py call, e.g. `bash scripts/demo.sh --config.train.num_steps=30`.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
DEMO=runs/demo
RUN=$DEMO/fproi_gan
LAUNCH=("$PY" launch.py --config=configs/demo.py --workdir="$RUN" "$@")

if [ -d "$DEMO/raw/HGG" ]; then
  echo "== phantom BRATS data: already in $DEMO/raw"
else
  echo "== writing phantom BRATS data to $DEMO/raw"
  "$PY" -m data_builders.phantom brats --anatomy=mni --out="$DEMO/raw.tmp"
  rm -rf "$DEMO/raw" && mv "$DEMO/raw.tmp" "$DEMO/raw"
fi

echo "== building the brats2017 dataset into $DEMO/tfds"
"$PY" -m data_builders brats2017 --manual_dir="$DEMO/raw" --data_dir="$DEMO/tfds"

echo "== training (resumes if $RUN has checkpoints)"
"${LAUNCH[@]}" --mode=train

echo "== exporting the generators"
"${LAUNCH[@]}" --mode=export

echo "== evaluating on the test split"
"${LAUNCH[@]}" --mode=evaluate --config.eval.checkpoint="$RUN/export"

echo "== synthesizing paired data from the test ROIs"
"${LAUNCH[@]}" --mode=synthesize --config.eval.checkpoint="$RUN/export"

cat <<DONE

Demo outputs:
  training run, TensorBoard logs, sample grids: $RUN
  inference export:                            $RUN/export
  metrics, tables (summary.md) and figures:    $RUN/eval/Fproi-GAN
  synthetic pairs (PNG, NIfTI, TFDS dataset):  $RUN/synthetic
DONE
