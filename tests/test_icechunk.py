"""The icechunk backend: one commit per write, kills, concurrent writers, history.

Runs on a local folder and on the moto S3 server of the ``s3_server``
fixture; the generic suites (conformance, round trip, pickle parity) run on
it through tests/conftest.py and tests/test_storage_backends.py.
"""

from __future__ import annotations

import random
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("icechunk", reason="the icechunk extra is missing: pip install '.[icechunk]'")

import tinystore  # noqa: E402
from tinystore.errors import (  # noqa: E402
    BackendError,
    ConcurrentWriterWarning,
    ConflictError,
    NotAStoreError,
    ReadOnlyError,
)
from tinystore.storage.icechunkstore import IcechunkStorage  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from conftest import local_or_s3, s3_location  # noqa: E402
from icechunk_writer import result  # noqa: E402
from procs import child_env, kill_while_writing  # noqa: E402

WRITER = str(Path(__file__).parent / "helpers" / "icechunk_writer.py")


@pytest.fixture(params=["local", "s3"])
def where(request, tmp_path):
    """A fresh icechunk store: a local folder, or a prefix on the S3 server."""
    return local_or_s3(request, tmp_path, "run.icechunk")


@pytest.fixture
def s3_url(s3_server):
    return s3_location(s3_server, "run.icechunk", "ice")


def _commits(url: str) -> int:
    return len(tinystore.history(url))


def _check_result(value: dict, i: int) -> None:
    """Every part of a saved result says the same ``i``: never torn."""
    assert value["i"] == i and value["label"] == f"save {i}"
    assert value["data"].shape == (200_000,) and (value["data"] == i).all()


# -- the backend is chosen, created and removed like the zarr backend ------------------------
def test_chosen_by_suffix_and_by_url(tmp_path, s3_server):
    from tinystore.storage.registry import choose_backend

    assert choose_backend(str(tmp_path / "a.icechunk")).name == "icechunk"
    assert choose_backend(f"s3://{s3_server['bucket']}/p/a.icechunk").name == "icechunk"
    assert choose_backend(f"s3://{s3_server['bucket']}/p/a.zarr").name == "zarr"
    assert tinystore.backends.icechunk.name == "icechunk"
    tinystore.backends.icechunk.dump([1, 2], tmp_path / "plain")  # any name with backend=
    assert tinystore.load(tmp_path / "plain") == [1, 2]  # then found by looking inside


def test_other_url_schemes_are_refused():
    with pytest.raises(BackendError, match="does not read gs://"):
        tinystore.save(1, "gs://bucket/run.icechunk", backend="icechunk")


def test_delete_whole_store_refuses_anything_else(where, tmp_path):
    tinystore.save({"a": 1}, where)
    tinystore.delete(where)
    with pytest.raises(FileNotFoundError):
        tinystore.load(where)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.txt").write_text("mine")
    with pytest.raises(NotAStoreError):
        tinystore.save(1, foreign, backend="icechunk")
    with pytest.raises(NotAStoreError):
        tinystore.delete(foreign, backend="icechunk")
    assert (foreign / "data.txt").read_text() == "mine"


def test_storage_options_name_the_server(s3_server, monkeypatch):
    url = s3_location(s3_server, "opts.icechunk", "ice")
    for name in ("AWS_ENDPOINT_URL", "AWS_ALLOW_HTTP"):
        monkeypatch.delenv(name)
    options = {"endpoint": s3_server["endpoint"], "allow_http": "true"}
    tinystore.save({"a": 1}, url, storage_options=options)
    assert tinystore.load(url, storage_options=options) == {"a": 1}
    with pytest.raises(BackendError, match="does not know storage_options"):
        tinystore.load(url, storage_options={"colour": "blue"})


