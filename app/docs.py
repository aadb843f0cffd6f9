"""Write docs/openapi.json and docs/API.md from the code: ``python -m app.docs [FOLDER]``.

It lives above the app factory, so the API package never imports ``create_app``.
"""

import sys
import tempfile
from pathlib import Path

from . import create_app
from .api.openapi import REFERENCE_PATH, SPEC_PATH, build_spec, render, render_markdown

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Write docs/openapi.json and docs/API.md (or into the folder given) from the code."""
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0]) if args else SPEC_PATH.parent
    with tempfile.TemporaryDirectory() as data:
        app = create_app({"DATA_DIR": data})
        try:
            document = build_spec(app)
        finally:
            app.extensions["generate_share_store"].close()
    for target, text in (
        (SPEC_PATH.name, render(document)),
        (REFERENCE_PATH.name, render_markdown(document)),
    ):
        (folder / target).write_text(text, encoding="utf-8")
        print(f"wrote {folder / target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
