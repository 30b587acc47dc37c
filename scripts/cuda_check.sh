#!/usr/bin/env bash
# The checks that need a GPU, in one go: the CUDA-marked tests, the article on the GPU, the
# benchmark's CUDA rows, a 100M-parameter MLP's first step (curvature false / auto / true) and 30M
# rows of Parquet streamed to the GPU. Run from the repository root on a machine with CUDA; CI has none.
#   bash scripts/cuda_check.sh [--quick]      (--quick: the benchmark at small N)
set -uo pipefail
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name(0))" || exit 1
status=0
python -m pytest -q -m cuda -rs tests || status=1
out=$(mktemp -d)
python scripts/train.py --config configs/article.yaml --trainer.logger.init_args.save_dir "$out" || status=1
cat "$out"/article/version_0/summary.json || status=1
python scripts/benchmark.py --cuda-only "$@" || status=1
python scripts/first_step.py --hidden 5773 5773 5773 5773 --quick || status=1
python scripts/table_benchmark.py --rows 0 --stream-rows 30000000 --repeats 1 || status=1
exit $status
