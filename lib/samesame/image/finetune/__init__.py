"""finetune: fine-tune an image backbone on the train split's label groups, with a softmax or an ArcFace head (04).

Why it is cheap enough for 2 CPU cores: only the top of the backbone trains (unfreeze "layer": the top conv
layer + its BN; "module": the last block stage + that layer) and everything below stays frozen with its
BatchNorms in inference mode, so the frozen trunk runs ONCE per image and view and only the small tail + head
trains on those cached features. That is the path for GPUs too (call
:func:`samesame.image.embed.configure_accelerator` first for mixed precision); no end-to-end loop exists.

Modules: ``models`` (trunk/tail surgery, the trainable models), ``views`` (augmented views, the trunk-feature
cache), ``train`` (the training loop, held-out-group scoring), ``grid`` (:func:`finetune_grid`: train, select,
save) and ``files`` (the results on disk; read them back only through :func:`stored_finetune`).

May import core, data and image only; never text, match, run or study.
"""

from samesame.image.finetune.files import Selection, StoredFinetune, backbone_from_embedder, stored_finetune
from samesame.image.finetune.grid import FinetuneResult, FinetuneSettings, finetune_grid

__all__ = ["FinetuneResult", "FinetuneSettings", "Selection", "StoredFinetune", "backbone_from_embedder",
           "finetune_grid", "stored_finetune"]
