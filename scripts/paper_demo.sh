#!/usr/bin/env bash
# `make paper-demo`: phantom BRATS data -> build -> train and evaluate every method of the
# paper's comparison at 64x64 (configs/paper_demo.py) -> tables, figures and Table 5 (the
# HGG/LGG classifier) in one report. 80 phantom cases on the MNI brain (--anatomy=mni): the
# classifier's 5-fold CV grouped by patient needs 5 patients of each grade in its training
# split (the synthesis test split). The six methods: the paper's five and Fproi-GAN + context.
# Resumes: finished runs and evaluations are skipped. Extra arguments go to launch.py, e.g.
# `bash scripts/paper_demo.sh --config.train.num_steps=30`.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
DEMO=runs/paper_demo
# JAX's persistent compilation cache: the 18 runs compile 6 train steps, and the segmenters
# of Table 6 one, so every seed after the first loads its programs instead of compiling
# them again (about 15 s of each 300-step run here).
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-$DEMO/jit_cache}"
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="${JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS:-0.5}"

if [ -d "$DEMO/raw/HGG" ]; then
  echo "== phantom BRATS data: already in $DEMO/raw"
else
  echo "== writing phantom BRATS data to $DEMO/raw"
  "$PY" -m data_builders.phantom brats --anatomy=mni --cases=80 --out="$DEMO/raw.tmp"
  rm -rf "$DEMO/raw" && mv "$DEMO/raw.tmp" "$DEMO/raw"
fi

echo "== building the brats2017 dataset into $DEMO/tfds"
"$PY" -m data_builders brats2017 --manual_dir="$DEMO/raw" --data_dir="$DEMO/tfds"

echo "== training and evaluating every method (skips what is done)"
"$PY" launch.py --config=configs/paper_demo.py --workdir="$DEMO" --mode=experiment "$@"

cat <<DONE

Paper demo outputs:
  runs and their evaluations:        $DEMO/<method>/seed_<k>/ (eval/<label>/)
  report (tables, figures), open it: $DEMO/report/index.html
  the same tables in Markdown:       $DEMO/report/report.md
  every number:                      $DEMO/report/summary.json
DONE
