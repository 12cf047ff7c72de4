"""core: what every side shares and nothing of samesame below it: the competition metric, kNN search
and threshold sweeps, label-group splits and folds, the ArcFace head, atomic folder writes.

Imports no other samesame subpackage.
"""
