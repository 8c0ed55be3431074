#!/usr/bin/env bash
# Architecture ablation for the tuned GauntNet (configs/gaunt_md_tuned.yaml) on one MD data set: the
# tuned model, then one architectural change at a time (MACE's element-dependent self-connection,
# channel-mixed many-body products, MACE's deeper radial MLP), same epochs, two runs at a time on
# one core each; then one table.
#   tools/ablation_gaunt_arch.sh [DATA] [NAME] [EPOCHS]
# e.g. tools/ablation_gaunt_arch.sh data/md_CH3CH2OH_xtb.extxyz ethanol 40
set -euo pipefail
DATA=${1:-data/md_CH3CH2OH_xtb.extxyz}
NAME=${2:-ethanol}
EPOCHS=${3:-40}
OUT=results/mlip/arch_ablation_${NAME}
EQ=${EQUISCALE:-.venv/bin/equiscale}
export OMP_NUM_THREADS=1
declare -A CHANGES=(
  [tuned]=""
  [self_connection]="model_args.self_connection=true"
  [many_body_mix]="model_args.many_body_mix=true"
  [radial_64x2]="model_args.radial_hidden=64 model_args.radial_layers=2"
)
NAMES=(tuned self_connection many_body_mix radial_64x2)
run_one() {
  local name=$1 sets=(--set "data_args.path=$DATA" --set max_time=null)
  for change in ${CHANGES[$name]}; do sets+=(--set "$change"); done
  [ -f "$OUT/$name/results.json" ] || "$EQ" train --config configs/gaunt_md_tuned.yaml "${sets[@]}" \
    --epochs "$EPOCHS" --out "$OUT/$name" > /dev/null
}
for ((i = 0; i < ${#NAMES[@]}; i += 2)); do
  run_one "${NAMES[i]}" & pid=$!
  [ $((i + 1)) -lt ${#NAMES[@]} ] && run_one "${NAMES[i + 1]}"
  wait "$pid"
done
runs=()
for name in "${NAMES[@]}"; do runs+=("$OUT/$name/results.json"); done
"$EQ" bench mlip --runs "${runs[@]}" --title "GauntNet architecture ablation, $NAME, $EPOCHS epochs" \
  --out "$OUT/table.json"
