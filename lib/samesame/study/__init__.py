"""study: what the notebooks tell: the Answers, the seed study's numbers, RESULTS.md, EDA tables, error
analysis and figures.

May import every other subpackage; nothing imports it but the notebooks.
"""
