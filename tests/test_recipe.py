from itertools import permutations
from pathlib import Path

import pytest

from pqd.errors import PQDError
from pqd.stages import load_recipe, ordering_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def test_shipped_recipes_are_the_paper_split_in_every_order():
    orders = set()
    for f in RECIPES.glob("*.yaml"):
        r = load_recipe(f)
        orders.add(tuple(s.stage for s in r.stages))
        assert {s.stage: s.epochs for s in r.stages} == {"prune": 20, "quantize": 40, "distill": 40}
        assert r == ordering_recipe([s.stage for s in r.stages], name=r.name, train={"batch_size": 128},
                                    prune={"sparsity": 0.8}, distill={"temperature": 4.0, "alpha": 0.9})
    assert orders == set(permutations(("prune", "quantize", "distill")))
    assert load_recipe(RECIPES / "paper.yaml").order == "prune->quantize->distill"


@pytest.mark.parametrize("body,message", [
    ("stages: [{stage: prun, epochs: 1}]", "stages\\[0\\]: .*tag 'prun'.*'prune', 'quantize', 'distill'"),
    ("stages: [{stage: prune, epochs: 1, sparsty: 0.5}]", r"stages\[0\].prune.sparsty: unknown field"),
    ("stages: [{stage: quantize, epochs: 0}]", r"stages\[0\].quantize.epochs: Input should be greater than 0 \(got 0\)"),
    ("stages: [{stage: prune, epochs: 2, sparsity: 1.0}]", r"stages\[0\].prune.sparsity: Input should be less than 1"),
    ("stages: [{stage: prune, epochs: 2, sparsity: -0.1}]", r"stages\[0\].prune.sparsity: .*greater than or equal to 0"),
    ("stages: [{stage: prune, epochs: 1}, {stage: prune, epochs: 1}]", r"stages\[1\]: stage 'prune' is listed twice"),
    ("stages: []", "stages: List should have at least 1 item"),
    ("stages: [{stage: distill, epochs: 1, alpha: 2}]", r"stages\[0\].distill.alpha"),
    ("stagez: []", "stagez: unknown field"),
    ("stages: [{stage: prune, epochs: 1}\n", "not valid YAML at line"),
    ("- just a list", "expected a mapping of recipe fields"),
    ("train: {lr: 0}\nstages: [{stage: prune, epochs: 1}]", r"train.lr: Input should be greater than 0"),
])
def test_bad_recipes_are_rejected_with_the_field(tmp_path, body, message):
    f = tmp_path / "bad.yaml"
    f.write_text(body)
    with pytest.raises(PQDError, match=message) as e:
        load_recipe(f)
    assert "\n" not in str(e.value) and str(e.value).startswith(str(f))
