"""constraints-lowest.txt, which CI's second run (`make test-lowest`) installs, holds the floors of pyproject.toml."""

import re
from importlib.metadata import requires
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
# Kept at the pinned pair of constraints.txt in the lowest run: PyPI's torchvision imports only with its own torch.
PINNED_PAIR = {"torch", "torchvision"}


def test_the_lowest_run_installs_the_floor_of_every_other_dependency():
    floors = {}
    for line in requires("lightning-genmetrics"):
        requirement = Requirement(line)
        if requirement.marker is None:  # the direct dependencies, not the extras
            (lower,) = [spec.version for spec in requirement.specifier if spec.operator == ">="]
            floors[requirement.name] = Version(lower)
    text = (ROOT / "constraints-lowest.txt").read_text()
    pins = {name: Version(version) for name, version in re.findall(r"^([\w.-]+)==(\S+)$", text, re.MULTILINE)}
    assert set(floors) - PINNED_PAIR == set(pins)
    assert {name: floors[name] for name in pins} == pins