# -- item 1: one commit per operation, and kills -----------------------------------------------
def test_every_save_assignment_delete_and_batch_is_one_commit(where):
    tinystore.save({"a": np.arange(5000)}, where, path="first")
    assert _commits(where) == 2  # icechunk's first snapshot, and the save (which created it)
    tinystore.save([1, 2, 3], where, path="jobs/1")
    assert _commits(where) == 3
    with tinystore.open(where) as s:
        s["b"] = 5
        assert _commits(where) == 4
        with s.batch():
            s["c"] = np.ones(4000)
            s["d"] = {"x": 1}
            del s["b"]
            assert _commits(where) == 4  # nothing seen before the batch ends
        assert _commits(where) == 5
        del s["c"]
        s.create_group("g")
        assert _commits(where) == 7
        with pytest.raises(ZeroDivisionError), s.batch():
            s["e"] = 1
            raise ZeroDivisionError
        assert _commits(where) == 7 and "e" not in s  # a failed batch commits nothing
    with tinystore.open(where, "r") as s:
        assert sorted(s) == ["d", "first", "g", "jobs"]
    tinystore.save({"whole": np.arange(3000)}, where)  # the whole store replaced: one commit
    assert _commits(where) == 8
    tinystore.open(where, "w").close()  # emptied: one commit, the history kept
    assert _commits(where) == 9 and tinystore.history(where)[0].message == "tinystore: emptied"
    with tinystore.open(where, "r") as s:
        assert list(s) == []
    assert tinystore.load(where, version=tinystore.history(where)[1].id)["whole"].size == 3000


def test_a_failed_save_commits_nothing(where):
    tinystore.save({"a": 1}, where, path="kept")

    class Bad:
        def __reduce__(self):
            raise RuntimeError("cannot")

    with pytest.raises(TypeError, match="cannot store"):  # UnstorableError
        tinystore.save({"big": np.arange(10_000), "bad": Bad()}, where, path="new")
    assert _commits(where) == 2
    assert tinystore.load(where, path="kept") == {"a": 1}
    with tinystore.open(where, "r") as s:
        assert list(s) == ["kept"]


def _kill_trials(url: str, trials: int, seed: int) -> None:
    """Kill a writer (SIGKILL) at random moments; every snapshot is whole, and the
    store is the last completed save or the one after (killed after its commit)."""
    rng = random.Random(seed)
    most = 0
    for trial in range(trials):
        argv = [sys.executable, WRITER, url, "replace", "1000"]
        done = kill_while_writing(argv, rng.uniform(0.0, 0.5))
        most = max(most, done)
        value = tinystore.load(url, path="x")
        assert value["i"] in (done, done + 1), (trial, done, value["i"])
        _check_result(value, value["i"])
        history = tinystore.history(url)
        assert history[0].message == f"save {value['i']}"
        tinystore.save(result(-1), url, path="after")  # writable again, no repair needed
    assert most > 0  # the kills landed while the writer was saving again and again
    for snap in tinystore.history(url)[:-1]:  # every snapshot (but icechunk's first) is whole
        with tinystore.open(url, "r", version=snap.id) as s:
            if "x" in s:
                _check_result(s["x"], s["x"]["i"])


@pytest.mark.slow
def test_sigkill_mid_save_leaves_the_previous_snapshot_local(tmp_path):
    _kill_trials(str(tmp_path / "kill.icechunk"), trials=5, seed=18)


@pytest.mark.slow
def test_sigkill_mid_save_leaves_the_previous_snapshot_s3(s3_url):
    _kill_trials(s3_url, trials=4, seed=81)


def _kill_creation(where: str) -> None:
    """What a writer killed while icechunk creates the repository leaves: the
    first snapshot, written before the branch that names it."""
    import icechunk

    if where.startswith("s3://"):
        import boto3

        bucket, _, prefix = where[5:].partition("/")
        icechunk.Repository.create(icechunk.s3_storage(bucket=bucket, prefix=prefix, **_S3))
        s3 = boto3.client("s3")
        for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/")["Contents"]:
            if not item["Key"].endswith("/snapshots/1CECHNKREP0F1RSTCMT0"):
                s3.delete_object(Bucket=bucket, Key=item["Key"])
    else:
        icechunk.Repository.create(icechunk.local_filesystem_storage(where))
        for path in sorted(Path(where).rglob("*"), reverse=True):
            if path.is_file() and path.parent.name != "snapshots":
                path.unlink()
            elif path.is_dir() and path.name != "snapshots":
                path.rmdir()
    assert not icechunk.Repository.exists(_ic_storage(where))


