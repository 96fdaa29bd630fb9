"""Example: two "nodes" on one machine, two CPU processes each, log the one-process values; node 1 caches nothing.

The README says a multi-node run needs nothing more than a one-node one, and that only global rank 0 touches
``cache_dir``, so a node-local cache folder is fine. This script shows it. It runs the same small training, a
Lightning ``Trainer`` with ``GenerativeMetricsCallback`` (FID and KID), in two ways:

- as one process (``devices=1``, in this script's own process): the reference values;
- as two nodes of two processes, started as a cluster would, one launcher invocation per node (this script
  again, in worker mode): ``torchrun --nnodes=2 --node_rank=<0|1>
  --nproc_per_node=2 --master_addr=127.0.0.1 --master_port=<free port>`` running
  ``Trainer(num_nodes=2, devices=2, accelerator="cpu", strategy=DDPStrategy(process_group_backend="gloo"))``:
  four processes, global ranks 0, 1 (node 0) and 2, 3 (node 1). With ``--launcher lightning`` each node instead
  runs the script itself with ``MASTER_ADDR``, ``MASTER_PORT`` and ``NODE_RANK`` set, and Lightning starts the
  node's second process.

Each node has its own cache folder (``<out>/node0-cache``, ``<out>/node1-cache``). Every process trains twice: the
first ``fit`` finds the cache empty and computes the real statistics, sharded over the four ranks (node 1 extracts
its share); the second ``fit``, a new callback on the same folders, finds node 0's cache, which global rank 0 reads
and broadcasts, so no rank extracts a real image. The generator is held fixed (learning rate 0: DDP training would
see other batches than one process), and the feature network runs one image at a time, so an image's features are
the same bits in any batch. The script then prints the values of every rank and of the one process, which images of
the real set each rank put through the feature network, and the contents of both cache folders, and exits with
status 1 when the values differ (beyond float64 rounding), node 1's cache folder is not empty, node 0's lacks the
statistics, or a real image was extracted twice, never, or again in the cached run.

    python examples/multinode_simulation.py                        # about a minute on 2 CPU cores
    python examples/multinode_simulation.py --launcher lightning   # Lightning's own launcher instead of torchrun
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.strategies import DDPStrategy
from torch import Tensor, nn
from torch.utils.data import DataLoader

import lightning_genmetrics
from lightning_genmetrics import GANSampler
from lightning_genmetrics.callbacks import GenerativeMetricsCallback

NUM_NODES, PROCESSES_PER_NODE = 2, 2
NUM_REAL, REAL_BATCH_SIZE = 20, 3  # 7 batches over 4 ranks: 6, 6, 5 and 3 real images
IMAGE_SHAPE = (3, 8, 8)
LATENT_DIM, NUM_FEATURES = 8, 8
NUM_SAMPLES, SAMPLE_BATCH_SIZE = 22, 4  # 5, 6, 5 and 6 samples per rank
KID_KWARGS = {"subsets": 5, "subset_size": 10}
COMPARED = ("fid", "kid", "kid_std")
RUNS = ("fresh", "cached")
# float64 statistics merged in another order than one process's; the logged copies are float32.
HISTORY_TOLERANCE, LOGGED_TOLERANCE = 1e-9, 1e-6

# The worker: one process of a run -------------------------------------------------------------------------------

# Every image this process's feature network has seen, as bytes: a module global, so it is kept whatever copies the
# callback makes of the network.
EXTRACTED: list[bytes] = []


def real_images() -> Tensor:
    """The real set: ``NUM_REAL`` seeded uint8 images (the same on every node)."""
    return torch.randint(
        0, 256, (NUM_REAL, *IMAGE_SHAPE), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )


class PixelFeatures(nn.Module):
    """uint8 images ``[N, 3, 8, 8]`` -> ``[N, NUM_FEATURES]``: a seeded random projection, one image at a time."""

    input_dtype = torch.uint8  # take the images as the metrics hold them
    num_features = NUM_FEATURES

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(5)
        self.register_buffer("weight", torch.randn(math.prod(IMAGE_SHAPE), NUM_FEATURES, generator=generator) / 8)

    def forward(self, images: Tensor) -> Tensor:
        EXTRACTED.extend(image.cpu().numpy().tobytes() for image in images)
        # One image per product: a batched one may change its float32 last bits with the batch size.
        rows = [torch.tanh((image.flatten().float() / 127.5 - 1) @ self.weight) for image in images]
        return torch.stack(rows) if rows else images.new_zeros(0, NUM_FEATURES, dtype=torch.float32)


class Generator(nn.Module):
    """``z [N, LATENT_DIM] -> [N, 3, 8, 8]`` in (-1, 1), one sample at a time (the same bits in any batch)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(LATENT_DIM, math.prod(IMAGE_SHAPE)), nn.Tanh(), nn.Unflatten(1, IMAGE_SHAPE))
        generator = torch.Generator().manual_seed(3)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)

    def forward(self, z: Tensor) -> Tensor:
        return torch.cat([self.net(row[None]) for row in z])


