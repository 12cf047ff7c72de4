"""text: the title side: normalisation, units and TF-IDF, the multilingual-e5-small transformer and the
fine-tuned title encoder, run by ONNX Runtime on a CPU (the registry of title models in :mod:`samesame.text.title_model`).

May import core and data; never image, match, run or study.
"""
