"""The pinned patch of @firestore-emulator/server (devstack/patches/): a commit is atomic.

Unpatched, the emulator applied a batch's writes one by one and stopped at the first failed
precondition, leaving the earlier writes in place; Apex's step claims rely on all-or-nothing.
"""

from __future__ import annotations

import pytest
from google.api_core.exceptions import AlreadyExists, NotFound
from google.cloud import firestore


def test_a_failed_create_leaves_no_write_of_its_batch(firestore_client: firestore.Client) -> None:
    col = firestore_client.collection("claims")
    col.document("taken").create({"by": "first"})
    batch = firestore_client.batch()
    batch.create(col.document("fresh"), {"by": "second"})
    batch.set(col.document("other"), {"by": "second"})
    batch.create(col.document("taken"), {"by": "second"})
    with pytest.raises(AlreadyExists):
        batch.commit()
    assert not col.document("fresh").get().exists
    assert not col.document("other").get().exists
    assert col.document("taken").get().to_dict() == {"by": "first"}


def test_a_failed_update_leaves_no_write_of_its_batch(firestore_client: firestore.Client) -> None:
    col = firestore_client.collection("claims")
    batch = firestore_client.batch()
    batch.create(col.document("a"), {"n": 1})
    batch.update(col.document("missing"), {"n": 2})
    with pytest.raises(NotFound):
        batch.commit()
    assert not col.document("a").get().exists


def test_preconditions_count_the_batchs_own_writes(firestore_client: firestore.Client) -> None:
    col = firestore_client.collection("claims")
    ok = firestore_client.batch()
    ok.create(col.document("b"), {"n": 1})
    ok.update(col.document("b"), {"n": 2})
    ok.commit()
    assert col.document("b").get().to_dict() == {"n": 2}
    twice = firestore_client.batch()
    twice.create(col.document("c"), {"n": 1})
    twice.create(col.document("c"), {"n": 2})
    with pytest.raises(AlreadyExists):
        twice.commit()
    assert not col.document("c").get().exists
