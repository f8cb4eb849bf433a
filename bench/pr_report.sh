#!/usr/bin/env bash
# Markdown report of a change against a base revision: metrics diff and params diff.
# Usage: bench/pr_report.sh BASE_REV   (run after `dvc repro`, from the repository root)
set -euo pipefail
base="${1:?usage: pr_report.sh BASE_REV}"
dvc="${DVC:-dvc}"
echo "## Pipeline metrics against \`${base}\`"
echo
"$dvc" metrics diff "$base" --md --precision 4 || echo "_dvc metrics diff failed_"
echo
echo "## Parameters changed"
echo
out=$("$dvc" params diff "$base" --md || true)
if [ -n "$out" ]; then echo "$out"; else echo "_no parameter changes_"; fi