_S3 = {"endpoint_url": None, "allow_http": True, "force_path_style": True, "from_env": True}


def _ic_storage(where: str):
    import icechunk

    if where.startswith("s3://"):
        bucket, _, prefix = where[5:].partition("/")
        return icechunk.s3_storage(bucket=bucket, prefix=prefix, **_S3)
    return icechunk.local_filesystem_storage(where)


def test_a_creation_killed_before_its_branch_does_not_block_later_writers(where, monkeypatch):
    import os

    _S3["endpoint_url"] = os.environ.get("AWS_ENDPOINT_URL")
    _kill_creation(where)
    with pytest.raises(FileNotFoundError):
        tinystore.load(where)  # there is no store yet
    monkeypatch.setattr("tinystore.storage.icechunkstore.CREATE_TIMEOUT", 0.3)
    tinystore.save({"a": np.arange(3000)}, where, path="run")  # after waiting for its creator
    np.testing.assert_array_equal(tinystore.load(where, path="run")["a"], np.arange(3000))
    assert [s.message for s in tinystore.history(where)] == [
        "tinystore: run",
        "Repository initialized",
    ]


# -- item 2: concurrent writers ---------------------------------------------------------------
def test_a_batch_that_meets_another_commit_raises_conflict_and_commits_nothing(s3_url):
    tinystore.save({"v": 0}, s3_url, path="k")
    with tinystore.open(s3_url) as mine, tinystore.open(s3_url) as other:
        with pytest.raises(ConflictError, match="another writer"):
            with mine.batch():
                mine["k"] = {"v": "mine"}
                mine["unrelated"] = np.arange(3000)
                other["k"] = {"v": "other"}  # commits first
                other["theirs"] = 1
        assert mine["k"] == {"v": "other"}  # the handle reads the new tip
        assert "unrelated" not in mine and mine["theirs"] == 1
        mine["k"] = {"v": "mine again"}  # and writes on top of it
    assert tinystore.load(s3_url, path="k") == {"v": "mine again"}


def test_an_assignment_that_conflicts_runs_again_on_the_new_tip(s3_url):
    """Two writers of the same key: the last commit's value, whole; the other
    writer's unrelated key is kept."""
    tinystore.save(0, s3_url, path="k")
    other = tinystore.open(s3_url)
    runs = []

    def my_write(storage):
        runs.append(1)
        if len(runs) == 1:  # the other writer commits while this one works
            other["k"] = result(1)
            other["unrelated"] = "theirs"
        storage["k"] = result(2)

    with tinystore.open(s3_url) as mine:
        mine.atomic(my_write, mine)
    other.close()
    assert len(runs) == 2
    _check_result(tinystore.load(s3_url, path="k"), 2)
    assert tinystore.load(s3_url, path="unrelated") == "theirs"
    assert [s.changed for s in tinystore.history(s3_url)[:3]] == [("k",), ("unrelated",), ("k",)]


def test_writes_inside_hold_are_commits_of_their_own_and_keep_other_writers_keys(s3_url):
    tinystore.save(0, s3_url, path="start")
    with tinystore.open(s3_url) as mine, tinystore.open(s3_url) as other:
        with mine.hold():
            mine["a"] = 1
            other["b"] = 2  # commits between two writes of one session
            mine["c"] = 3  # refused on the old snapshot, run again on the new
            assert mine["b"] == 2
        assert sorted(mine) == ["a", "b", "c", "start"]
    assert [s.changed for s in tinystore.history(s3_url)[:3]] == [("c",), ("b",), ("a",)]


