"""The contract between server and client: what a train message asks a client to do.

The server fills one ``ClientTask`` per sampled client; it travels as JSON in the message's
``config`` ConfigRecord (Flower records are flat, the task is not), and the ClientApp reads it
back through the same model, so a SuperNode running another skipswitch version fails with one line.
"""

from __future__ import annotations

import json
from typing import Any, Literal, Optional

from pydantic import Field

from ..checkpoint import VersionedFile
from ..errors import SkipswitchError

FAULT_NONE, FAULT_CRASH, FAULT_TIMEOUT = "none", "crash", "timeout"
# The ConfigRecord entry holding the task's JSON.
TASK_KEY = "task"


class ClientTask(VersionedFile):
    kind: Literal["skipswitch.client-task"] = "skipswitch.client-task"
    # 2: client sandwich training (client_subnets, random_subnets, kd, kd_temperature); 3: logit_adjustment; 4: amp
    version: Literal[4] = 4
    server_round: int = Field(ge=1)
    subnet: dict[str, Any]  # SubnetConfig.to_dict()
    space: dict[str, Any]  # ElasticSpace.to_dict()
    skip_mode: str
    # data: this client's partition of the run's dataset
    dataset: str
    data_dir: Optional[str] = None
    partition: str
    alpha: float
    min_partition_size: int
    seed: int
    num_partitions: int = Field(ge=1)
    # local SGD
    local_epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    lr: float
    momentum: float
    weight_decay: float
    amp: Literal["off", "bf16", "fp16"] = "off"  # mixed precision of the local steps
    # which subnets within ``subnet`` (the largest the client may train) each step trains
    client_subnets: Literal["fixed", "sampled"] = "fixed"
    random_subnets: int = Field(2, ge=0)
    kd: bool = True
    kd_temperature: float = Field(1.0, gt=0)
    logit_adjustment: float = Field(0.0, ge=0)  # tau of the logit-adjusted loss on the labels (0: plain)
    # fault injection: crash, or answer this long after the epoch time ``deadline``
    fault: Literal["none", "crash", "timeout"] = FAULT_NONE
    deadline: float = 0.0

    def to_record(self) -> dict[str, str]:
        """The ConfigRecord content carrying this task."""
        return {TASK_KEY: self.model_dump_json()}

    @classmethod
    def from_record(cls, record) -> "ClientTask":
        try:
            data = json.loads(record[TASK_KEY])
        except (KeyError, TypeError, json.JSONDecodeError):
            raise SkipswitchError(f"the train message's config record holds no JSON {TASK_KEY!r} entry") from None
        return cls.from_data(data, "the train message's task")
