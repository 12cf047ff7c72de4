#!/usr/bin/env bash
# Download and unpack the Shopee competition with the Kaggle CLI (`make data`). Never prints the key.
set -euo pipefail
dest=${1:-data/shopee-product-matching}
kaggle=.venv/bin/kaggle
if [[ -z "${KAGGLE_USERNAME:-}" || -z "${KAGGLE_KEY:-}" ]] && [[ ! -f "${KAGGLE_CONFIG_DIR:-$HOME/.kaggle}/kaggle.json" ]]; then
  cat <<'MSG'
No Kaggle credentials found. To download the competition data:
  1. On kaggle.com: Account -> Settings -> API -> "Create New Token" (downloads kaggle.json).
  2. mkdir -p ~/.kaggle && mv kaggle.json ~/.kaggle/ && chmod 600 ~/.kaggle/kaggle.json
     (or export KAGGLE_USERNAME and KAGGLE_KEY).
  3. Accept the competition rules at https://www.kaggle.com/c/shopee-product-matching/rules
  4. make data
MSG
  exit 1
fi
[[ -x $kaggle ]] || { echo "run 'make venv' first (the Kaggle CLI is in requirements.txt)"; exit 1; }
mkdir -p "$dest"
$kaggle competitions download -c shopee-product-matching -p "$dest"
unzip -q -o "$dest/shopee-product-matching.zip" -d "$dest" && rm "$dest/shopee-product-matching.zip"
echo "data ready in $dest: make all DATA_DIR=$dest"
