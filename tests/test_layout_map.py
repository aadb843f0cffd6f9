"""docs/development.md maps every module of app/ to its tests, and names every test file."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAP_HEADING = "### Which tests cover which room"


def _rows() -> list[tuple[str, str]]:
    text = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    section = text.split(MAP_HEADING, 1)[1].split("\n#", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 2 and cells[0] not in ("room", "---"):
            rows.append((cells[0], cells[1]))
    return rows


def _covered(cell: str) -> set[Path]:
    """The files a room names: `app/x/` is a whole package; a bare name is in the last folder named."""
    covered: set[Path] = set()
    folder = ROOT
    for name in re.findall(r"`([^`]+)`", cell):
        path = ROOT / name if "/" in name else folder / name
        if name.endswith("/"):
            covered |= set(path.rglob("*.py"))
            folder = path
        elif "/" in name:
            folder = path.parent
            covered.add(path)
        else:
            covered.add(path)
    return covered


def test_every_module_of_app_has_a_row():
    covered = set().union(*(_covered(room) for room, _ in _rows()))
    missing = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "app").rglob("*.py") if p not in covered)
    assert not missing, f"docs/development.md names no tests for: {missing}"


def test_every_name_in_the_map_exists():
    for room, tests in _rows():
        for path in _covered(room):
            assert path.exists(), f"{path.relative_to(ROOT)} (in the map) does not exist"
        for name in re.findall(r"`([^`]+)`", tests):
            assert (ROOT / "tests" / name).is_file(), f"tests/{name} (in the map) does not exist"


def test_every_test_file_is_in_the_map():
    named = {name for _, tests in _rows() for name in re.findall(r"`([^`]+)`", tests)}
    files = {p.name for p in (ROOT / "tests").glob("test_*.py")}
    assert not files - named, f"docs/development.md maps no room to: {sorted(files - named)}"
