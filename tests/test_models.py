import pytest
import torch

from pqd.errors import PQDError
from pqd.models import Add, QuantPoint, create_model, list_models


@pytest.mark.parametrize("name,params", [("resnet18", 11_173_962), ("wrn28_10", 36_479_194),
                                         ("vgg16_bn", 14_724_042)])
def test_full_size_parameter_counts_and_output(name, params):
    model = create_model(name, 10).eval()
    assert sum(p.numel() for p in model.parameters()) == params
    with torch.no_grad():
        assert model(torch.rand(1, 3, 32, 32)).shape == (1, 10)
    assert create_model(name, 100).fc.out_features == 100


@pytest.mark.parametrize("name", ["resnet18", "wrn28_10", "vgg16_bn"])
def test_tiny_models_and_explicit_ops(name):
    model = create_model(name, 100, width=0.125)
    assert model(torch.rand(4, 3, 32, 32)).shape == (4, 100)
    kinds = [type(m) for m in model.modules()]
    assert QuantPoint in kinds and torch.nn.ReLU in kinds
    assert not any(isinstance(m, torch.nn.Sequential) and m.__class__ is torch.nn.ReLU for m in model.modules())
    if name != "vgg16_bn":
        assert Add in kinds
    else:
        assert torch.nn.MaxPool2d in kinds


def test_registry_errors():
    assert list_models() == ["resnet18", "vgg16_bn", "wrn28_10"]
    with pytest.raises(PQDError, match="unknown model 'resnet50'"):
        create_model("resnet50")
    with pytest.raises(PQDError, match="has no option dropout"):
        create_model("resnet18", dropout=0.3)
    assert create_model("wrn28_10", dropout=0.3, width=0.1).layers[0].dropout.p == 0.3
