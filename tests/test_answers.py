"""Answer cells: known metrics in, the verdict against the seed out (confirm, contradict, tie, skipped)."""

import pytest

from samesame.study.answers import ANSWERS, answer, markdown_table, versus_seed
from samesame.study.seed import SEED


def _phash(test=0.60, train=0.58):
    return {"threshold": 6.0, "train_mean_f1": train, "test_mean_f1": test}


def _ablation(**f1):
    return [{"method": m, "mean_f1": v, "mean_precision": 0.9, "mean_recall": 0.8} for m, v in f1.items()]


def _run(**overrides):
    metrics = {
        "01_eda": {"n_postings": 100, "n_groups": 40, "groups_of_size": {"2": 30, "3": 6, "4": 4}, "largest_group": 4,
                   "share_square_images": 1.0},
        "02_phash": _phash(),
        "03_backbone_compare": {
            "efficientnet_lite0": {"weights": "imagenet (pkg 0.1)", "threshold": 0.3, "train_mean_f1": 0.65,
                                   "test_mean_f1": 0.67},
            "vgg16": {"weights": "skipped: no weights"},
            "best": "efficientnet_lite0"},
        "04_finetune": {"rows": [
            {"model": "lite0-pretrained", "head": "none", "unfreeze": "none", "epochs": 0, "selection_mean_f1": 0.7,
             "train_mean_f1": 0.65, "test_mean_f1": 0.67},
            {"model": "lite0-arcface-layer-e9", "head": "arcface", "unfreeze": "layer", "epochs": 9,
             "selection_mean_f1": 0.8, "train_mean_f1": 0.76, "test_mean_f1": 0.72}]},
        "05_metric": {"model": "lite0-arcface-layer-e9", "euclidean": {"threshold": 1.0, "train_mean_f1": 0.66,
                                                                       "test_mean_f1": 0.64},
                      "cosine": {"threshold": 0.4, "train_mean_f1": 0.76, "test_mean_f1": 0.72}},
        "06_error_analysis": {"ablation": _ablation(phash=0.60, tfidf=0.76, image=0.70, best=0.85),
                              "blame": {"phash": {"false_positives": 3}, "tfidf": {"false_positives": 9},
                                        "none": {"false_positives": 0}}},
        "fit": {"method": "concat(tfidf+image)|phash+min2+pair_classifier", "chosen_steps": "pair classifier",
                "shipped": {"mean_f1": 0.8612, "std_f1": 0.0043, "folds": 4}, "skipped": {},
                "selection": [{"steps": "threshold rule", "mean_f1": 0.84, "std_f1": 0.01, "mean_precision": 0.85,
                               "mean_recall": 0.86},
                              {"steps": "pair classifier", "mean_f1": 0.8612, "std_f1": 0.0043,
                               "mean_precision": 0.87, "mean_recall": 0.88}]},
        "07_submission": {"method": "concat(tfidf+image)|phash", "n_rows": 445, "mean_matches_per_listing": 2.5,
                          "test_mean_f1": 0.82},
    }
    metrics["04_finetune"]["best"] = metrics["04_finetune"]["rows"][1]
    metrics.update(overrides)
    return metrics


def test_versus_seed_names_direction_and_size():
    assert versus_seed(0.602, 0.613) == "reproduces the seed's 0.613 (-0.011)"
    assert versus_seed(0.70, 0.613) == "is 0.087 above the seed's 0.613"
    assert versus_seed(0.50, 0.613) == "is 0.113 below the seed's 0.613"
    assert versus_seed(0.71, 0.724, "best image-only") == "reproduces the seed's best image-only 0.724 (-0.014)"


def test_every_answer_is_a_bold_sentence_and_a_table_with_the_seed():
    metrics = _run()
    for notebook in ANSWERS:
        text = answer(notebook, metrics)
        sentence, table = text.split("\n\n")
        assert sentence.startswith("**Answer:**") and table.startswith("| ")
        assert "seed" in table, notebook


def test_phash_answer_quotes_this_runs_and_the_seeds_numbers():
    text = answer("02_phash", _run())
    assert "within 6 bits scores 0.600 test mean F1 (0.580 train)" in text
    assert f"| seed: perceptual hash | {SEED['phash'].train_mean_f1:.3f} | {SEED['phash'].test_mean_f1:.3f} |" in text


def test_backbone_answer_contradicts_the_seed_when_the_hash_wins():
    assert "**confirms** that a pretrained CNN beats the hash" in answer("03_backbone_compare", _run())
    text = answer("03_backbone_compare", _run(**{"02_phash": _phash(test=0.75)}))
    assert "-0.080 (seed +0.058): this run **contradicts**" in text
    assert "Skipped (no ImageNet weights on this machine): vgg16." in text


def test_finetune_answer_when_selection_keeps_the_pretrained_model_or_nothing_trained():
    assert "chose lite0-arcface-layer-e9" in answer("04_finetune", _run())
    run = _run()
    run["04_finetune"]["rows"].append({"model": "lite0-softmax-layer-e9", "head": "softmax", "unfreeze": "layer",
                                       "epochs": 9, "selection_mean_f1": 0.75, "train_mean_f1": 0.7,
                                       "test_mean_f1": 0.7})
    assert "ArcFace wins on held-out train groups (best snapshot 0.800 ArcFace vs 0.750 softmax)" in answer(
        "04_finetune", run)
    run = _run()
    run["04_finetune"]["best"] = run["04_finetune"]["rows"][0]
    text = answer("04_finetune", run)
    assert "kept the pretrained backbone" in text and "does **not** reproduce" in text
    skipped = answer("04_finetune", _run(**{"04_finetune": {"rows": [], "best": {}, "skipped": "too few images"}}))
    assert "nothing was fine-tuned in this run (too few images)" in skipped and "not tested here" in skipped


