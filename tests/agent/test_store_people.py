"""The store's human actions on SQLite and PostgreSQL: edits keep the original, results entered by hand
complete or fail waiting experiments in one transaction, manual experiments get the next index."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import IllegalTransition, StoreError
from agent.lifecycle import ExperimentState as S
from agent.store import MeasuredValue, Store


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    url = f"sqlite:///{tmp_path}/s.db" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = Store(url, tmp_path / "files")
    yield s
    s.close()


def test_people_in_the_store(store: Store) -> None:
    c = store.create_campaign("camp", "name: camp", "a" * 64, 1, "/x/camp.yaml")
    assert c.id is not None
    e1 = store.propose(c.id, "k", {"t": 900.0}, generator="sobol", model_state={}, lab_time_s=0)
    e2 = store.propose(c.id, "k", {"t": 950.0}, generator="sobol", model_state={}, lab_time_s=0)
    assert e1.id is not None and e2.id is not None
    edited = store.edit_conditions(e1.id, {"t": 1000.0}, who="ann", note="hotter", lab_time_s=1)
    assert edited.conditions == {"t": 1000.0}
    store.transition(e1.id, S.SUBMITTED, lab_time_s=2)
    with pytest.raises(StoreError, match="only a proposed experiment can be edited"):
        store.edit_conditions(e1.id, {"t": 1.0}, who="ann", lab_time_s=2)
    done = store.enter_result(e1.id, [MeasuredValue("y", 3.5, 0.1, "MPa")], who="ann", note="rig B", lab_time_s=3)
    assert done.state == S.COMPLETED and done.lab_time_end_s == 3
    assert [(m.name, m.value, m.source) for m in store.measurements_of(e1.id)] == [("y", 3.5, "manual:ann")]
    failed = store.enter_result(e2.id, failed="cracked", who="bo", lab_time_s=4)
    assert failed.state == S.FAILED and failed.failure_code == "manual" and failed.failure_reason == "cracked"
    with pytest.raises(IllegalTransition, match="it is final"):
        store.enter_result(e2.id, failed="again", who="bo", lab_time_s=5)
    e3 = store.add_manual_experiment(
        c.id, "k", {"t": 700.0}, [MeasuredValue("y", 1.0, 0.0, "MPa")], who="cy", lab_time_s=6
    )
    assert (e3.index, e3.state, e3.generator, e3.key) == (3, S.COMPLETED, "manual", "k-00003")
    human = [(e.kind, e.actor, e.from_state, e.to_state) for e in store.events(c.id) if e.actor != "agent"]
    assert human == [
        ("edit", "ann", "", ""),
        ("transition", "ann", "submitted", "completed"),
        ("transition", "bo", "proposed", "failed"),
        ("transition", "cy", "", "proposed"),
        ("transition", "cy", "proposed", "completed"),
    ]
    edit = store.experiment_events(e1.id)[1]
    assert edit.payload == {"original": {"t": 900.0}, "edited": {"t": 1000.0}, "note": "hotter"}
    vetoed = store.propose(c.id, "k", {"t": 1.0}, generator="g", model_state={}, lab_time_s=7)
    assert vetoed.id is not None
    v = store.transition(vetoed.id, S.ABANDONED, lab_time_s=7, actor="dee", failure_code="vetoed", reason="no")
    assert (v.failure_code, v.failure_reason) == ("vetoed", "no")
