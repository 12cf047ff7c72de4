"""Each notebook's answer, as Markdown, from a run's recorded metrics and the seed's numbers.

Outputs are stripped from the committed notebooks, so the answer has to be
re-rendered from ``metrics.json`` wherever it is read: the notebook's last cell
and RESULTS.md call the same :func:`answer`. The verdict is stated plainly:
a run that contradicts the seed says so.
"""

from __future__ import annotations

from typing import Callable

from samesame.study.seed import SEED, SEED_BEST, SEED_EDA

TIE = 0.005
"""Mean-F1 differences smaller than this are called a tie (on a few hundred listings it is about one listing)."""
REPRODUCED = 0.02
"""A score within this of the seed's reproduces it."""


def answer(notebook: str, metrics: dict) -> str:
    """Markdown (one bold sentence, then a table) answering ``notebook``'s question from a run's metrics.json."""
    if notebook not in ANSWERS:
        raise ValueError(f"no answer for notebook {notebook!r}; known: {sorted(ANSWERS)}")
    if not metrics.get(notebook):
        return (f"**Answer:** {notebook} recorded no metrics in this run: execute it first "
                f"(e.g. `make all`, or its own target with the same `RUN=`).")
    sample = metrics[notebook].get("study_sample")
    return ANSWERS[notebook](metrics) + ("" if not sample else "\n\n" + sample_note(sample))


def sample_note(sample: dict) -> str:
    """The sentence that says a study question was answered on a sample of label groups, and how large."""
    sizes = " and ".join(f"{s['listings']:,} of {s['of']:,} {split}" for split, s in sample.items())
    return (f"*Answered on whole label groups: {sizes} listings (`study.max_listings`); the fit, the shipped "
            "matcher and 07 use all of train.*")


def markdown_table(rows: list[dict]) -> str:
    """A GitHub Markdown table from dicts sharing keys; floats with 3 decimals, None as a dash."""
    if not rows:
        return ""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def versus_seed(ours: float, seed: float, label: str = "") -> str:
    """'reproduces the seed's 0.613 (-0.011)' or 'is 0.050 above/below the seed's [label ]0.613'."""
    diff, name = ours - seed, f"the seed's {label + ' ' if label else ''}{seed:.3f}"
    if abs(diff) < REPRODUCED:
        return f"reproduces {name} ({diff:+.3f})"
    return f"is {abs(diff):.3f} {'above' if diff > 0 else 'below'} {name}"


def _gain_verdict(gain: float, seed_gain: float, claim: str) -> str:
    """Whether our gain has the seed's sign: 'confirms' / 'contradicts' the claim, ties named as such."""
    if abs(gain) < TIE:
        return f"a tie ({gain:+.3f}, seed {seed_gain:+.3f}): this run does **not** reproduce the seed's finding that {claim}"
    if (gain > 0) == (seed_gain > 0):
        return f"{gain:+.3f} (seed {seed_gain:+.3f}): this run **confirms** that {claim}"
    return f"{gain:+.3f} (seed {seed_gain:+.3f}): this run **contradicts** the seed's finding that {claim}"


def _seed_rows(*keys: str) -> list[dict]:
    return [{"method": f"seed: {SEED[k].method}", "train mean F1": SEED[k].train_mean_f1,
             "test mean F1": SEED[k].test_mean_f1} for k in keys]


