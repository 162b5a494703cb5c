"""The aggregator's marker built from the raw protobuf classes equals the client's own
encoding of the same call, and commits through the emulator as that call would."""

from __future__ import annotations

import pytest
from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore
from google.cloud.firestore_v1.types import write

from shared.store import raw_writes


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


def test_built_writes_commit_as_the_client_s_would(firestore_client: firestore.Client) -> None:
    col = firestore_client.collection("raw")
    batch = firestore_client.batch()
    raw_writes.add(batch, [raw_writes.create_empty(col.document("marker"))])
    batch.commit()
    assert col.document("marker").get().to_dict() == {}
    again = firestore_client.batch()
    raw_writes.add(again, [raw_writes.create_empty(col.document("marker"))])
    with pytest.raises(AlreadyExists):
        again.commit()
