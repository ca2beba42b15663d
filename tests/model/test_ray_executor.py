"""compare on a real two-node Ray cluster on loopback (`ray start --head` and `ray start --address`, separate
processes): one node is killed during the run, and the outputs equal the local executor's. No mocks of Ray."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.model.test_exp_fixtures import small_params, write_inputs, write_params

ray = pytest.importorskip("ray")
RAY = Path(sys.executable).parent / "ray"
OUTPUTS = ("reports/compare/runs.csv", "reports/compare/summary.json", "reports/compare/sweep.csv")
NODE_MEMORY = ["--object-store-memory=100000000", "--num-cpus=1"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def env() -> dict[str, str]:
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def wait_for(condition, what: str, seconds: float = 120) -> None:
    """Poll an outside event (a node joining, a file appearing) until it happens or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def cluster():
    """A head node and a worker node, 1 CPU each; yields (address, the worker node's process)."""
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths must stay < 108 chars
    address = f"127.0.0.1:{free_port()}"
    head = subprocess.run([RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={address.split(':')[1]}",
                           "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}", *NODE_MEMORY],
                          env=env(), capture_output=True, text=True)
    if head.returncode != 0:  # a machine where Ray cannot run at all (as the browser tests skip without chromium)
        shutil.rmtree(temp, ignore_errors=True)
        pytest.skip(f"`ray start --head` failed here: {(head.stderr or head.stdout).strip()[-500:]}")
    worker = subprocess.Popen([RAY, "start", f"--address={address}", "--node-ip-address=127.0.0.1", "--block",
                               *NODE_MEMORY], env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        ray.init(address=address, logging_level="WARNING", log_to_driver=False)
        wait_for(lambda: sum(node["Alive"] for node in ray.nodes()) == 2, "the worker node to join")
        ray.shutdown()
        yield address, worker
    finally:
        ray.shutdown()
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        subprocess.run([RAY, "stop", "--force"], env=env(), capture_output=True)
        shutil.rmtree(temp, ignore_errors=True)


def project(root: Path, executor: str, address: str = "auto") -> Path:
    """A tiny compare: 3 methods x 3 seeds, DCEC long enough that runs are in flight when a node dies."""
    write_inputs(root)
    params = small_params(methods=["kmeans_pixels", "cae_kmeans", "dcec"], seeds=[0, 1, 2], sweep_ks=[],
                          sweep_seeds=[0], workers=2, executor=executor, ray_address=address, threads_per_run=1)
    params["cluster"].update(maxiter=400, tol=0.0)
    write_params(root, params)
    return root


def run_compare(root: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "model.compare"], cwd=root, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_compare_on_a_ray_cluster_survives_a_lost_node_and_equals_the_local_run(tmp_path, cluster):
    address, worker = cluster
    local = project(tmp_path / "local", "local")
    assert run_compare(local).wait(timeout=600) == 0

    remote = project(tmp_path / "ray", "ray", address)
    process = run_compare(remote)
    cache = remote / "models/compare_cache"
    wait_for(lambda: len(list(cache.glob("*.json"))) >= 2 or process.poll() is not None, "two finished runs", 600)
    os.killpg(worker.pid, signal.SIGKILL)  # the worker node dies with runs still to do
    _, errors = process.communicate(timeout=600)
    assert process.returncode == 0, errors[-3000:]
    assert "submitted to the Ray cluster" in errors and len(list(cache.glob("*.json"))) == 9
    for name in OUTPUTS:
        assert (remote / name).read_bytes() == (local / name).read_bytes(), name


class _Cluster:
    """What ray.nodes() reports, for the pure feasibility check (the cluster tests above use a real Ray)."""

    def __init__(self, *cpus: float, dead: float = 0):
        self.listing = [{"Alive": True, "Resources": {"CPU": c}} for c in cpus]
        self.listing += [{"Alive": False, "Resources": {"CPU": dead}}] if dead else []

    def nodes(self) -> list[dict]:
        return self.listing


def test_a_run_needing_more_cpus_than_any_node_is_refused_not_left_pending():
    from model.ray_executor import check_fits_a_node

    check_fits_a_node(_Cluster(1, 2), 2)
    with pytest.raises(ValueError, match=r"threads_per_run is 2.*offers 1 CPUs"):
        check_fits_a_node(_Cluster(1, 1, dead=4), 2)


class _Ref:
    """An object reference of the stub below: the task's result, or the exception the task raised."""

    def __init__(self, call):
        try:
            self.value, self.error = call(), None
        except Exception as exc:  # noqa: BLE001 - handed to get(), as Ray does
            self.value, self.error = None, exc


class _StubRay:
    """Ray's driver API over one in-process "worker" that has no GPU, whatever the driver has (`gpu["present"]`)."""

    def __init__(self, gpu: dict):
        self.gpu, self.submitted = gpu, []

    def init(self, **kwargs): pass
    def put(self, value): return value
    def nodes(self): return [{"Alive": True, "Resources": {"CPU": 2.0, "GPU": 1.0}}]
    def cluster_resources(self): return {"CPU": 2.0, "GPU": 1.0}
    def wait(self, refs, num_returns): return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        if ref.error is not None:
            raise ref.error
        return ref.value

    def remote(self, **resources):
        stub = self

        class Task:
            def remote(self, *args):
                stub.submitted.append((resources, args))
                stub.gpu["present"] = False  # the task runs on a worker without a GPU
                return _Ref(lambda: stub.fn(*args))

        def decorate(fn):
            stub.fn = fn
            return Task()
        return decorate


def test_the_driver_decides_the_device_once_and_a_worker_without_it_fails_the_run(tmp_path, monkeypatch):
    """A GPU driver (stubbed) keys the run cuda/bf16 and ships that decision; a worker without CUDA does not
    compute something else under that key but fails the run, saying why."""
    from model import ray_executor, runs
    from model.compare import execute_runs
    from tests.model.test_exp_fixtures import K, synthetic_image_set

    gpu = {"present": True}
    monkeypatch.setattr("torch.cuda.is_available", lambda: gpu["present"])
    monkeypatch.setattr("model.runtime._native_bf16", lambda device: True)
    stub = _StubRay(gpu)
    monkeypatch.setattr(ray_executor, "import_ray", lambda: stub)
    write_inputs(tmp_path)
    params = small_params(methods=["dcec"], seeds=[0], executor="ray")
    params["model"] |= {"device": "auto", "mixed_precision": "auto"}
    pinned = runs.pin_device(params)
    origin = runs.run_provenance(pinned)
    runner = ray_executor.RayRunner(pinned, synthetic_image_set(), tmp_path / "models/cae_seeds")
    spec = runs.RunSpec("dcec", K, 0)
    with pytest.raises(RuntimeError, match=r"planned for 'cuda'.*has no CUDA device"):
        list(runner.map([(spec, runs.cache_key(spec, {}, {}, origin))]))
    [(resources, task_args)] = stub.submitted
    task_params = task_args[0]
    assert resources["num_gpus"] == 1 and "num_cpus" not in resources
    assert (origin["device"], origin["precision"]) == ("cuda", "bf16")  # the key ...
    assert (task_params["model"]["device"], task_params["model"]["mixed_precision"]) == ("cuda", "bf16")  # ... the run
    planned = SimpleNamespace(settings={}, uses_cae=True)  # the stage's view of the method: settings for the key
    with pytest.raises(RuntimeError, match="has no CUDA device"):  # and nothing is cached under the key
        execute_runs([spec], {"dcec": planned}, synthetic_image_set(), tmp_path / "cache",
                     {"images": "a", "labels": "b"}, {0: "c"}, origin, runner)
    assert not list((tmp_path / "cache").glob("*.json"))
