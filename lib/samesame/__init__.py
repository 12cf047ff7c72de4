"""samesame: which marketplace listings are the same product?

The folders are the architecture, each importing only those before it in this list:
core (metric, kNN, splits) -> data (Kaggle layout, sample) -> image | text (the two sides)
-> match (candidates, recipe, tuning, the matcher) -> run (settings, pipeline, artefacts, Kaggle bundle)
-> study (answers, results, figures). docs/architecture.md draws the way the data takes.
"""

__version__ = "0.1.0"
