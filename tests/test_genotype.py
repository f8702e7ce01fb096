"""Genotypes: exact YAML round trips, canonical keys, and errors that name the field."""

from __future__ import annotations

import pytest
import yaml

import searchspace
from searchspace import Genotype, GenotypeError

ZOO = searchspace.zoo.names()


def _random(n: int) -> list[Genotype]:
    space = searchspace.load_space("cells")
    return [space.sample(seed) for seed in range(n)]


@pytest.mark.parametrize("name", ZOO)
def test_zoo_round_trips_exactly(name: str) -> None:
    g = searchspace.zoo.get(name)
    text = g.to_yaml()
    again = Genotype.from_yaml(text)
    assert again == g
    assert again.to_yaml() == text


def test_random_genotypes_round_trip() -> None:
    for g in _random(30):
        assert Genotype.from_yaml(g.to_yaml()) == g


def test_to_yaml_writes_a_file_that_loads(tmp_path) -> None:
    g = searchspace.zoo.get("mobilenetv2")
    path = tmp_path / "net.yaml"
    g.to_yaml(path)
    assert Genotype.from_yaml(path) == g
    assert Genotype.from_yaml(str(path)) == g


def test_key_ignores_name_and_separates_architectures() -> None:
    g = searchspace.zoo.get("resnet20")
    assert g.replace(name="other").key() == g.key()
    keys = {searchspace.zoo.get(n).key() for n in ZOO}
    assert len(keys) == len(ZOO)
    assert g.replace(resolution=40).key() != g.key()


def _broken(edit) -> str:
    data = searchspace.zoo.get("resnet20").to_dict()
    edit(data)
    return yaml.safe_dump(data)


CASES = [
    (lambda d: d["stages"][1]["cell"]["nodes"][1].update(inputs=[3]),
     "stages[1].cell.nodes[1].inputs: node 3 does not exist yet"),
    (lambda d: d["stages"][0]["cell"]["nodes"][0].update(op="conv9"),
     "stages[0].cell.nodes[0].op: unknown op 'conv9'"),
    (lambda d: d["stages"][2].update(depth=0), "stages[2].depth: must be a positive integer"),
    (lambda d: d["stages"][0].update(stride=3), "stages[0].stride: 3 is not one of 1, 2"),
    (lambda d: d["stages"][0]["cell"]["nodes"][0].update(kernal=3),
     "stages[0].cell.nodes[0].kernal: unknown field"),
    (lambda d: d["stages"][0]["cell"]["nodes"][0].update(kernel=4),
     "stages[0].cell.nodes[0].kernel: convolution kernels are odd"),
    (lambda d: d["stages"][0]["cell"]["nodes"][0].update(act="gelu"),
     "stages[0].cell.nodes[0].act: 'gelu' is not one of"),
    (lambda d: d["stages"][0]["cell"].update(outputs=[5]),
     "stages[0].cell.outputs: node 5 does not exist"),
    (lambda d: d["stem"].update(width="wide"), "stem.width: expected an integer"),
    (lambda d: d.pop("stages"), "stages: missing"),
    (lambda d: (d["stages"][0]["cell"]["nodes"][0].update(width=0.5, strided=False),
                d["stages"][0]["cell"]["nodes"][1].update(inputs=[0, 1])),
     "stages[0].cell.nodes[1].inputs: cannot add 16 and 8 channels"),
    (lambda d: d["stages"][0]["cell"]["nodes"][1].update(width=0.5),
     "stages[0].cell.residual: a pad shortcut cannot shrink 16 to 8 channels"),
    (lambda d: d["stages"][1]["cell"]["nodes"][0].update(strided=False),
     "stages[1].cell: stage has stride 2 but no strided node"),
    (lambda d: d["stages"][0]["cell"]["nodes"][1].update(op="identity"),
     "stages[0].cell.nodes[1].width: identity does not take width"),
    (lambda d: d["stages"][1]["cell"]["nodes"][1].update(strided=True),
     "stages[1].cell.nodes[1].strided: a path is strided twice"),
]


@pytest.mark.parametrize("edit,message", CASES)
def test_malformed_genotypes_name_the_field(edit, message: str) -> None:
    with pytest.raises(GenotypeError) as info:
        Genotype.from_yaml(_broken(edit))
    text = str(info.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_not_yaml_and_not_a_mapping() -> None:
    with pytest.raises(GenotypeError, match="not valid YAML at line"):
        Genotype.from_yaml("stem: {width: 16\nstages: [")
    with pytest.raises(GenotypeError, match="expected a mapping"):
        Genotype.from_yaml("- 1\n- 2\n")


def test_yaml_is_read_safely(tmp_path) -> None:
    """A python tag in an otherwise valid genotype: an unsafe loader would run it (creating a
    file) and, since it returns the string "net", accept the genotype. Ours refuses the tag."""
    marker = tmp_path / "ran"
    valid = searchspace.zoo.get("resnet20").to_yaml().replace("name: resnet20", "name: net")
    tagged = valid.replace(
        "name: net", f"name: !!python/object/apply:subprocess.getoutput ['touch {marker}; "
                     "echo net']")
    assert tagged != valid and Genotype.from_yaml(valid).name == "net"
    assert yaml.unsafe_load(tagged)["name"] == "net" and marker.exists()  # what it would do
    marker.unlink()
    with pytest.raises(GenotypeError) as info:
        Genotype.from_yaml(tagged)
    assert "python/object/apply:subprocess.getoutput" in str(info.value)
    assert not marker.exists()


def test_genotypes_are_frozen() -> None:
    g = searchspace.zoo.get("resnet20")
    with pytest.raises(AttributeError):
        g.resolution = 64  # type: ignore[misc]
