"""int8 static quantization of an exported Wav2Lip for ONNX Runtime on a CPU.

Static QDQ (quantize/dequantize pairs around each conv), calibrated on the user's own inputs
(the avatar's crops with the voice's mel windows), per-channel weights, unsigned activations.
Dynamic quantization is not offered: it quantizes activations at run time and makes these
convs about 4x slower (measured, ENGINES-NOTES). Whether the int8 model is kept is decided by
the caller on measured speed and fidelity: int8 costs mouth PSNR.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np


def quantize_wav2lip(
    fp32_path: str | Path,
    int8_path: str | Path,
    calibration: Iterator[dict[str, np.ndarray]],
    batches: int = 16,
) -> Path:
    """Write the int8 QDQ model of ``fp32_path`` calibrated on ``batches`` input batches."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.left = batches

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.left <= 0:
                return None
            self.left -= 1
            return next(calibration, None)

    int8_path = Path(int8_path)
    quantize_static(
        str(fp32_path),
        str(int8_path),
        _Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )
    return int8_path


def frames_per_second(engine: object, inputs: dict[str, np.ndarray], repeats: int = 5) -> float:
    """Median throughput of ``engine.run`` on ``inputs`` (after one warm-up run)."""
    run = engine.run  # type: ignore[attr-defined]
    run(inputs)
    batch = len(next(iter(inputs.values())))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run(inputs)
        times.append(time.perf_counter() - started)
    return batch / float(np.median(times))
