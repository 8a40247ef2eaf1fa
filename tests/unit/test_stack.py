"""The local stack's launcher, without starting anything."""

import base64

from ops.stack.kafka_broker import cluster_id


def test_a_new_kafka_cluster_id_never_reads_as_an_option() -> None:
    ids = [cluster_id() for _ in range(5000)]  # one in 64 drawn would start with '-'
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert len(set(ids)) == len(ids)
