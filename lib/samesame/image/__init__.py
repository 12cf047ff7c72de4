"""image: the image side: photos and perceptual hashes, backbones with offline ImageNet weights (the
registry in :mod:`samesame.image.backbones`), embedding with a cache, retrieval levers, fine-tuning.

May import core and data; never text, match, run or study.
"""
