#!/usr/bin/env bash
# Train one Fashion-MNIST run of an ensemble (BENCHMARKS.md, session 10), all taught by the
# committed CNN teacher (results/fashion-teacher-cnn), one thread each:
#
#   benchmarks/fashion_members.sh dense NAME [options]   dense, learned connections, 4 x 8000 gates, 20 epochs,
#                                                         then 4 epochs --gate-cost 1                (~12 min)
#   benchmarks/fashion_members.sh small NAME [options]   fashion-conv, --gate-cost 0.5 for 30 epochs, then 4
#                                                         epochs at cost 2 and 4 on the discrete gates (~30 min)
#   benchmarks/fashion_members.sh kd NAME [options]      fashion-conv for 30 epochs, then 2 epochs on the
#                                                         discrete gates                             (~45 min)
#
# Options after NAME go to the first stage (e.g. --seed 3, --widths ..., --conv ...). The run ends
# in runs/NAME (its stages in runs/NAME-s1, runs/NAME-c2); merge runs with 'diffgates merge'.
set -euo pipefail
cd "$(dirname "$0")/.."
recipe=$1 name=$2
shift 2
dg=.venv/bin/diffgates
t15=0.0625,0.125,0.1875,0.25,0.3125,0.375,0.4375,0.5,0.5625,0.625,0.6875,0.75,0.8125,0.875,0.9375
taught=(--teacher results/fashion-teacher-cnn --distill-weight 0.9 --activations bfloat16 --threads 1 --quiet)
case $recipe in
  dense)
    $dg train --dataset fashion-mnist --widths 8000,8000,8000,8000 --encoder-bits 3 --tau 20 \
      --connections learned --candidates 8 --epochs 20 "${taught[@]}" "$@" --out "runs/$name-s1"
    $dg train --config "runs/$name-s1/config.yaml" --init-from "runs/$name-s1" --gate-cost 1 --epochs 4 \
      --lr 0.005 --lr-schedule cosine --out "runs/$name" --quiet
    ;;
  small)
    $dg train --model fashion-conv --encoder-thresholds $t15 --gate-cost 0.5 --epochs 30 "${taught[@]}" "$@" \
      --out "runs/$name-s1"
    $dg train --config "runs/$name-s1/config.yaml" --init-from "runs/$name-s1" --gate-cost 2 --epochs 4 \
      --lr 0.005 --lr-schedule cosine --out "runs/$name-c2" --quiet
    $dg train --config "runs/$name-c2/config.yaml" --init-from "runs/$name-c2" --forward hard --lr 0.002 \
      --lr-schedule cosine --epochs 4 --out "runs/$name" --quiet
    ;;
  kd)
    $dg train --model fashion-conv --encoder-thresholds $t15 --epochs 30 "${taught[@]}" "$@" --out "runs/$name-s1"
    $dg train --config "runs/$name-s1/config.yaml" --init-from "runs/$name-s1" --forward hard --lr 0.002 \
      --lr-schedule constant --epochs 2 --out "runs/$name" --quiet
    ;;
  *)
    echo "usage: $0 dense|small|kd NAME [options]" >&2
    exit 2
    ;;
esac
