"""Module-level Flower apps, for ``flwr run`` and for deployment on a SuperLink with SuperNodes.

The ServerApp reads its settings from the Flower run config (``[tool.flwr.app.config]``,
dashed FedConfig field names, plus ``run-dir`` and ``resume``); each SuperNode names its
data partition with ``--node-config "partition-id=I num-partitions=N"``. See docs/federated.md.
"""

from .client import make_client_app
from .simulate import make_server_app

server_app = make_server_app()
client_app = make_client_app()