def _eda(metrics: dict) -> str:
    e = metrics["01_eda"]
    sizes = {int(k): v for k, v in e["groups_of_size"].items()}
    commonest = max(sizes, key=sizes.get)
    share = sizes.get(2, 0) / e["n_groups"]
    seed_share = SEED_EDA["groups_of_size_2"] / SEED_EDA["n_groups"]
    shape = ("As in the seed, pairs are the most common group size" if commonest == 2 else
             f"Unlike the seed (pairs most common), groups of {commonest} are the most common here")
    square = e.get("share_square_images")
    rows = [
        {"quantity": "listings", "this run": e["n_postings"], "seed (Kaggle train.csv)": SEED_EDA["n_postings"]},
        {"quantity": "groups", "this run": e["n_groups"], "seed (Kaggle train.csv)": SEED_EDA["n_groups"]},
        {"quantity": "groups of 2", "this run": sizes.get(2, 0), "seed (Kaggle train.csv)": SEED_EDA["groups_of_size_2"]},
        {"quantity": "share of groups that are pairs", "this run": share, "seed (Kaggle train.csv)": seed_share},
        {"quantity": "largest group", "this run": e["largest_group"], "seed (Kaggle train.csv)": None},
        {"quantity": "share of square images", "this run": square,
         "seed (Kaggle train.csv)": SEED_EDA["share_square_images"]},
    ]
    return (f"**Answer:** {e['n_postings']:,} listings in {e['n_groups']:,} product groups; {share:.0%} of the groups "
            f"are pairs (seed: {seed_share:.0%}). {shape}, so a matcher mostly has to find one other listing."
            + (" No image is on disk, so image shapes are unknown." if square is None else "")
            + "\n\n" + markdown_table(rows))


def _phash(metrics: dict) -> str:
    p, s = metrics["02_phash"], SEED["phash"]
    rows = [{"method": f"phash, ≤ {p['threshold']:g} bits (this run)", "train mean F1": p["train_mean_f1"],
             "test mean F1": p["test_mean_f1"]}] + _seed_rows("phash")
    return (f"**Answer:** a perceptual hash matching listings within {p['threshold']:g} bits scores "
            f"{p['test_mean_f1']:.3f} test mean F1 ({p['train_mean_f1']:.3f} train), which "
            f"{versus_seed(p['test_mean_f1'], s.test_mean_f1)}.\n\n" + markdown_table(rows))


def _backbones(metrics: dict) -> str:
    b = metrics["03_backbone_compare"]
    models = {name: row for name, row in b.items() if isinstance(row, dict)}
    ran = {name: row for name, row in models.items() if row.get("test_mean_f1") is not None}
    skipped = sorted(set(models) - set(ran))
    best = ran[b["best"]]
    phash = metrics.get("02_phash") or {}
    reference = phash.get("test_mean_f1", SEED["phash"].test_mean_f1)
    source = "this run's phash" if phash else "the seed's phash (02 did not run)"
    seed_gain = SEED["pretrained"].test_mean_f1 - SEED["phash"].test_mean_f1
    rows = [{"method": name, "weights": row["weights"].split(" (")[0], "train mean F1": row["train_mean_f1"],
             "test mean F1": row["test_mean_f1"]} for name, row in ran.items()]
    if phash:
        rows.append({"method": "phash (02, this run)", "weights": "—", "train mean F1": phash["train_mean_f1"],
                     "test mean F1": phash["test_mean_f1"]})
    rows += _seed_rows("phash", "pretrained")
    text = (f"**Answer:** the best pretrained backbone chosen on train, {b['best']}, scores "
            f"{best['test_mean_f1']:.3f} test mean F1 against {source} {reference:.3f}: "
            f"{_gain_verdict(best['test_mean_f1'] - reference, seed_gain, 'a pretrained CNN beats the hash')}. "
            f"Its score {versus_seed(best['test_mean_f1'], SEED['pretrained'].test_mean_f1, 'EfficientNetB0')}.")
    if skipped:
        text += f" Skipped (no ImageNet weights on this machine): {', '.join(skipped)}."
    return text + "\n\n" + markdown_table(rows)


