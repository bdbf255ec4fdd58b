"""Model registry and the CIFAR forms of ResNet-18, WRN-28-10 and VGG-16-BN."""

from pqd.models import resnet, vgg, wrn  # noqa: F401  (registers the families)
from pqd.models.layers import Add, ConvBN, Normalize, QuantPoint
from pqd.models.registry import create_model, list_models, register_model

__all__ = ["Add", "ConvBN", "Normalize", "QuantPoint", "create_model", "list_models", "register_model"]
