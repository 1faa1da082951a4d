"""Pinned dependencies: CI (`make install`) and the container install from the lock files, checked by hash."""

from __future__ import annotations

import itertools
import re
import tomllib
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\]+)", re.MULTILINE)


def _pins(name: str) -> dict[str, str]:
    return {_norm(n): v for n, v in PIN.findall((REPO / name).read_text())}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(reqs: list[str]) -> set[str]:
    return {_norm(re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0]) for r in reqs}


def test_every_dependency_is_pinned_with_hashes() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime, dev = _pins("requirements.lock"), _pins("requirements-dev.lock")
    assert _requirement_names(project["dependencies"]) <= set(runtime)
    assert _requirement_names(project["dependencies"] + project["optional-dependencies"]["dev"]) <= set(dev)
    for name in ("requirements.lock", "requirements-dev.lock"):
        text = (REPO / name).read_text()
        starts = [m.start() for m in PIN.finditer(text)] + [len(text)]
        unhashed = [
            text[a : text.index("\n", a)] for a, b in itertools.pairwise(starts) if "--hash=sha256:" not in text[a:b]
        ]
        assert not unhashed, f"{name}: pinned without a hash: {unhashed}"
        assert "--find-links" not in text and "--index-url" not in text  # nothing machine-specific
    # The container's runtime set is the development set's runtime part, at the same versions.
    assert all(dev[n] == v for n, v in runtime.items())


def test_this_environment_was_installed_from_the_lock() -> None:
    # `make install` installs from requirements-dev.lock, so every pinned package has exactly its version.
    wrong = {}
    for name, version in _pins("requirements-dev.lock").items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            wrong[name] = (version, installed)
    assert not wrong, f"installed versions differ from requirements-dev.lock (run make install): {wrong}"


def test_the_container_installs_from_the_lock() -> None:
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert "pip install --require-hashes -r requirements.lock" in dockerfile
    assert "pip install --no-deps ." in dockerfile
    assert "!requirements.lock" in (REPO / "deploy" / "Dockerfile.dockerignore").read_text()
