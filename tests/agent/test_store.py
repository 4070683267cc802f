"""The store on SQLite and on the real PostgreSQL server: schema by migration, atomic transitions, files."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from agent.errors import IllegalTransition, StoreError
from agent.lifecycle import ExperimentState as S
from agent.store import ImageFile, MeasuredValue, Store
from agent.store.engine import head_revision


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    url = f"sqlite:///{tmp_path}/s.db" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = Store(url, tmp_path / "files")
    yield s
    s.close()


def _full_experiment(store: Store, tmp_path: Path) -> tuple[int, int]:
    c = store.create_campaign("camp", "name: camp", "a" * 64, 11, "/x/camp.yaml")
    assert c.id is not None
    e = store.propose(
        c.id, "camp-k", {"t": 900.0, "atm": "argon"}, generator="sobol", model_state={"p": 1}, lab_time_s=0
    )
    assert e.id is not None
    store.transition(e.id, S.SUBMITTED, lab_time_s=1)
    store.record_sample(
        e.id, sample_id="S1", duration_s=3600, attributes={"furnace": 2}, truth={"d": 12.5}, lab_time_s=2
    )
    img = tmp_path / "m.tif"
    img.write_bytes(b"II*\x00fake-tiff-bytes")
    store.record_micrographs(e.id, [ImageFile(img, 0.05, {"kV": 15}, None)], lab_time_s=3)
    png = tmp_path / "overlay.png"
    png.write_bytes(b"\x89PNG-fake")
    store.record_measurements(
        e.id,
        [MeasuredValue("grain_size_um", 12.1, 0.4, "um", "imaging:classical", "1")],
        lab_time_s=4,
        artifacts=[("overlay", png)],
    )
    store.transition(e.id, S.COMPLETED, lab_time_s=5)
    return c.id, e.id


def test_round_trip(store: Store, tmp_path: Path) -> None:
    cid, eid = _full_experiment(store, tmp_path)
    [exp] = store.experiments(cid)
    assert exp.state == S.COMPLETED and exp.key == "camp-k-00001" and exp.conditions == {"t": 900.0, "atm": "argon"}
    assert exp.lab_time_end_s == 5
    [m] = store.measurements(cid)[eid]
    assert (m.name, m.value, m.sigma, m.unit) == ("grain_size_um", 12.1, 0.4, "um")
    [mg] = store.micrographs(eid)
    assert store.file_path(mg).read_bytes() == b"II*\x00fake-tiff-bytes"
    assert mg.path.startswith(mg.sha256[:2] + "/")
    assert store.sample(eid).truth == {"d": 12.5}  # type: ignore[union-attr]
    [art] = store.artifacts(eid, "overlay")
    assert store.file_path(art).read_bytes() == b"\x89PNG-fake" and art.meta == {"name": "overlay.png"}
    kinds = [(e.kind, e.to_state) for e in store.events(cid)]
    assert kinds[0] == ("campaign_created", "")
    assert [t for k, t in kinds if k == "transition"] == [
        "proposed",
        "submitted",
        "synthesized",
        "imaged",
        "analyzed",
        "completed",
    ]


def test_illegal_transition_changes_nothing(store: Store, tmp_path: Path) -> None:
    cid, eid = _full_experiment(store, tmp_path)
    before = len(store.events(cid))
    with pytest.raises(IllegalTransition):
        store.transition(eid, S.SUBMITTED, lab_time_s=9)
    assert len(store.events(cid)) == before
    assert store.experiments(cid)[0].state == S.COMPLETED


def test_duplicate_campaign_is_refused(store: Store) -> None:
    store.create_campaign("dup", "x", "b" * 64, 1, "")
    with pytest.raises(StoreError, match="already exists"):
        store.create_campaign("dup", "x", "b" * 64, 1, "")


def test_indices_and_keys_are_unique_and_increasing(store: Store) -> None:
    c = store.create_campaign("idx", "x", "c" * 64, 1, "")
    assert c.id is not None
    exps = [store.propose(c.id, "idx", {}, generator="g", model_state={}, lab_time_s=0) for _ in range(5)]
    store.transition(exps[4].id, S.ABANDONED, lab_time_s=0)  # type: ignore[arg-type]
    nxt = store.propose(c.id, "idx", {}, generator="g", model_state={}, lab_time_s=0)
    assert [e.index for e in exps] + [nxt.index] == [1, 2, 3, 4, 5, 6]
    assert len({e.key for e in [*exps, nxt]}) == 6


def test_schema_is_at_head_and_reopen_is_idempotent(store: Store, tmp_path: Path) -> None:
    with store.engine.connect() as conn:
        rev = conn.execute(text("select version_num from alembic_version")).scalar_one()
    assert rev == head_revision()
    tables = set(inspect(store.engine).get_table_names())
    assert {"campaign", "experiment", "sample", "micrograph", "measurement", "event", "artifact"} <= tables
    again = Store(store.url, tmp_path / "files")  # migrating an up-to-date store is a no-op
    again.close()


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    s = Store(f"sqlite:///{tmp_path}/w.db", tmp_path)
    with s.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
    s.close()


def test_store_from_a_newer_matloop_is_refused(tmp_path: Path) -> None:
    s = Store(f"sqlite:///{tmp_path}/n.db", tmp_path)
    with s.engine.begin() as conn:
        conn.execute(text("update alembic_version set version_num='9999_future'"))
    s.close()
    with pytest.raises(StoreError, match="unknown to this matloop"):
        Store(f"sqlite:///{tmp_path}/n.db", tmp_path)


def test_unreachable_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open the store"):
        Store(f"sqlite:///{tmp_path}/no/such/dir/x.db", tmp_path)
