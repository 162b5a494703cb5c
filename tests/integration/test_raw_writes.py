"""The aggregator's writes built from the raw protobuf classes equal the client's own
encoding of the same call, and commit through the emulator as that call would."""

from __future__ import annotations

import pytest
from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore
from google.cloud.firestore_v1 import Increment, Minimum
from google.cloud.firestore_v1.types import write

from shared.store import raw_writes

IDENTITY = {"day": "2026-11-01", "provider": "openai", "model": "gpt-4o", "feature": None}
INCREMENTS = {"requests": 3, "latency_hist__le_25": 2, "cost_nanousd": 10, "errors": 1}
MINIMUMS = {"min_input_tokens": 5}


def client_encoding(client: firestore.Client, call: str, *args: object, **kwargs: object) -> object:
    batch = client.batch()
    getattr(batch, call)(*args, **kwargs)
    [encoded] = batch._write_pbs
    return write.Write.pb(encoded)


def test_an_empty_create_is_encoded_as_the_client_does(firestore_client: firestore.Client) -> None:
    ref = firestore_client.collection("workspaces").document("w").collection("m").document("r_1")
    assert write.Write.pb(raw_writes.create_empty(ref)) == client_encoding(
        firestore_client, "create", ref, {}
    )


def test_a_counter_merge_is_encoded_as_the_client_does(firestore_client: firestore.Client) -> None:
    ref = firestore_client.collection("workspaces").document("w").collection("d").document("x")
    body = {
        **IDENTITY,
        **{name: Increment(n) for name, n in INCREMENTS.items()},
        **{name: Minimum(v) for name, v in MINIMUMS.items()},
    }
    built = raw_writes.merge_counters(ref, IDENTITY, INCREMENTS, MINIMUMS)
    assert write.Write.pb(built) == client_encoding(firestore_client, "set", ref, body, merge=True)


def test_built_writes_commit_as_the_client_s_would(firestore_client: firestore.Client) -> None:
    col = firestore_client.collection("raw")
    for _ in range(2):
        batch = firestore_client.batch()
        raw_writes.add(
            batch, [raw_writes.merge_counters(col.document("sum"), IDENTITY, INCREMENTS, MINIMUMS)]
        )
        batch.commit()
    assert col.document("sum").get().to_dict() == {
        **IDENTITY,
        **{name: 2 * n for name, n in INCREMENTS.items()},
        **MINIMUMS,
    }
    batch = firestore_client.batch()
    raw_writes.add(batch, [raw_writes.create_empty(col.document("marker"))])
    batch.commit()
    assert col.document("marker").get().to_dict() == {}
    again = firestore_client.batch()
    raw_writes.add(again, [raw_writes.create_empty(col.document("marker"))])
    with pytest.raises(AlreadyExists):
        again.commit()


@pytest.mark.parametrize("name", ["latency_hist.le_25", "has space", "1st", "`quoted`", ""])
def test_a_field_name_that_needs_quoting_is_refused(
    firestore_client: firestore.Client, name: str
) -> None:
    ref = firestore_client.collection("raw").document("x")
    with pytest.raises(ValueError, match="needs quoting"):
        raw_writes.merge_counters(ref, IDENTITY, {name: 1}, {})
