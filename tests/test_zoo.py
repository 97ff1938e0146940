"""Data sets are found in an explicit folder, then $ONESPIKE_DATA, then the documented
default, and a missing or altered file gets one error that says where the standard files
go."""

import gzip
import shutil

import pytest

from onespike import zoo
from onespike.errors import OnespikeError


def test_explicit_folder_beats_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.DATA_ENV, str(tmp_path / "from-env"))
    assert zoo.data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert zoo.data_dir() == tmp_path / "from-env"


def test_default_folder_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.delenv(zoo.DATA_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert zoo.data_dir() == tmp_path / "onespike"


def test_missing_data_says_where_the_files_go(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    with pytest.raises(OnespikeError) as error:
        zoo.idx_dataset("mnist", tmp_path)
    message = str(error.value)
    assert str(tmp_path / "mnist") in message and "$" + zoo.DATA_ENV in message
    assert "--data" not in message        # no onespike command takes it
    assert str(tmp_path / "xdg" / "onespike") in message     # the folder without it
    for name, digest in zoo.IDX_FILES["mnist"].items():
        assert name in message and digest in message


def test_an_altered_file_is_refused(tmp_path):
    source = zoo.data_dir() / "mnist"
    if not source.is_dir():
        pytest.skip(f"{source} not present")
    shutil.copytree(source, tmp_path / "mnist", copy_function=shutil.copyfile)
    (tmp_path / "mnist").chmod(0o755)      # the shared copy is read-only
    labels = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    with gzip.open(labels, "wb") as f:
        f.write(b"\0" * 16)
    with pytest.raises(OnespikeError, match="not the standard mnist file"):
        zoo.idx_dataset("mnist", tmp_path)


def test_unknown_data_set_is_named():
    with pytest.raises(OnespikeError, match="unknown data set 'cifar'"):
        zoo.check_files("cifar")
