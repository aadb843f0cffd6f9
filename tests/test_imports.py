"""The layers setup.cfg writes down for import-linter: app/ keeps them, and a late import breaks them.

``make lint`` runs ``lint-imports``; these tests show that it reads the whole
tree (every module sits in a layer), that it sees imports inside functions,
and that the contracts hold on the tree as it is.
"""

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")
CONTRACTS = configparser.ConfigParser()
CONTRACTS.read(ROOT / "setup.cfg")


def _names(section: str, key: str) -> list[str]:
    """Return the module names a contract lists under ``key`` (a layer's siblings one by one)."""
    return [n for line in CONTRACTS[section][key].split("\n") for n in re.split(r"[|:]", line) if n.strip()]


LAYERS = [n.strip() for n in _names("importlinter:contract:layers", "layers")]


def lint(tree: Path) -> subprocess.CompletedProcess:
    """Run import-linter on the app/ under ``tree`` with the project's contracts."""
    return subprocess.run(
        [str(LINT), "--no-cache", "--config", str(ROOT / "setup.cfg")],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_app_keeps_every_contract():
    done = lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_every_module_of_app_sits_in_a_layer():
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts) for p in (ROOT / "app").rglob("*.py")}
    modules = {m.removesuffix(".__init__") for m in modules} - {"app"}
    unplaced = sorted(m for m in modules if not any(m == n or m.startswith(n + ".") for n in LAYERS))
    assert unplaced == [], "add these to the layers in setup.cfg"


def test_the_web_ban_covers_every_layer_below_the_api():
    below = [n for n in LAYERS if n not in ("app.docs", "app.api")]
    assert sorted(_names("importlinter:contract:no-web-below-the-api", "source_modules")) == sorted(below)


@pytest.mark.parametrize(
    ("module", "late_import", "broken"),
    [
        ("app/shamir.py", "import flask", "app.shamir is not allowed to import flask"),
        ("app/records.py", "from app.api import schemas", "app.records is not allowed to import app.api"),
        ("app/service.py", "from werkzeug import Response", "app.service is not allowed to import werkzeug"),
        ("app/pgp/keys.py", "from app import create_app", "app.pgp is not allowed to import app.api"),
        (
            "app/ceremonies/quorum.py",
            "from app.ceremonies import generate",
            "No cycles are allowed in app.ceremonies",
        ),
    ],
)
def test_an_import_inside_a_function_breaks_the_lint(tmp_path, module, late_import, broken):
    shutil.copytree(ROOT / "app", tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__"))
    with (tmp_path / module).open("a") as f:
        f.write(f"\n\ndef _late():\n    {late_import}  # noqa: F401\n")
    done = lint(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert broken in done.stdout
