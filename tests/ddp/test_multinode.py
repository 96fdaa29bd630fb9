"""A simulated two-node run (``examples/multinode_simulation.py``): two ``torchrun --nnodes=2`` invocations on this
machine (or two of Lightning's own launcher with ``NODE_RANK``), two gloo processes each, a cache folder per node,
log the one-process values, and node 1 caches nothing."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "multinode_simulation.py"
KEYS = ("fid", "kid", "kid_std")


def load_script() -> ModuleType:
    """The example as a module, so its launcher runs the one-process reference in this (already warm) process."""
    spec = importlib.util.spec_from_file_location("multinode_simulation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rank_record(node: int, rank: int, world_size: int, fid: float, extracted: list[int]) -> dict:
    """A result file's content as the example's workers write it (both runs alike but for the cache)."""

    def run(real_extracted: list[int]) -> dict:
        values = {"fid": fid, "kid": 0.25, "kid_std": 0.125}
        return {
            "rank": {"global": rank, "node": node, "local": rank % 2, "world_size": world_size},
            "history": values,
            "logged": {f"gen/{key}": value for key, value in values.items()},
            "real_extracted": real_extracted,
        }

    return {"fresh": run(extracted), "cached": run([])}


def consistent_results(script: ModuleType) -> tuple[list[dict], list[dict], dict[str, list[str]]]:
    single = [rank_record(0, 0, 1, 1.5, list(range(script.NUM_REAL)))]
    shares = [list(range(start, script.NUM_REAL, 4)) for start in range(4)]
    ranks = [rank_record(rank // 2, rank, 4, 1.5, shares[rank]) for rank in range(4)]
    caches = {"node 0": ["real-kid-abc.npz", "real-statistics-abc.npz"], "node 1": []}
    return single, ranks, caches


def test_the_comparison_reports_each_broken_promise() -> None:
    script = load_script()
    single, ranks, caches = consistent_results(script)
    assert script.compare(single, ranks, caches) == []

    ranks[3]["cached"]["history"]["fid"] = 1.5 * (1 + 1e-6)  # one rank, one value, beyond float64 rounding
    caches["node 1"] = ["real-statistics-abc.npz"]
    ranks[2]["cached"]["real_extracted"] = [2]
    problems = script.compare(single, ranks, caches)
    assert len(problems) == 3
    assert any(problem.startswith("node 1 rank 3 of 4, cached run: fid = ") for problem in problems)
    assert any(problem.startswith("node 1 rank 2 of 4 extracted real images in the cached run") for problem in problems)
    assert any(problem.startswith("node 1's cache folder is not empty") for problem in problems)

    single, ranks, caches = consistent_results(script)
    ranks[2]["fresh"]["real_extracted"] = ranks[3]["fresh"]["real_extracted"] = []  # node 1 read no real data
    caches["node 0"] = ["real-statistics-abc.npz"]
    problems = script.compare(single, ranks, caches)
    assert sum("extracted no real image in the fresh run" in problem for problem in problems) == 2
    assert any("not each once" in problem for problem in problems)
    assert any("holds no real-kid-*.npz" in problem for problem in problems)


def test_a_hanging_node_is_killed_at_the_timeout(tmp_path: Path) -> None:
    script = load_script()
    hang = [sys.executable, "-c", "import time; time.sleep(120)"]
    started = time.monotonic()
    codes = script.run_all({"node0": (hang, {}), "node1": ([sys.executable, "-c", ""], {})}, tmp_path, 2, lambda: None)
    assert codes == {"node0": -1, "node1": 0}
    assert time.monotonic() - started < 30


@pytest.mark.ddp
@pytest.mark.slow
@pytest.mark.timeout(420)
@pytest.mark.parametrize("launcher", ["torchrun", "lightning"])
def test_two_nodes_log_the_one_process_values_and_node_1_caches_nothing(
    launcher: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = load_script()
    assert script.main(["--out", str(tmp_path), "--launcher", launcher, "--timeout", "360"]) == 0, (
        capsys.readouterr().out
    )
    stdout = capsys.readouterr().out
    assert "node 1 cache folder: (empty)" in stdout

    single = json.loads((tmp_path / "results" / "single-rank0.json").read_text())
    ranks = [json.loads((tmp_path / "results" / f"multinode-rank{rank}.json").read_text()) for rank in range(4)]
    reference = single["fresh"]["history"]
    assert reference["fid"] > 0.1
    for key in KEYS:
        assert single["cached"]["history"][key] == pytest.approx(reference[key], rel=1e-12), key
    for rank, record in enumerate(ranks):
        assert record["fresh"]["rank"] == {"global": rank, "node": rank // 2, "local": rank % 2, "world_size": 4}
        for run in ("fresh", "cached"):
            for key in KEYS:
                assert record[run]["history"][key] == pytest.approx(reference[key], rel=1e-9), (rank, run, key)
                assert record[run]["logged"][f"gen/{key}"] == pytest.approx(reference[key], rel=1e-6), (rank, run)
        # With node 0's cache, rank 0 read the statistics and broadcast them: no rank extracted a real image.
        assert record["cached"]["real_extracted"] == []

    # The fresh run sharded the real set over all four ranks, both nodes: each image once.
    shares = [record["fresh"]["real_extracted"] for record in ranks]
    assert sorted(index for share in shares for index in share) == list(range(script.NUM_REAL))
    assert shares[2]
    assert shares[3]

    assert list((tmp_path / "node1-cache").iterdir()) == []
    node0 = sorted(path.name for path in (tmp_path / "node0-cache").iterdir())
    assert any(name.startswith("real-statistics-") for name in node0)
    assert any(name.startswith("real-kid-") for name in node0)
    # The same keys as the one-process run's cache: the data, the extractor and the protocol, not the world size.
    assert node0 == sorted(path.name for path in (tmp_path / "single-cache").iterdir())
