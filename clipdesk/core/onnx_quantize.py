"""int8 encoders derived from the fp32 export, without torch.

ONNX Runtime's dynamic quantisation of the MatMul (linear) weights. `onnxruntime.quantization` is
imported inside `quantize_job`, on purpose: it pulls in the onnx package (~0.5 s), needed only the
one time an int8 export is made.
"""

from __future__ import annotations

from pathlib import Path

from .jobs import CancelToken, Job, Progress, check
from .models import quiet_open_clip
from .onnx_store import TOWERS, export_dir, read_meta, staging, write_meta


def quantize_job(fp32_folder: Path, meta: dict, cancel: CancelToken | None = None) -> Job[tuple[Path, dict]]:
    """int8 towers from the fp32 export (no torch needed): dynamic quantisation of MatMul weights."""
    folder = export_dir(meta["identity"], "int8")  # in the cache, also for a shipped fp32 export
    existing = read_meta(folder, meta["identity"])
    if existing is not None:
        return folder, existing
    from onnxruntime.quantization import QuantType, quantize_dynamic

    message = "Quantising the encoders to int8 (first use only)"
    yield Progress(0, 2, message, unit="step")
    with staging(folder) as tmp:
        for done, name in enumerate(TOWERS.values(), start=1):
            # MatMul only: the linear layers hold almost all weights and time; Gather (token
            # embedding) and the attention's activation x activation products stay fp32.
            with quiet_open_clip():  # it advises pre-processing on the root logger; not needed
                quantize_dynamic(fp32_folder / name, tmp / name, op_types_to_quantize=["MatMul"],
                                 weight_type=QuantType.QInt8, per_channel=True,
                                 use_external_data_format=True)  # <name>.data, memory-mapped
            check(cancel)
            yield Progress(done, 2, message, unit="step")
        int8_meta = {**meta, "precision": "int8"}
        write_meta(tmp, int8_meta)
    return folder, read_meta(folder, meta["identity"]) or int8_meta