def _finetune(metrics: dict) -> str:
    f = metrics["04_finetune"]
    seed_gain = SEED["finetuned"].test_mean_f1 - SEED["pretrained"].test_mean_f1
    if f.get("skipped"):
        return (f"**Answer:** nothing was fine-tuned in this run ({f['skipped']}), so the seed's gain from "
                f"fine-tuning ({seed_gain:+.3f} test) is not tested here.\n\n"
                + markdown_table(_seed_rows("pretrained", "finetuned")))
    rows = f["rows"]
    pretrained, best = rows[0], f["best"]
    per_head = {}
    for row in rows[1:]:
        if row["selection_mean_f1"] > per_head.get(row["head"], {}).get("selection_mean_f1", -1):
            per_head[row["head"]] = row
    shown = list({r["model"]: r for r in [pretrained, best, *per_head.values()]}.values())
    table = [{"method": r["model"], "head": r["head"], "unfreeze": r["unfreeze"], "epochs": r["epochs"],
              "selection mean F1": r["selection_mean_f1"], "train mean F1": r["train_mean_f1"],
              "test mean F1": r["test_mean_f1"]} for r in shown] + _seed_rows("pretrained", "finetuned")
    gain = best["test_mean_f1"] - pretrained["test_mean_f1"]
    if best["model"] == pretrained["model"]:
        chosen = "selection on held-out train groups kept the pretrained backbone: no fine-tuned model beat it"
    else:
        chosen = (f"selection on held-out train groups chose {best['model']} ({best['head']} head, unfreeze "
                  f"{best['unfreeze']}, {best['epochs']} epochs)")
    heads = ""
    if {"softmax", "arcface"} <= set(per_head):
        a, b = per_head["arcface"]["selection_mean_f1"], per_head["softmax"]["selection_mean_f1"]
        winner = "ArcFace" if a > b else "softmax" if b > a else "neither"
        heads = (f" Softmax or ArcFace: {winner} wins on held-out train groups (best snapshot {a:.3f} ArcFace vs "
                 f"{b:.3f} softmax).")
    return (f"**Answer:** {chosen}; test mean F1 {pretrained['test_mean_f1']:.3f} → {best['test_mean_f1']:.3f}, "
            f"{_gain_verdict(gain, seed_gain, 'fine-tuning helps')}.{heads}\n\n" + markdown_table(table))


def _metric(metrics: dict) -> str:
    c = metrics["05_metric"]
    eu, co = c["euclidean"], c["cosine"]
    seed_gain = SEED["cosine"].test_mean_f1 - SEED["finetuned"].test_mean_f1
    rows = [{"method": f"{c['model']}, {name}", "threshold": float(m["threshold"]), "train mean F1": m["train_mean_f1"],
             "test mean F1": m["test_mean_f1"]} for name, m in (("euclidean", eu), ("cosine", co))]
    rows += _seed_rows("finetuned", "cosine")
    return (f"**Answer:** with {c['model']}, cosine scores {co['test_mean_f1']:.3f} and Euclidean "
            f"{eu['test_mean_f1']:.3f} test mean F1; cosine minus Euclidean is "
            f"{_gain_verdict(co['test_mean_f1'] - eu['test_mean_f1'], seed_gain, 'cosine beats Euclidean distance')}."
            "\n\n" + markdown_table(rows) + _levers(c.get("levers")))


def _levers(record: dict | None) -> str:
    """05's second question: which training-free levers win on the train split's group folds, and which image
    model ships (the pretrained one with them, or 04's fine-tuned one)."""
    if not record:
        return ""
    study = record["study"]
    if study.get("skipped"):
        return f"\n\nLevers: {study['skipped']}."
    table = {r["levers"]: r for r in study["table"]}
    plain, kept = table["plain"], table[study["chosen"]]
    final = study["final"]
    text = (f"\n\n**Levers without training**, on {record['candidates']['pretrained']['backbone']} (held-out mean F1 "
            f"over {sum(k.startswith('fold_') for k in plain)} label-group folds of the train split): plain "
            f"{plain['mean_f1']:.3f} ± {plain['std_f1']:.3f}; kept **{study['chosen']}** at {kept['mean_f1']:.3f} ± "
            f"{kept['std_f1']:.3f}. Refitted on the whole train split it scores {final['test_mean_f1']:.3f} test mean "
            f"F1 (train {final['train_mean_f1']:.3f}).")
    comparison = record.get("comparison")
    if comparison:
        whitened = [f" ({k[len('fine-tuned + '):]}: {v:.3f})" for k, v in comparison.items()
                    if k.startswith("fine-tuned + ")]
        text += (f" On 04's {comparison['selection groups']} selection rows it scores "
                 f"{comparison['pretrained + levers']:.3f} against the fine-tuned model's "
                 f"{comparison['fine-tuned (04)']:.3f}{''.join(whitened)} (the fine-tuned one must win by more than "
                 f"the folds' std, {comparison['noise']:.3f}).")
    shipped = ("the pretrained model with these levers" if record["base"]["kind"] != "finetuned" else
               "04's fine-tuned model" + (f" with PCA whitening {record['levers']['whiten']}"
                                          if record["levers"]["whiten"] else ""))
    rows = [{"levers": r["levers"], "held-out mean F1": r["mean_f1"], "std": r["std_f1"],
             "train mean F1": r["train_mean_f1"]} for r in study["table"]]
    return text + f" 06 and 07 use {shipped}.\n\n" + markdown_table(rows)


