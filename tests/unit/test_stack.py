"""The local stack's launcher, without starting anything."""

import base64
from pathlib import Path

from tideline.settings import Settings

from ops.stack.kafka_broker import cluster_id
from ops.stack.local import _ephemeral_warnings, servers
from ops.stack.process import ephemeral_ports


def test_a_new_kafka_cluster_id_never_reads_as_an_option() -> None:
    ids = [cluster_id() for _ in range(5000)]  # one in 64 drawn would start with '-'
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_port_in_the_range_for_outgoing_connections_is_warned_of(tmp_path: Path) -> None:
    outgoing = ephemeral_ports()
    inside, below = outgoing.start + 7092, outgoing.start - 1000
    risky = Settings(
        home=tmp_path,
        kafka_bootstrap=f"localhost:{inside}",
        kafka_controller_port=below,
        redis_url=f"redis://localhost:{inside + 2}/0",
    )
    warnings = _ephemeral_warnings(servers(risky))
    assert [w.split("'s port ")[1].split()[0] for w in warnings] == [str(inside), str(inside + 2)]
    assert all(f"below {outgoing.start} is safe" in w for w in warnings)
    safe = risky.model_copy(
        update={
            "kafka_bootstrap": f"localhost:{below + 1}",
            "redis_url": f"redis://localhost:{below + 2}/0",
        }
    )
    assert _ephemeral_warnings(servers(safe)) == []
