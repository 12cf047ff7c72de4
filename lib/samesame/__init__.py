"""samesame: which marketplace listings are the same product?

The folders are the architecture, each importing only those before it in this list:
core (metric, kNN, splits) -> data (Kaggle layout, sample) -> image | text (the two sides)
-> match (candidates, recipe, tuning, the matcher) -> run (settings, pipeline, artefacts, Kaggle bundle)
-> study (answers, results, figures). docs/architecture.md draws the way the data takes.
"""

import os

# TensorFlow's C++ start-up lines (absl's "log messages before absl::InitializeLog", cpu_feature_guard, oneDNN) are
# INFO lines: hidden here, before anything of samesame imports TensorFlow, so a notebook opened in Jupyter reads as
# clean as one run by make. Its warnings and errors still print; a TF_CPP_MIN_LOG_LEVEL the user set is kept.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

__version__ = "0.1.0"