@pytest.mark.parametrize("euclidean, verdict", [(0.64, "**confirms**"), (0.72, "a tie"), (0.75, "**contradicts**")])
def test_metric_answer_has_no_hedge(euclidean, verdict):
    run = _run()
    run["05_metric"]["euclidean"]["test_mean_f1"] = euclidean
    text = answer("05_metric", run)
    assert verdict in text and "should" not in text


def test_error_answer_reads_the_image_row_and_blames_a_signal():
    text = answer("06_error_analysis", _run())
    assert "0.090 above the best single signal (tfidf, 0.760)" in text
    assert "Images alone score 0.700" in text and "**holds**" in text
    assert "also proposed by tfidf (9 pairs)" in text
    no_images = _run(**{"06_error_analysis": {"ablation": _ablation(phash=0.6, tfidf=0.8, best=0.78)}})
    text = answer("06_error_analysis", no_images)
    assert "0.020 **below** the best single signal (tfidf" in text and "no image-only row" in text
    assert "cross-fitting" not in text                      # a run without the shipped matcher's estimate


def test_error_answer_reports_the_shipped_recipes_cross_fitted_estimate():
    run = _run()
    run["06_error_analysis"]["shipped"] = {"method": "blend(tfidf+title+phash)|phash+min2+pair_classifier",
                                           "mean_f1": 0.8612, "std_f1": 0.0043, "folds": 4}
    text = answer("06_error_analysis", run)
    assert ("`blend(tfidf+title+phash)|phash+min2+pair_classifier`, chosen by cross-fitting over train.csv's label "
            "groups, is estimated at 0.861 ± 0.004 mean F1 on unseen groups (4 held-out folds)") in text
    assert "| shipped: cross-fitted on train.csv (4 held-out folds, std 0.004) | 0.861" in text
    assert "Dropped for want of data" not in text


def test_error_answer_names_the_signals_dropped_for_want_of_data():
    run = _run()
    run["06_error_analysis"]["dropped_signals"] = {"tfidf": "every one of the 1,427 titles is empty",
                                                   "title": "every one of the 1,427 titles is empty"}
    assert ("Dropped for want of data: tfidf (every one of the 1,427 titles is empty); title (every one of the 1,427 "
            "titles is empty).") in answer("06_error_analysis", run)


def test_submission_answer_without_truth():
    run = _run()
    del run["07_submission"]["test_mean_f1"]
    assert "the leaderboard scores it" in answer("07_submission", run)
    assert "reaches 0.820 mean F1, which is 0.096 above the seed's best image-only 0.724" in answer("07_submission", _run())


def test_missing_notebook_and_unknown_notebook():
    assert "recorded no metrics in this run" in answer("05_metric", {"01_eda": {}})
    with pytest.raises(ValueError, match="no answer for notebook '08_x'"):
        answer("08_x", {})


def test_markdown_table_formats_and_escapes():
    assert markdown_table([{"a": 0.12345, "b": None}, {"a": 1234, "b": "x|y"}]).splitlines() == [
        "| a | b |", "|---|---|", "| 0.123 | — |", "| 1,234 | x\\|y |"]


def test_fit_answer_names_the_shipped_recipe_and_its_cross_fitted_estimate():
    text = answer("fit", _run())
    assert ("`make fit` ships `concat(tfidf+image)|phash+min2+pair_classifier`. Of the step configurations "
            "cross-fitted over train.csv's label groups (4 held-out folds), `pair classifier` scored best: 0.861 ± "
            "0.004 mean F1") in text
    assert "| threshold rule | 0.840 | 0.010 |" in text and "Not scored" not in text
    run = _run()
    run["fit"].update(command="python -m samesame.run.pipeline fit --profile kaggle --run d", commit="abc1234")
    assert "Fitted by `python -m samesame.run.pipeline fit --profile kaggle --run d` at commit abc1234." in answer("fit", run)
    assert "Images:" not in text
    run["fit"]["images_left_out"] = "only 20 of 24,293 train listings have a usable image"
    assert "Images: only 20 of 24,293 train listings have a usable image." in answer("fit", run)


def test_metric_answer_says_which_image_model_ships_and_with_which_levers():
    study = {"chosen": "PCA whitening 128", "final": {"train_mean_f1": 0.39, "test_mean_f1": 0.405},
             "table": [{"levers": "plain", "fold_0": 0.37, "mean_f1": 0.37, "std_f1": 0.01, "train_mean_f1": 0.36},
                       {"levers": "PCA whitening 128", "fold_0": 0.42, "mean_f1": 0.424, "std_f1": 0.008,
                        "train_mean_f1": 0.40}]}
    record = {"study": study, "candidates": {"pretrained": {"backbone": "efficientnet_lite0"}},
              "base": {"kind": "finetuned"}, "levers": {"flip": False, "whiten": 128},
              "comparison": {"selection groups": 143, "noise": 0.008, "pretrained + levers": 0.443,
                             "fine-tuned (04)": 0.446, "fine-tuned + PCA whitening 128": 0.47}}
    run = _run()
    run["05_metric"]["levers"] = record
    text = answer("05_metric", run)
    assert "kept **PCA whitening 128** at 0.424 ± 0.008" in text
    assert "0.443 against the fine-tuned model's 0.446 (PCA whitening 128: 0.470)" in text
    assert "06 and 07 use 04's fine-tuned model with PCA whitening 128" in text
    record["base"], record["comparison"] = {"kind": "pretrained"}, None
    assert "06 and 07 use the pretrained model with these levers" in answer("05_metric", run)
