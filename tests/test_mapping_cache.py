"""The cache of parsed mapping files: a hit gives back what tomllib would, and a cache that is broken, stale or
unwritable never changes the result, only the time it takes."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from detector.sources import mapping
from detector.sources.mapping import MAPS_DIR, MappingError, builtin_mapping, cache_dir, parse_mapping

TEXT = (MAPS_DIR / "endpoint.toml").read_text()


def cached_files(root: Path) -> list[Path]:
    return sorted((root / "mappings").glob("*.json")) if (root / "mappings").exists() else []


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DETECTOR_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_the_second_load_reads_the_cache_and_gives_what_tomllib_gives(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = mapping._toml(TEXT)
    assert first == tomllib.loads(TEXT)
    assert len(cached_files(cache)) == 1

    def no_parse(text: str) -> dict[str, object]:
        raise AssertionError("parsed again: the cache was not read")

    monkeypatch.setattr(mapping.tomllib, "loads", no_parse)
    assert mapping._toml(TEXT) == first
    # and the whole load (validation included) works from the cached document
    assert builtin_mapping("endpoint").name == "endpoint"


def test_a_corrupt_or_foreign_entry_is_parsed_again_and_replaced(cache: Path) -> None:
    mapping._toml(TEXT)
    (entry,) = cached_files(cache)
    for junk in (b"{not json", b"[1, 2]", b""):
        entry.write_bytes(junk)
        assert mapping._toml(TEXT) == tomllib.loads(TEXT)
        assert entry.read_bytes() not in (b"{not json", b"[1, 2]", b"")


def test_a_changed_file_is_never_served_from_the_old_entry(cache: Path) -> None:
    mapping._toml(TEXT)
    changed = TEXT.replace('name = "endpoint"', 'name = "endpoint_copy"', 1)
    assert changed != TEXT
    assert mapping._toml(changed)["source"]["name"] == "endpoint_copy"
    assert len(cached_files(cache)) == 2


def test_an_unwritable_cache_costs_only_the_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("DETECTOR_CACHE_DIR", str(blocker / "cache"))
    assert mapping._toml(TEXT) == tomllib.loads(TEXT)


def test_an_empty_setting_turns_the_cache_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DETECTOR_CACHE_DIR", "")
    assert cache_dir() is None
    monkeypatch.delenv("DETECTOR_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "netsupport-detector"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setattr(mapping.os.path, "expanduser", lambda path: path)  # no home to be found
    assert cache_dir() is None


def test_a_document_json_cannot_carry_is_not_cached(cache: Path) -> None:
    text = TEXT + "\n[extra]\nwhen = 1979-05-27T07:32:00Z\n"
    doc = mapping._toml(text)
    assert doc == tomllib.loads(text)  # the datetime stays a datetime
    assert cached_files(cache) == []


def test_broken_maps_fail_the_same_with_a_warm_cache(cache: Path) -> None:
    broken = TEXT.replace('name = "endpoint"', 'name = "Not A Name"', 1)
    for _ in range(2):  # the second time, the document comes from the cache and is still refused
        with pytest.raises(MappingError, match=r"source\.name"):
            parse_mapping(broken, origin="broken.toml")
    assert len(cached_files(cache)) == 1
    assert not [p for p in (cache / "mappings").iterdir() if p.name.startswith(".tmp-")]