class FixedGenerator(LightningModule):
    """Trains with learning rate 0, so every run samples the same generator."""

    def __init__(self) -> None:
        super().__init__()
        self.generator = Generator()

    def training_step(self, batch: list[Tensor], batch_idx: int) -> Tensor:
        return self.generator(batch[0]).square().mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def gan_sampler(module: FixedGenerator) -> GANSampler:
    return GANSampler(module.generator, latent_shape=(LATENT_DIM,))


def fit_once(args: argparse.Namespace) -> dict[str, Any]:
    """One ``fit`` with a new callback; what this rank logged and which real images it extracted."""
    callback = GenerativeMetricsCallback(
        gan_sampler,
        DataLoader(real_images(), batch_size=REAL_BATCH_SIZE),
        metrics=("fid", "kid"),
        feature_extractor=PixelFeatures(),
        num_samples=NUM_SAMPLES,
        batch_size=SAMPLE_BATCH_SIZE,
        log_images=False,
        log_figures=False,
        progress_bar=False,
        cache_dir=args.cache_dir,
        metric_kwargs={"kid": KID_KWARGS},
    )
    distributed = args.num_nodes * args.devices > 1
    trainer = Trainer(
        accelerator="cpu",
        devices=args.devices,
        num_nodes=args.num_nodes,
        strategy=DDPStrategy(process_group_backend="gloo", timeout=timedelta(seconds=args.timeout))
        if distributed
        else "auto",
        max_epochs=1,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    EXTRACTED.clear()
    latents = torch.randn(8, LATENT_DIM, generator=torch.Generator().manual_seed(2))
    trainer.fit(FixedGenerator(), DataLoader(torch.utils.data.TensorDataset(latents), batch_size=2))
    real = {image.numpy().tobytes(): index for index, image in enumerate(real_images())}
    return {
        "rank": {
            "global": trainer.global_rank,
            "node": trainer.node_rank,
            "local": trainer.local_rank,
            "world_size": trainer.world_size,
        },
        "history": callback.history[-1],
        "logged": {key: value.item() for key, value in trainer.callback_metrics.items()},
        "real_extracted": sorted(real[key] for key in EXTRACTED if key in real),
    }


def run_worker(args: argparse.Namespace) -> None:
    """Both fits of one process; their records go to ``<results>/<tag>-rank<global rank>.json``."""
    lightning_log = logging.getLogger("lightning.pytorch")
    level = lightning_log.level
    lightning_log.setLevel(logging.WARNING)  # no banners amid the comparison
    try:
        records = {run: fit_once(args) for run in RUNS}
    finally:
        lightning_log.setLevel(level)
    rank = records[RUNS[0]]["rank"]["global"]
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{args.tag}-rank{rank}.json").write_text(json.dumps(records, indent=1))


# The launcher: the one-process run and the two nodes --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_args(out: Path, tag: str, cache_dir: Path, num_nodes: int, devices: int, timeout: float) -> list[str]:
    return [
        *("--worker", "--tag", tag, "--results", str(out / "results"), "--cache-dir", str(cache_dir)),
        *("--num-nodes", str(num_nodes), "--devices", str(devices), "--timeout", str(timeout)),
    ]


def node_command(launcher: str, node_rank: int, port: int, args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The command and environment of one node's launcher invocation."""
    script = str(Path(__file__).resolve())
    if launcher == "torchrun":
        torchrun = [sys.executable, "-m", "torch.distributed.run", f"--nnodes={NUM_NODES}", f"--node_rank={node_rank}"]
        torchrun += [f"--nproc_per_node={PROCESSES_PER_NODE}", "--master_addr=127.0.0.1", f"--master_port={port}"]
        return [*torchrun, script, *args], {}
    # Lightning's launcher: the node's first process starts the others; it needs the main address and the node rank.
    return [sys.executable, script, *args], {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "NODE_RANK": str(node_rank),
    }


def python_path() -> str:
    """``PYTHONPATH`` with this process's ``lightning_genmetrics`` first, so that every node runs the same code."""
    package_root = str(Path(lightning_genmetrics.__file__).resolve().parents[1])
    return os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))


