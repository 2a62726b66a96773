"""Check the built sdist and wheel before anyone installs them.

Run as ``python scripts/check_dist.py dist``.

The wheel must hold exactly the two packages (``bridge`` and ``middleware``, each with
its ``py.typed``) and their metadata: no tests, examples or benchmarks leak into a
user's site-packages. The sdist must carry what a rebuild needs. Exits non-zero, naming
every problem, when anything is off.
"""

from __future__ import annotations

import email.parser
import sys
import tarfile
import zipfile
from pathlib import Path

PACKAGES = ("bridge", "middleware")
SDIST_NEEDS = (
    "pyproject.toml",
    "README.md",
    "LICENSE",
    "bridge/__init__.py",
    "middleware/__init__.py",
)
#: Local state that must never ship (hatch leaves out what git ignores).
SDIST_NEVER = (".hypothesis", ".venv", "__pycache__", ".pytest_cache", ".mypy_cache", "dist")


def check_wheel(path: Path) -> list[str]:
    problems = []
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        metadata_name = next((n for n in names if n.endswith(".dist-info/METADATA")), None)
        if metadata_name is None:
            return [f"{path.name}: no METADATA"]
        metadata = email.parser.Parser().parsestr(wheel.read(metadata_name).decode())
    for name in names:
        top = name.split("/", 1)[0]
        if top not in PACKAGES and not top.endswith(".dist-info"):
            problems.append(f"{path.name}: unexpected file {name}")
    for package in PACKAGES:
        for needed in ("__init__.py", "py.typed"):
            if f"{package}/{needed}" not in names:
                problems.append(f"{path.name}: missing {package}/{needed}")
    if metadata["Name"] != "wsgi-asgi-bridge":
        problems.append(f"{path.name}: Name is {metadata['Name']!r}")
    if metadata["Requires-Python"] != ">=3.10":
        problems.append(f"{path.name}: Requires-Python is {metadata['Requires-Python']!r}")
    if metadata["Description-Content-Type"] != "text/markdown":
        problems.append(f"{path.name}: the README is not declared as Markdown")
    if not any(r.startswith("asgiref") for r in metadata.get_all("Requires-Dist") or []):
        problems.append(f"{path.name}: asgiref is not a requirement")
    return problems


def check_sdist(path: Path) -> list[str]:
    with tarfile.open(path) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    problems = [f"{path.name}: missing {needed}" for needed in SDIST_NEEDS if needed not in names]
    leaked = sorted({part for name in names for part in name.split("/") if part in SDIST_NEVER})
    problems += [f"{path.name}: local state shipped: {part}/" for part in leaked]
    return problems


def main(dist: Path) -> int:
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    problems = []
    if len(wheels) != 1 or len(sdists) != 1:
        problems.append(f"expected one wheel and one sdist in {dist}, found {wheels + sdists}")
    for wheel in wheels:
        problems += check_wheel(wheel)
    for sdist in sdists:
        problems += check_sdist(sdist)
    for problem in problems:
        sys.stderr.write(problem + "\n")
    if not problems:
        sys.stdout.write(f"dist ok: {', '.join(p.name for p in wheels + sdists)}\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "dist")))
