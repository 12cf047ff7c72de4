"""samesame: which marketplace listings are the same product?

One module per concept: data, sample, images, phash, backbones, embed, neighbors,
text, fusion, metrics, submission, runs, viz, pipeline.
"""

__version__ = "0.1.0"