def run_all(
    commands: dict[str, tuple[list[str], dict[str, str]]], logs: Path, timeout: float, meanwhile: Callable[[], None]
) -> dict[str, int]:
    """Run the commands at once, each in its own process group, and ``meanwhile`` here; kill them all once
    ``timeout`` seconds have passed (or when ``meanwhile`` raises)."""
    logs.mkdir(parents=True, exist_ok=True)
    processes = {}
    for name, (command, extra_env) in commands.items():
        env = {**os.environ, **extra_env, "OMP_NUM_THREADS": "1", "PYTHONPATH": python_path()}
        with open(logs / f"{name}.log", "w") as log:
            processes[name] = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
    deadline = time.monotonic() + timeout
    codes = {}
    try:
        meanwhile()
        for name, process in processes.items():
            try:
                codes[name] = process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                codes[name] = -1
    finally:
        for process in processes.values():
            if process.poll() is None:  # a hang: end the launcher and the workers it started
                # torchrun starts its workers in sessions of their own and ends them on SIGTERM.
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
    return codes


def folder_contents(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*")) if folder.exists() else []


def compare(single: list[dict], ranks: list[dict], caches: dict[str, list[str]]) -> list[str]:
    """Every way the distributed run differs from what the README promises, as sentences (none: it kept them)."""
    problems = []
    reference = single[0]["fresh"]["history"]
    if sorted(record["fresh"]["rank"]["global"] for record in ranks) != list(range(NUM_NODES * PROCESSES_PER_NODE)):
        problems.append(f"expected global ranks 0..{NUM_NODES * PROCESSES_PER_NODE - 1}, got {len(ranks)} results")
    for record in [*single, *ranks]:
        rank = record["fresh"]["rank"]
        who = f"node {rank['node']} rank {rank['global']} of {rank['world_size']}"
        for run in RUNS:
            values, logged = record[run]["history"], record[run]["logged"]
            for key in COMPARED:
                if not math.isclose(values[key], reference[key], rel_tol=HISTORY_TOLERANCE, abs_tol=1e-12):
                    problems.append(f"{who}, {run} run: {key} = {values[key]!r}, one process: {reference[key]!r}")
                if not math.isclose(logged[f"gen/{key}"], reference[key], rel_tol=LOGGED_TOLERANCE):
                    problems.append(f"{who}, {run} run: logged gen/{key} = {logged[f'gen/{key}']!r}")
            if run == "cached" and record[run]["real_extracted"]:
                problems.append(f"{who} extracted real images in the cached run: {record[run]['real_extracted']}")
        if rank["node"] == 1 and not record["fresh"]["real_extracted"]:
            problems.append(f"{who} extracted no real image in the fresh run: the real set was not sharded over nodes")
    extracted = sorted(index for record in ranks for index in set(record["fresh"]["real_extracted"]))
    if extracted != list(range(NUM_REAL)):
        problems.append(f"the fresh run's ranks extracted the real images {extracted}, not each once")
    if caches["node 1"]:
        problems.append(f"node 1's cache folder is not empty: {caches['node 1']}")
    for pattern in ("real-statistics-", "real-kid-"):
        if not any(name.startswith(pattern) for name in caches["node 0"]):
            problems.append(f"node 0's cache folder holds no {pattern}*.npz: {caches['node 0']}")
    return problems


def report(single: list[dict], ranks: list[dict], caches: dict[str, list[str]]) -> str:
    lines = [f"{'':26}" + "".join(f"{key:>22}" for key in COMPARED) + "  real images extracted"]
    for record in [*single, *sorted(ranks, key=lambda record: record["fresh"]["rank"]["global"])]:
        rank = record["fresh"]["rank"]
        who = "one process" if rank["world_size"] == 1 else f"node {rank['node']} rank {rank['global']}"
        for run in RUNS:
            values = "".join(f"{record[run]['history'][key]:22.15g}" for key in COMPARED)
            lines.append(f"{who:<17} {run:<8}{values}  {record[run]['real_extracted']}")
    for node, names in caches.items():
        lines.append(f"{node} cache folder: {', '.join(names) or '(empty)'}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/multinode_simulation"), help="emptied first")
    parser.add_argument("--launcher", choices=("torchrun", "lightning"), default="torchrun")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds before every process is killed")
    worker = parser.add_argument_group("worker (set by the launcher)")
    worker.add_argument("--worker", action="store_true")
    worker.add_argument("--tag", default="")
    worker.add_argument("--results", type=Path)
    worker.add_argument("--cache-dir", type=Path)
    worker.add_argument("--num-nodes", type=int, default=1)
    worker.add_argument("--devices", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        torch.set_num_threads(1)  # four processes share the machine's cores
        run_worker(args)
        return 0
    started = time.perf_counter()
    out = args.out.resolve()
    for name in ("single-cache", "node0-cache", "node1-cache", "results", "logs"):
        shutil.rmtree(out / name, ignore_errors=True)
    for node in range(NUM_NODES):
        (out / f"node{node}-cache").mkdir(parents=True)  # node-local folders, as each machine would have
    port = free_port()
    commands = {}
    for node in range(NUM_NODES):
        node_args = worker_args(
            out, "multinode", out / f"node{node}-cache", NUM_NODES, PROCESSES_PER_NODE, args.timeout
        )
        commands[f"node{node}"] = node_command(args.launcher, node, port, node_args)
    print(f"{args.launcher}: {NUM_NODES} nodes x {PROCESSES_PER_NODE} processes, gloo, main 127.0.0.1:{port}")
    # The one-process reference runs here while the nodes start (sparing a fifth interpreter's start-up).
    codes = run_all(
        commands,
        out / "logs",
        args.timeout,
        meanwhile=lambda: run_worker(parse_args(worker_args(out, "single", out / "single-cache", 1, 1, args.timeout))),
    )
    if any(codes.values()):
        for name, code in codes.items():
            status = "killed after --timeout" if code == -1 else f"exit status {code}"
            tail = (out / "logs" / f"{name}.log").read_text().splitlines()[-30:]
            print(f"--- {name}: {status}; the end of {out / 'logs' / name}.log:\n" + "\n".join(tail))
        return 1
    single = [json.loads((out / "results" / "single-rank0.json").read_text())]
    ranks = [json.loads(path.read_text()) for path in sorted((out / "results").glob("multinode-rank*.json"))]
    caches = {f"node {node}": folder_contents(out / f"node{node}-cache") for node in range(NUM_NODES)}
    print(report(single, ranks, caches))
    problems = compare(single, ranks, caches)
    for problem in problems:
        print(f"MISMATCH: {problem}")
    if not problems:
        print(
            "every rank of both nodes logged the one-process values, with node 1's cache folder empty "
            f"({time.perf_counter() - started:.0f} s)"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