SINGLE_SIGNALS = ("phash", "tfidf", "learned title", "image")
"""Ablation rows that use one signal alone (titles: tfidf, learned title)."""


def _errors(metrics: dict) -> str:
    e = metrics["06_error_analysis"]
    rows = {r["method"]: r for r in e["ablation"]}
    best = rows["best"]
    singles = {name: rows[name]["mean_f1"] for name in SINGLE_SIGNALS if name in rows}
    top_single = max(singles, key=singles.get)
    no_title = max(v for k, v in singles.items() if k in ("phash", "image"))
    lead = best["mean_f1"] - singles[top_single]
    text = (f"**Answer:** fusing every signal (`best`, with the optional steps 07 ships) scores "
            f"{best['mean_f1']:.3f} mean F1 on the test split (searched within each half of the fit's encoder "
            f"split, which reads higher than one search over the whole split), {abs(lead):.3f} "
            f"{'above' if lead >= 0 else '**below**'} the best single signal ({top_single}, {singles[top_single]:.3f}). ")
    shipped = e.get("shipped")
    if shipped:
        text += (f"The shipped recipe, `{shipped['method']}`, chosen by cross-fitting over train.csv's label groups, "
                 f"is estimated at {shipped['mean_f1']:.3f} ± {shipped['std_f1']:.3f} mean F1 on unseen groups "
                 f"({shipped['folds']} held-out folds{_pool(shipped)}{_left_out(e.get('tuning_groups'))}). ")
        text += pool_cost(e.get("pool_curve"), e.get("pools"))
    if "image" in singles:
        text += (f"Images alone score {singles['image']:.3f} in those half pools, which "
                 f"{versus_seed(singles['image'], SEED_BEST.test_mean_f1, 'best image-only')} (05 searches "
                 "the whole test split). ")
    else:
        text += "No image vectors in this run, so there is no image-only row. "
    gain = best["mean_f1"] - no_title
    text += ("The seed's conclusion, add the product title to the image signals, "
             + ("**holds**" if gain >= TIE else "**does not hold**")
             + f": titles and fusion add {gain:+.3f} over the best image-side signal.")
    dropped = e.get("dropped_signals") or {}
    if dropped:
        text += " Dropped for want of data: " + "; ".join(f"{k} ({v})" for k, v in dropped.items()) + "."
    blame = e.get("blame", {})
    culprits = {k: v["false_positives"] for k, v in blame.items() if k != "none"}
    if culprits and max(culprits.values()) > 0:
        worst = max(culprits, key=culprits.get)
        text += f" Most false positives of `best` were also proposed by {worst} ({culprits[worst]:,} pairs)."
    table = [{"method": r["method"], "mean F1": r["mean_f1"], "precision": r["mean_precision"],
              "recall": r["mean_recall"]} for r in e["ablation"]]
    if shipped:
        table.append({"method": f"shipped: cross-fitted on train.csv ({shipped['folds']} held-out folds, "
                                f"std {shipped['std_f1']:.3f})", "mean F1": shipped["mean_f1"],
                      "precision": shipped.get("mean_precision"), "recall": shipped.get("mean_recall")})
    table.append({"method": f"seed: {SEED_BEST.method} (image only, test)", "mean F1": SEED_BEST.test_mean_f1})
    return text + "\n\n" + markdown_table(table)