def test_conflicts_past_retry_timeout_raise_conflict_error(s3_url):
    tinystore.save(0, s3_url, path="k")
    with tinystore.open(s3_url) as other, tinystore.open(s3_url, retry_timeout=0) as mine:

        def always_overtaken(storage):
            other["k"] = random.random()
            storage["k"] = "mine"

        with pytest.raises(ConflictError, match="run it again"):
            mine.atomic(always_overtaken, mine)
        assert mine["k"] != "mine"


def test_local_folder_warns_of_a_second_writer(tmp_path):
    url = str(tmp_path / "local.icechunk")
    tinystore.save(0, url, path="k")
    with tinystore.open(url) as mine, tinystore.open(url) as other:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(ConflictError), mine.batch():
                mine["k"] = 1
                other["k"] = 2
        assert any(issubclass(w.category, ConcurrentWriterWarning) for w in caught)
        assert "single-writer" in str(caught[-1].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConcurrentWriterWarning)
        tinystore.save(3, url, path="k")  # one writer: no warning
    assert tinystore.load(url, path="k") == 3


@pytest.mark.slow
def test_eight_processes_of_25_saves_lose_nothing_on_s3(s3_url):
    tinystore.save(0, s3_url, path="start")
    procs = [
        subprocess.Popen(
            [sys.executable, WRITER, s3_url, "keys", f"w{n}_", "25"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env(),
            text=True,
        )
        for n in range(8)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        assert out.split()[-1] == "24"
    with tinystore.open(s3_url, "r") as s:
        keys = set(s)
        assert keys == {"start"} | {f"w{n}_{i}" for n in range(8) for i in range(25)}
        for n in range(8):
            value = s[f"w{n}_17"]
            assert value["i"] == 17 and (value["data"] == 17).all()
    assert _commits(s3_url) == 1 + 1 + 200


# -- item 3: time travel -------------------------------------------------------------------------
def test_history_versions_tags_and_messages(where):
    tinystore.save({"energy": -1.0}, where, path="run", message="first run")
    tinystore.save({"energy": -2.0}, where, path="run")
    tinystore.save(np.arange(3000), where, path="forces")
    history = tinystore.history(where)
    assert [s.message for s in history[:3]] == ["tinystore: forces", "tinystore: run", "first run"]
    assert [s.changed for s in history[:3]] == [("forces",), ("run",), ("run",)]
    assert history[0].parent == history[1].id and history[0].time >= history[1].time
    first = history[2].id
    assert tinystore.load(where, path="run", version=first) == {"energy": -1.0}
    assert tinystore.load(where, path="run") == {"energy": -2.0}
    tinystore.tag(where, "paper-v1", version=first)
    with tinystore.open(where, "r", version="paper-v1") as s:
        assert list(s) == ["run"] and s["run"] == {"energy": -1.0}
        assert s.version == "paper-v1"
        with pytest.raises(ReadOnlyError):
            s["run"] = 0
    assert tinystore.history(where)[2].tags == ("paper-v1",)
    assert [s.id for s in tinystore.history(where, version="paper-v1")] == [
        s.id for s in history[2:]
    ]
    with tinystore.open(where) as s:
        s.message = "by hand"
        s["note"] = "x"
    assert tinystore.history(where)[0].message == "by hand"
    with tinystore.open(where, message="opened with one") as s:
        s.atomic(lambda: s.update({"p": 1, "q": 2}))  # one transaction: one commit
    assert tinystore.history(where)[0].message == "opened with one"
    assert tinystore.history(where)[0].changed == ("p", "q")
    assert tinystore.history(where)[1].message == "by hand"


def test_version_errors(where):
    tinystore.save(1, where, path="a")
    tinystore.save(2, where, path="a")
    first = tinystore.history(where)[1].id
    tinystore.tag(where, "v1", version=first)
    with pytest.raises(BackendError, match="already has a tag 'v1'"):
        tinystore.tag(where, "v1")  # tags never move
    with pytest.raises(BackendError, match="no snapshot or tag 'nope'"):
        tinystore.tag(where, "v2", version="nope")
    with tinystore.open(where, "r", version="v1") as s:
        s.tag("v1-again")  # a handle on a past snapshot names that snapshot
    assert tinystore.history(where)[1].tags == ("v1", "v1-again")
    with pytest.raises(BackendError, match="no snapshot or tag"):
        tinystore.load(where, version="nope")
    with pytest.raises(BackendError, match="mode 'r'"):
        tinystore.open(where, "a", version=tinystore.history(where)[0].id)


def test_other_backends_refuse_version_and_message(backend, filename):
    tinystore.save(1, filename, path="a")
    with pytest.raises(BackendError, match="keeps no versions"):
        tinystore.load(filename, path="a", version="v1")
    with pytest.raises(BackendError, match="keeps no versions"):
        tinystore.save(2, filename, path="a", message="why")
    with pytest.raises(BackendError, match="keeps no versions"):
        tinystore.open(filename, "r", version="v1")
    if backend != "memory":
        with pytest.raises(BackendError, match="keeps no versions"):
            tinystore.history(filename)
    assert tinystore.load(filename, path="a") == 1  # nothing was written


# -- plain icechunk + zarr and dask read what tinystore wrote ---------------------------------
def test_plain_icechunk_zarr_and_dask_read_a_stored_array(tmp_path):
    import dask.array as da
    import icechunk
    import zarr

    url = str(tmp_path / "plain.icechunk")
    data = np.arange(100_000, dtype=np.float64).reshape(1000, 100)
    tinystore.save({"forces": data}, url, path="job")
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(url))
    store = repo.readonly_session(branch="main").store
    with tinystore.open(url, "r") as s:
        assert isinstance(s, IcechunkStorage)
    group = zarr.open_group(store, mode="r")
    names = [name for name, _ in group.members(max_depth=None) if name.endswith("forces")]
    assert len(names) == 1
    np.testing.assert_array_equal(zarr.open_array(store, path=names[0], mode="r")[...], data)
    lazy = da.from_zarr(zarr.open_array(store, path=names[0], mode="r"))
    assert float(lazy.sum().compute()) == float(data.sum())


# -- a repository opened once per process --------------------------------------------------
def test_one_repository_per_process_and_other_writers_commits_are_seen(where, monkeypatch):
    from tinystore.storage import icechunkstore

    tinystore.save(1, where, path="parent")
    repo, cached = icechunkstore._repository(where, None, "a")
    assert cached  # opened by the save above
    with tinystore.open(where) as s:
        assert s._store.physical.repo is repo  # one repository for every handle of the process
        proc = subprocess.run(
            [sys.executable, "-c", CHILD_SAVE, where],
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert s["child"] == "from the child"  # each transaction starts from the tip
        s["parent"] = 2
    assert tinystore.load(where, path="child") == "from the child"
    assert tinystore.load(where, path="parent") == 2
    # a forked process (another pid) never uses its parent's repository
    monkeypatch.setattr(icechunkstore, "_REPOS_PID", -1)
    again, cached = icechunkstore._repository(where, None, "a")
    assert not cached and again is not repo
    assert icechunkstore._repository(where, None, "a") == (again, True)


CHILD_SAVE = "import sys, tinystore; tinystore.save('from the child', sys.argv[1], path='child')"


def test_a_repository_removed_behind_the_cache_is_not_used(where):
    tinystore.save({"old": 1}, where, path="a")
    if where.startswith("s3://"):
        import boto3

        bucket, _, prefix = where[5:].partition("/")
        s3 = boto3.client("s3")
        for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/")["Contents"]:
            s3.delete_object(Bucket=bucket, Key=item["Key"])
    else:
        import shutil

        shutil.rmtree(where)  # as another process would
    with pytest.raises(FileNotFoundError):
        tinystore.load(where)
    tinystore.save({"new": 2}, where, path="b")  # a new repository
    with tinystore.open(where, "r") as s:
        assert list(s) == ["b"] and s["b"] == {"new": 2}
    assert len(tinystore.history(where)) == 2
    tinystore.delete(where)
    with pytest.raises(FileNotFoundError):
        tinystore.load(where)
