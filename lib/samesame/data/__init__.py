"""data: the Kaggle layout in and out (reading and validating train/test csv, writing submission.csv) and
the generated sample (a small Kaggle-shaped dataset with rendered photos and a known truth).

May import core only.
"""
