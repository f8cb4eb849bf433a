#!/usr/bin/env bash
# Markdown report of a change against a base revision: metrics diff and params diff.
# Usage: bench/pr_report.sh BASE_REV   (run after `dvc repro`, from the repository root)
set -euo pipefail
base="${1:?usage: pr_report.sh BASE_REV}"
dvc="${DVC:-dvc}"

# A --md table with only its header and separator rows has nothing to say.
table_or() {
  local table="$1" empty="$2"
  if [ "$(printf '%s\n' "$table" | grep -c '^|')" -gt 2 ]; then printf '%s\n' "$table"; else echo "$empty"; fi
}

echo "## Pipeline metrics against \`${base}\`"
echo
table_or "$("$dvc" metrics diff "$base" --md --precision 4)" "_no metric changes_"
echo
echo "## Parameters changed"
echo
table_or "$("$dvc" params diff "$base" --md)" "_no parameter changes_"
