import matplotlib
import pandas as pd
from PIL import Image

from samesame.data.listings import load_dataset
from samesame.study import eda, viz


def test_summary_counts(tiny_kaggle):
    ds = load_dataset(tiny_kaggle)
    shapes = eda.image_shapes(ds.train["image_path"].dropna(), progress=False)
    s = eda.summarize(ds.train, shapes)
    assert s["n_postings"] == 7 and s["n_groups"] == 3
    assert s["groups_of_size"] == {"2": 2, "3": 1}
    assert s["share_square_images"] == 1.0 and s["n_images_on_disk"] == 2
    table = eda.size_table(ds.train)
    assert table.loc[3, "n_listings"] == 3
    assert eda.gallery_groups(ds.train, 2)[0] == 1  # the group whose listings have images comes first


def test_image_shapes_survive_bad_files(tmp_path):
    Image.new("RGB", (30, 20)).save(tmp_path / "a.jpg")
    (tmp_path / "b.jpg").write_bytes(b"")
    shapes = eda.image_shapes(pd.Series([str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")]), progress=False)
    assert shapes.iloc[0].tolist() == [30, 20] and shapes.iloc[1].isna().all()


def test_real_dev_counts(shopee_dev):
    s = eda.summarize(load_dataset(shopee_dev).train)
    assert (s["n_postings"], s["n_groups"], s["groups_of_size"]["3"]) == (24293, 7765, 1261)


def test_plots_draw(tiny_kaggle):
    ds = load_dataset(tiny_kaggle)
    figs = [viz.plot_group_sizes(eda.size_table(ds.train), max_size=2), viz.plot_title_lengths(ds.train.title),
            viz.show_groups(ds.train, [1, 2]), viz.show_pair(ds.train, 0, 2, "x"),
            viz.plot_sweeps({"a": pd.DataFrame({"threshold": [1, 2], "mean_f1": [0.1, 0.2]})}, {"a": 1}),
            viz.plot_scores_bar(pd.DataFrame({"train_mean_f1": [0.5], "test_mean_f1": [0.6]}, index=["m"]))]
    assert all(isinstance(f, matplotlib.figure.Figure) and f.axes for f in figs)
    group_axes = figs[2].axes
    assert group_axes[0].images and "no image" in group_axes[5].texts[0].get_text()


def test_empty_tables_plot_a_note_instead_of_failing():
    fig = viz.plot_scores_bar(pd.DataFrame(columns=["train_mean_f1", "test_mean_f1"]))
    assert "nothing to plot" in fig.axes[0].texts[0].get_text()
    assert viz.plot_training_curves(pd.DataFrame(columns=["config", "epoch", "loss", "accuracy"])).axes
