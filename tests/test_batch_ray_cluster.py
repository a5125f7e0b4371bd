"""The batch on a simulated Ray cluster (``ray.cluster_utils.Cluster``: a head and two nodes of one logical GPU each,
on this machine): a node removed without grace mid-run; the batch finishes on the survivor (its restarted actor
waits for a node with a free GPU, and holds no item meanwhile). Slow tier: it starts two CPU ComfyUIs."""

from __future__ import annotations

import re
import subprocess
import time

import pytest
from batch_support import WORKER_MARK, batch_command, gone, hold_graph, report_lines, worker_comfy_args, write_json

pytestmark = pytest.mark.slow

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402


@pytest.fixture
def cluster():
    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 0, "include_dashboard": False})
    nodes = [cluster.add_node(num_cpus=1, num_gpus=1) for _ in range(2)]
    address = cluster.address
    port = address.rsplit(":", 1)[1]  # in the command lines of the cluster's GCS, raylets and workers
    try:
        yield cluster, nodes
    finally:
        cluster.shutdown()
        assert gone(address) == [] and gone(f"gcs_server_port={port}") == [] and gone(WORKER_MARK) == []


def test_a_node_removed_without_grace_the_batch_finishes_on_the_survivor(cluster, tmp_path):
    cluster, nodes = cluster
    out, log = tmp_path / "out", tmp_path / "run.log"
    args = [write_json(tmp_path / "hold.api.json", hold_graph("ray_node/frames", seconds=1.0)), "--set", "a.inputs.color=0..7",
            "--ray", cluster.address, "--comfy-args", worker_comfy_args(tmp_path), "--start-timeout", 300, "--out", out]
    with open(log, "w") as log_file:
        run = subprocess.Popen(batch_command(*args), stdout=log_file, stderr=subprocess.STDOUT)
        try:
            def victim_busy():
                lines = report_lines(out / "report.jsonl")
                return any(line["worker"] == 2 for line in lines) and re.search(r"\[\d/8\] step 1/2 of node hold \(BatchTestHold\) on worker 2",
                                                                                log.read_text()[-2000:])
            deadline = time.time() + 300
            while not victim_busy():
                assert run.poll() is None and time.time() < deadline, log.read_text()
                time.sleep(0.05)
            node_id = next(line["node"] for line in report_lines(out / "report.jsonl") if line["worker"] == 2)
            victim = next(node for node in nodes if node.node_id == node_id)
            cluster.remove_node(victim, allow_graceful=False)
            assert run.wait(timeout=300) == 0, log.read_text()  # never hangs on the actor that has no node left
        finally:
            if run.poll() is None:
                run.kill()
    stdout = log.read_text()
    lines = report_lines(out / "report.jsonl")
    assert sorted(line["parameters"]["a.inputs.color"] for line in lines) == list(range(8)) and all(line["status"] == "success" for line in lines)
    assert "worker 2" in stdout and "was lost" in stdout
    survivor = next(node.node_id for node in nodes if node.node_id != node_id)
    lost = [line for line in lines if line["lost"]]
    assert len(lost) == 1 and lost[0]["node"] == survivor  # the item in flight finished on the survivor
    assert len([path for path in out.rglob("*") if path.is_file()]) == 9  # eight files and the report
