"""The Keras model code on another Keras 3 backend: the model modules' tests rerun with KERAS_BACKEND=jax (the CPU
jax wheel pinned in requirements.txt). Many GPU machines carry JAX or PyTorch but not a CUDA TensorFlow, and the
models, ArcFace head, fine-tuning and title encoder are written in ``keras.ops`` so that they run there too."""

import os
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow

MODEL_TESTS = ("tests/test_arcface.py", "tests/test_backbones.py", "tests/test_torch_weights.py",
               "tests/test_finetune.py", "tests/test_title_model.py", "tests/test_e5.py")
# what does not differ between backends: Keras' own applications beyond the one (ResNet50) that checks our wrapper
SAME_ON_EVERY_BACKEND = ("not ((every_registered_backbone or keras_app_wrapper)"
                         " and (efficientnetb0 or efficientnetv2 or inceptionv3 or convnext))")


def test_the_model_modules_pass_under_the_jax_backend():
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        pytest.skip("this run already uses another backend")
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    backend = subprocess.run([sys.executable, "-c", "import keras; print(keras.config.backend())"], env=env,
                             capture_output=True, text=True, check=True).stdout.split()[-1]
    assert backend == "jax"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", SAME_ON_EVERY_BACKEND,
                           *MODEL_TESTS], env=env, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout.splitlines()[-1]
