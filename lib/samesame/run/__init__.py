"""run: the machinery of a run: settings (configs/base.yaml + profile, typed), the papermill pipeline, the
run folder and its artefacts (which image model, the fitted matcher), the offline Kaggle bundle.

May import core, data, image, text and match; never study.
"""
