#!/usr/bin/env bash
# Training-recipe ablation for GauntNet (configs/gaunt_md.yaml, MACE's size) on one MD data set:
# the full recipe, then one change at a time, each for the same number of epochs; then one table.
#   tools/ablation_md.sh [DATA] [NAME] [EPOCHS]
# e.g. tools/ablation_md.sh data/md_CH3CH2OH_xtb.extxyz ethanol 15
set -euo pipefail
DATA=${1:-data/md_CH3CH2OH_xtb.extxyz}
NAME=${2:-ethanol}
EPOCHS=${3:-15}
OUT=results/mlip/ablation_${NAME}
EQ=${EQUISCALE:-.venv/bin/equiscale}
export OMP_NUM_THREADS=1
declare -A CHANGES=(
  [full]=""
  [float32]="precision=32-true"
  [no_ema]="ema_decay=0.0"
  [no_amsgrad]="amsgrad=false"
  [loss_1to10]="data_args.force_weight=10.0"
  [loss_1to1000]="data_args.force_weight=1000.0"
  [no_atom_refs]="data_args.atom_refs=false"
  [bessel]="model_args.radial=bessel"
  [lr_3e-3]="lr=3.0e-3"
  [channels_16]="model_args.channels=16"
  [layers_3]="model_args.num_layers=3"
)
runs=()
for name in full float32 no_ema no_amsgrad loss_1to10 loss_1to1000 no_atom_refs bessel lr_3e-3 channels_16 layers_3; do
  sets=(--set "data_args.path=$DATA" --set max_time=null)
  [ -n "${CHANGES[$name]}" ] && sets+=(--set "${CHANGES[$name]}")
  if [ ! -f "$OUT/$name/results.json" ]; then
    "$EQ" train --config configs/gaunt_md.yaml "${sets[@]}" --epochs "$EPOCHS" --out "$OUT/$name"
  fi
  runs+=("$OUT/$name/results.json")
done
"$EQ" bench mlip --runs "${runs[@]}" --title "GauntNet recipe ablation, $NAME, $EPOCHS epochs" \
  --out "$OUT/table.json"
