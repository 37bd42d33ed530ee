#!/usr/bin/env bash
# Remake the sample inputs in examples/ with the project's own commands (`make examples`).
# A small synthetic cohort (seed 0) goes to git-ignored runs/examples/; from it: one FCS file,
# a CSV lab export of three patients and one JSON request body. Synthetic data, not patients.
set -euo pipefail
cd "$(dirname "$0")/.."
HCT=${HCT:-.venv/bin/hct}
work=runs/examples
rm -rf "$work"
$HCT simulate --patients 20 --cells 1000 --seed 0 --out "$work/cohort.h5" \
    --export-csv examples/export.csv --export-patients 3 \
    --export-fcs "$work/fcs" --fcs-patients 1 --export-json examples/sample.json
cp "$work"/fcs/*.fcs examples/sample.fcs
echo "examples/: sample.fcs, export.csv, sample.json"
