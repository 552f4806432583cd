"""Two Ray nodes on one host share its IP (``ray start --head`` and ``ray start --address``
on one machine, as Ray's own ``cluster_utils.Cluster`` does): the ``--checkpoint-uri``
preflight probes each node by its id and accepts a path both plainly share (issue #30)."""

from __future__ import annotations

import pytest

from nas.cluster.ray_cluster import check_nodes_reach

pytestmark = pytest.mark.slow


def test_two_nodes_on_one_ip_both_pass_the_checkpoint_probe(tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        cluster.wait_for_nodes()
        alive = [n for n in ray.nodes() if n["Alive"]]
        assert len(alive) == 2 and len({n["NodeManagerAddress"] for n in alive}) == 1
        check_nodes_reach(str(tmp_path / "checkpoints"))  # raised before: one IP, two nodes
        assert not list((tmp_path / "checkpoints").glob(".nas-probe-*"))  # probes cleaned up
    finally:
        ray.shutdown()
        cluster.shutdown()
