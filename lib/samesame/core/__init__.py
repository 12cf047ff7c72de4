"""core: what every side shares and nothing of samesame below it: the competition metric, kNN search
and threshold sweeps, label-group splits and folds, the ArcFace head, atomic folder writes, hand-written
values checked against a dataclass field's type.

Imports no other samesame subpackage.
"""
