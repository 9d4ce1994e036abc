"""Copy a GGUF file with extra float32 tensors, for tests of what files may carry."""

from pathlib import Path

import gguf
import numpy as np


def _value(field):
    kind = field.types[0]
    if kind == gguf.GGUFValueType.ARRAY:
        inner = field.types[1]
        if inner == gguf.GGUFValueType.STRING:
            return [bytes(field.parts[i]).decode("utf-8") for i in field.data], inner
        return [field.parts[i].tolist()[0] for i in field.data], inner
    if kind == gguf.GGUFValueType.STRING:
        return bytes(field.parts[field.data[0]]).decode("utf-8"), None
    return field.parts[field.data[0]].tolist()[0], None


def copy_with_tensors(source: Path, target: Path, extra: dict[str, np.ndarray]) -> Path:
    """Write ``target``: every key and tensor of ``source``, plus ``extra``."""
    reader = gguf.GGUFReader(source)
    arch = _value(reader.fields["general.architecture"])[0]
    writer = gguf.GGUFWriter(target, arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        value, inner = _value(field)
        writer.add_key_value(name, value, field.types[0], sub_type=inner)
    for tensor in reader.tensors:
        writer.add_tensor(
            tensor.name, np.asarray(tensor.data), raw_dtype=tensor.tensor_type
        )
    for name, values in extra.items():
        writer.add_tensor(name, np.asarray(values, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return target
