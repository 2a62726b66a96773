"""A mod_wsgi-express that Apache's worker user can run, built by the tests themselves.

Apache will not serve as root: started by root, ``mod_wsgi-express`` must hand its
workers to an unprivileged user (``--user``), and that user has to read the Python
interpreter, its libraries and the app. On these machines the test interpreter lives
under ``/root`` (pyenv), which no other user may enter, so every mod_wsgi cell used to
be skipped. Instead of loosening permissions on the home directory, the tests build a
separate virtualenv from an interpreter that every user can read (the running one when
it is reachable, else the system ``python3``), in a world-readable cache directory,
with mod_wsgi and the same framework versions as the test environment, and serve a
world-readable copy of the code under test.

Nothing here runs unless a mod_wsgi cell does. Needs Apache and its development files
(Debian: ``apt-get install apache2-bin apache2-dev python3-dev python3-venv``); without
them the cells are skipped with that instruction.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

#: What the matrix apps import besides the code under test, pinned to the versions the
#: test environment runs so a mod_wsgi cell tests the same frameworks as the others.
FRAMEWORKS = ("asgiref", "flask", "werkzeug", "django", "fastapi", "starlette")
#: The unprivileged user Apache's workers run as when the tests run as root.
_RUN_AS = ("www-data", "nobody")


def _readable_by_all(path: Path) -> bool:
    """Whether a user with no special rights can reach ``path`` (every parent ``o+x``)."""
    path = path.resolve()
    for part in (path, *path.parents):
        mode = part.stat().st_mode
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return False
        if not mode & stat.S_IROTH:
            return False
    return True


def apache_user() -> str | None:
    """The user Apache's workers must run as: ``None`` when not running as root."""
    if os.geteuid() != 0:
        return None
    for name in _RUN_AS:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    pytest.skip(f"running as root and none of the users {_RUN_AS} exists for Apache")


def _base_interpreter() -> Path:
    """An interpreter the Apache user can read and that can build a virtualenv."""
    candidates = [Path(sys.base_prefix) / "bin" / "python3", Path("/usr/bin/python3")]
    for candidate in candidates:
        if candidate.exists() and (apache_user() is None or _readable_by_all(candidate)):
            return candidate
    pytest.skip(
        "no Python interpreter that Apache's worker user can read: tried "
        + ", ".join(map(str, candidates))
    )


def _requirements() -> list[str]:
    pins = ["mod_wsgi"]
    for name in FRAMEWORKS:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(name)
    return pins


@functools.cache
def mod_wsgi_express() -> Path:
    """The ``mod_wsgi-express`` to start cells with; built once per machine, then reused.

    Skips the calling test, with what to install, when Apache or its build files are
    missing. Raises ``RuntimeError`` (a failing cell, not a skip) when they are present
    but the virtualenv cannot be built.
    """
    if shutil.which("apache2") is None and shutil.which("httpd") is None:
        pytest.skip(
            "mod_wsgi-express needs Apache: apt-get install -y apache2-bin apache2-dev "
            "python3-dev python3-venv"
        )
    if shutil.which("apxs") is None and shutil.which("apxs2") is None:
        pytest.skip("building mod_wsgi needs apxs: apt-get install -y apache2-dev")
    python = _base_interpreter()
    requirements = _requirements()
    key = hashlib.sha256("\n".join([str(python), *requirements]).encode()).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / "bridge-mod-wsgi"
    venv = cache / key
    express = venv / "bin" / "mod_wsgi-express"
    cache.mkdir(mode=0o755, exist_ok=True)
    cache.chmod(0o755)
    done = venv / ".complete"
    if done.exists():
        return express
    # A half-built venv from an interrupted run is rebuilt from nothing. Built in place:
    # a venv's scripts carry its path, so it cannot be moved once built.
    shutil.rmtree(venv, ignore_errors=True)
    try:
        subprocess.run([str(python), "-m", "venv", str(venv)], check=True, timeout=120)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *requirements],
            check=True,
            timeout=600,
            capture_output=True,
        )
    except subprocess.CalledProcessError as exc:
        output = (exc.stderr or b"").decode(errors="replace")[-3000:]
        raise RuntimeError(f"building the mod_wsgi virtualenv failed:\n{output}") from exc
    venv.chmod(0o755)
    done.touch()
    return express


def serve_copy(root: Path, workdir: Path) -> Path:
    """A copy of the code the matrix apps import, readable by Apache's worker user.

    The checkout may live where that user cannot read (CI clones anywhere); a copy in
    the cell's own directory always can be.
    """
    source = workdir / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("bridge", "middleware"):
        shutil.copytree(root / package, source / package, ignore=ignore)
    (source / "tests").mkdir()
    shutil.copy2(root / "tests" / "__init__.py", source / "tests" / "__init__.py")
    shutil.copytree(root / "tests" / "apps", source / "tests" / "apps", ignore=ignore)
    open_to_all(workdir)
    return source


def open_to_all(path: Path) -> None:
    """Let Apache's worker user read ``path`` and write the files the cell's app writes.

    The enclosing temporary directories are private (mode 0700) by default.
    """
    if apache_user() is None:
        return
    for part in (path, *path.parents):
        if part == Path(tempfile.gettempdir()):
            break
        part.chmod(part.stat().st_mode | 0o755)
    for directory, _dirs, files in os.walk(path):
        Path(directory).chmod(0o777)
        for name in files:
            (Path(directory) / name).chmod(0o666)


def mod_wsgi_version() -> str:
    """The version of mod_wsgi the cells run, once its virtualenv exists (else "")."""
    cache = Path(tempfile.gettempdir()) / "bridge-mod-wsgi"
    for done in sorted(cache.glob("*/.complete")):
        # pip records mod_wsgi (built from its sdist) as .dist-info or, from an older
        # setuptools, as .egg-info.
        packages = done.parent.glob("lib/python*/site-packages")
        metadata = [
            meta
            for site in packages
            for meta in [
                *site.glob("mod_wsgi-*.dist-info/METADATA"),
                *site.glob("mod_wsgi-*.egg-info/PKG-INFO"),
            ]
        ]
        for meta in metadata:
            for line in meta.read_text().splitlines():
                if line.startswith("Version: "):
                    return line.removeprefix("Version: ")
    return ""