def _submission(metrics: dict) -> str:
    s = metrics["07_submission"]
    row = {"method": s["method"], "rows": s["n_rows"], "matches per listing": s.get("mean_matches_per_listing"),
           "test mean F1": s.get("test_mean_f1")}
    seed = {"method": f"seed: {SEED_BEST.method}", "test mean F1": SEED_BEST.test_mean_f1}
    head = f"**Answer:** `submission.csv` holds {s['n_rows']:,} validated rows from `{s['method']}`, fit on train.csv"
    if s.get("test_mean_f1") is None:
        head += "; test.csv has no truth here, so the leaderboard scores it."
    else:
        head += (f"; scored against the test.csv truth it reaches {s['test_mean_f1']:.3f} mean F1, which "
                 f"{versus_seed(s['test_mean_f1'], SEED_BEST.test_mean_f1, 'best image-only')} (on its own test split).")
    return head + "\n\n" + markdown_table([row, seed])


def _pool(estimate: dict) -> str:
    """Where an estimate was measured: the pool size its held-out folds were searched in."""
    return f", each searched in a pool of {estimate['pool_size']:,} listings" if estimate.get("pool_size") else ""


def pool_cost(curve: list[dict] | None, pools: dict | None) -> str:
    """What the pool size costs: each recipe's held-out F1 on the fold alone and in the padded pool, and how far
    the padding reached towards the target."""
    if not curve:
        return ""
    by_steps: dict[str, list[dict]] = {}
    for row in curve:
        by_steps.setdefault(row["steps"], []).append(row)
    parts = []
    for steps, rows in by_steps.items():
        small, large = min(rows, key=lambda r: r["pool"]), max(rows, key=lambda r: r["pool"])
        parts.append(f"`{steps}` {small['mean_f1']:.3f} with {small['pool']:,} listings → {large['mean_f1']:.3f} "
                     f"with {large['pool']:,}")
    half = (pools or {}).get("curve_half")
    where = f" (half {half}'s held-out folds, up to all of train around them)" if half else ""
    text = f"Searched among more listings of other products{where}, the held-out F1 falls: " + "; ".join(parts) + ". "
    target = (pools or {}).get("target")
    if target and pools.get("scored_in", target) < target:
        text += (f"The pool the matcher will face holds {target:,} listings; train.csv padded the held-out pools only "
                 f"to {pools['scored_in']:,}, so expect a little less there. ")
    return text


def _left_out(tuning_groups: dict | None) -> str:
    """The groups a fine-tuned image model trained on are left out of the recipe's tuning: say so, with counts."""
    if not tuning_groups or not tuning_groups.get("left out (the image model trained on them)"):
        return ""
    return (f"; tuned and scored on the {tuning_groups['tuned and scored on']} label groups the fine-tuned image "
            f"model never saw, its {tuning_groups['left out (the image model trained on them)']} training groups "
            "left out")


def _fit(metrics: dict) -> str:
    f = metrics["fit"]
    s = f["shipped"]
    text = (f"**Answer:** `make fit` ships `{f['method']}`. Of the step configurations cross-fitted over train.csv's "
            f"label groups ({s['folds']} held-out folds{_pool(s)}), `{f['chosen_steps']}` scored best: "
            f"{s['mean_f1']:.3f} ± {s['std_f1']:.3f} mean F1, the estimate for unseen groups"
            f"{_left_out(f.get('tuning_groups'))}. " + pool_cost(f.get("pool_curve"), f.get("pools")))
    if f.get("images_left_out"):
        text += f" Images: {f['images_left_out']}."
    if f.get("command"):
        text += f" Fitted by `{f['command']}` at commit {f.get('commit')}."
    if f.get("skipped"):
        text += " Not scored: " + "; ".join(f"{k} ({v})" for k, v in f["skipped"].items()) + "."
    table = [{"steps": r["steps"], "mean F1": r["mean_f1"], "std": r["std_f1"], "precision": r["mean_precision"],
              "recall": r["mean_recall"]} for r in f["selection"]]
    table.append({"steps": f"seed: {SEED_BEST.method} (image only, test)", "mean F1": SEED_BEST.test_mean_f1})
    return text + "\n\n" + markdown_table(table)


ANSWERS: dict[str, Callable[[dict], str]] = {
    "01_eda": _eda, "02_phash": _phash, "03_backbone_compare": _backbones, "04_finetune": _finetune,
    "05_metric": _metric, "fit": _fit, "06_error_analysis": _errors, "07_submission": _submission,
}
