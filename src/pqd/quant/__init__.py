"""INT8 simulation shared by the quantize stage (training) and the export (deployment).

The arithmetic simulated is exactly what ONNX Runtime / OpenVINO run for a QDQ model:
  weights      per-output-channel symmetric int8 in [-127, 127], zero point 0, scale = max|w| / 127
  activations  per-tensor affine uint8 in [0, 255], range from an exponential moving average of min/max
  conv + BN    folded into one convolution (weights scaled by gamma / sigma, bias absorbs the shift)
"""

from pqd.quant.modules import (
    ActFakeQuant,
    QBatchNorm2d,
    QConvBN,
    QLinear,
    calibrate,
    fake_quant_weight,
    freeze,
    is_quantized,
    prepare_qat,
    weight_scale,
)

__all__ = ["ActFakeQuant", "QBatchNorm2d", "QConvBN", "QLinear", "calibrate", "fake_quant_weight", "freeze",
           "is_quantized", "prepare_qat", "weight_scale"]
