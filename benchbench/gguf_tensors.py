"""Reading one small tensor out of a GGUF file without parsing its whole header.

The ``gguf`` package's reader turns every metadata value into numpy views,
which takes seconds for a vocabulary of 50,000 strings; benchbench only needs
to know whether a file carries ``rope_freqs.weight`` (per-pair RoPE factors,
as Llama 3.1 files do) and its values. This walks the header (format version
2 or 3: magic, counts, key/value pairs, tensor infos) by skipping values.
"""

import struct
from pathlib import Path

import numpy as np

# sizes of GGUF's scalar value types, by type id
_SCALAR_BYTES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY, _UINT32 = 8, 9, 4
GGML_TYPE_F32 = 0


def _read(handle, fmt: str):
    return struct.unpack("<" + fmt, handle.read(struct.calcsize("<" + fmt)))


def _skip_string(handle) -> None:
    (length,) = _read(handle, "Q")
    handle.seek(length, 1)


def _read_string(handle) -> str:
    (length,) = _read(handle, "Q")
    return handle.read(length).decode("utf-8", errors="replace")


def _skip_value(handle, value_type: int) -> None:
    if value_type == _STRING:
        _skip_string(handle)
    elif value_type == _ARRAY:
        element_type, count = _read(handle, "IQ")
        if element_type in _SCALAR_BYTES:
            handle.seek(_SCALAR_BYTES[element_type] * count, 1)
        else:
            for _ in range(count):
                _skip_value(handle, element_type)
    else:
        handle.seek(_SCALAR_BYTES[value_type], 1)


def _tensor_infos(handle):
    """Yield ``(name, dims, ggml type, data offset)`` of every tensor; then the data start."""
    magic = handle.read(4)
    (file_version,) = _read(handle, "I")
    if magic != b"GGUF" or file_version < 2:
        raise ValueError(f"{handle.name} is not a GGUF file of version 2 or later")
    n_tensors, n_kv = _read(handle, "QQ")

    alignment = 32
    for _ in range(n_kv):
        key = _read_string(handle)
        (value_type,) = _read(handle, "I")
        if key == "general.alignment" and value_type == _UINT32:
            (alignment,) = _read(handle, "I")
        else:
            _skip_value(handle, value_type)

    for _ in range(n_tensors):
        name = _read_string(handle)
        (n_dims,) = _read(handle, "I")
        dims = _read(handle, f"{n_dims}Q")
        tensor_type, offset = _read(handle, "IQ")
        yield name, dims, tensor_type, offset
    # tensor data begins at the next multiple of the alignment
    yield None, (), None, -(-handle.tell() // alignment) * alignment


def read_f32_tensor(path: Path, name: str) -> np.ndarray | None:
    """The float32 tensor ``name`` of a GGUF file, flattened, or None if it has none."""
    with path.open("rb") as handle:
        found, data_start = None, 0
        for tensor_name, dims, tensor_type, offset in _tensor_infos(handle):
            if tensor_name is None:
                data_start = offset
            elif tensor_name == name:
                found = (tensor_type, offset, int(np.prod(dims)))
        if found is None:
            return None
        tensor_type, offset, count = found
        if tensor_type != GGML_TYPE_F32:
            raise ValueError(
                f"{name} in {path} is not float32 (ggml type {tensor_type})"
            )
        handle.seek(data_start + offset)
        return np.frombuffer(handle.read(4 * count), dtype="<f4").copy()


def count_parameters(path: Path) -> int:
    """How many numbers the tensors of a GGUF file hold, whatever their type."""
    with path.open("rb") as handle:
        return sum(
            int(np.prod(dims))
            for name, dims, _, _ in _tensor_infos(handle)
            if name is not None
        )
