"""The README and the guides in docs/: short, linked, and their code runs as written.

The code blocks are taken from the Markdown itself, never copied into this
file, so a change to a guide's example is a change to what is tested: the
README's curl ceremony runs under bash against a real server in token mode,
the operator's guide's hvac example and the oversight guide's webhook
receiver run under Python against a real server too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import queue
import re
import secrets
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from app import shamir
from gpgtools import gpg_in
from server import Server, free_port

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GUIDES = ("operator-guide.md", "oversight.md", "deployment.md", "security.md", "development.md")
TOKEN_MODE = {"GENERATE_SHARE_CEREMONY_AUTH": "token"}


def section(path: Path, heading: str) -> str:
    """Return the text of one section of a Markdown file, up to the next heading of its level."""
    text = path.read_text()
    level = heading.split(" ")[0]
    start = text.index(heading + "\n")
    rest = text[start + len(heading) + 1 :]
    following = re.search(rf"^{level} ", rest, flags=re.MULTILINE)
    return rest[: following.start()] if following else rest


def code_blocks(text: str, language: str) -> list[str]:
    """Return the fenced code blocks of one language, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


# -- the README: short, and every guide one link away ---------------------------------------------


def test_the_readme_is_short_and_links_every_guide():
    """At most 300 lines; every guide in docs/ (and the API reference) is linked from it."""
    text = README.read_text()
    assert len(text.splitlines()) <= 300
    for guide in (*GUIDES, "API.md"):
        assert (ROOT / "docs" / guide).is_file()
        assert f"(docs/{guide})" in text, f"README.md does not link docs/{guide}"
    assert "make run" in text and "make test" in text


def test_every_relative_link_in_the_docs_points_to_a_file():
    """A link to a file of this repository (not a URL, not an anchor alone) names one that exists."""
    for path in (README, ROOT / "SECURITY.md", *(ROOT / "docs" / g for g in GUIDES)):
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if target.startswith(("http://", "https://", "#")):
                continue
            file = (path.parent / target.split("#")[0]).resolve()
            assert file.exists(), f"{path.name} links {target}, which does not exist"


# -- the lead's token file: private from the start (issue 25 item 14) -----------------------------


def test_the_readmes_token_file_is_private_from_the_start(tmp_path):
    """The README's lines make ~/.generate-share-token 0600 with no moment at 0644."""
    block = code_blocks(section(README, "## A ceremony with the CLI"), "sh")[0]
    lines = [line.split("  #")[0].strip() for line in block.splitlines()]
    writes = [i for i, line in enumerate(lines) if "> ~/.generate-share-token" in line]
    umasks = [i for i, line in enumerate(lines) if line.startswith("umask 077")]
    assert writes and umasks and umasks[0] < writes[0], "umask 077 must come before the file is made"
    script = "\n".join([lines[umasks[0]], lines[writes[0]]])
    subprocess.run(["bash", "-e", "-c", script], env={**os.environ, "HOME": str(tmp_path)}, check=True)
    made = tmp_path / ".generate-share-token"
    assert stat.S_IMODE(made.stat().st_mode) == 0o600
    assert made.read_text() == "<root token>\n"


# -- the curl ceremony, as the README writes it ---------------------------------------------------


def _alice(home: Path) -> str:
    """Make Alice's key (ed25519, cv25519 subkey, no passphrase) in a GnuPG home; return its fingerprint."""
    home.mkdir(mode=0o700)
    gpg_in(
        home, "--passphrase", "", "--quick-gen-key", "alice@example.org", "future-default", "default", "never"
    )
    listing = gpg_in(home, "--with-colons", "--fingerprint", "alice@example.org").decode()
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")).lower()


def test_the_readmes_curl_ceremony_runs_as_written(tmp_path):
    """bash runs the README's curl block against a fresh server: six shares, Alice's new one decrypts."""
    block = code_blocks(section(README, "## A ceremony with curl"), "sh")[0]
    home = tmp_path / "gnupg"
    fingerprint = _alice(home)
    work = tmp_path / "work"
    work.mkdir()
    with Server(tmp_path / "data", tmp_path / "gunicorn.log", env=TOKEN_MODE) as server:
        env = {**os.environ, "GENERATE_SHARE_ADDR": server.url, "GNUPGHOME": str(home)}
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", block],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        registry = server.get("/v1/sys/shares").json()
        server.kill()
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    groups = [fingerprint[i : i + 4].upper() for i in range(0, 40, 4)]
    assert out[0].strip() == " ".join(groups)  # read out against gpg's grouped form
    assert [json.loads(line) for line in out[2:5]] == [
        {"progress": 1, "required": 3, "complete": False},
        {"progress": 2, "required": 3, "complete": False},
        {"progress": 3, "required": 3, "complete": True},
    ]
    new = bytes.fromhex(out[5])
    assert out[6] == "6" and registry["issued"] == 6 and new[-1] in {s["index"] for s in registry["shares"]}
    keys = [bytes.fromhex(k) for k in json.loads((work / "init.json").read_text())["keys"]]
    assert shamir.combine([new, keys[3], keys[4]]) == shamir.combine(keys[:3])
    for name in ("init.json", "attempt.json", "update.json", "alice.b64"):
        assert stat.S_IMODE((work / name).stat().st_mode) == 0o600, name  # the block's umask 077


# -- the hvac example of the operator's guide ------------------------------------------------------


def test_the_hvac_example_runs_as_written(tmp_path):
    """The guide's hvac block runs a masked ceremony against a fresh server in token mode."""
    blocks = code_blocks(section(ROOT / "docs" / "operator-guide.md", "## From Python, with hvac"), "python")
    assert len(blocks) == 1
    with Server(tmp_path / "data", tmp_path / "gunicorn.log", env=TOKEN_MODE) as server:
        done = subprocess.run(
            [sys.executable, "-c", blocks[0]],
            env={**os.environ, "GENERATE_SHARE_ADDR": server.url},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        registry = server.get("/v1/sys/shares").json()
        server.kill()
    assert done.returncode == 0, done.stderr
    x = int(re.fullmatch(r"new share issued at x = (\d+)", done.stdout.splitlines()[0]).group(1))
    assert done.stdout.splitlines()[1] == "6 shares exist"
    assert [s["index"] for s in registry["shares"] if s["origin"] == "generate-share"] == [x]


# -- the webhook receiver of the oversight guide ------------------------------------------------------


def _lines_until(lines: queue.Queue, wanted, seconds: float = 30) -> list[str]:
    """Take the receiver's stdout lines until one satisfies wanted, within a deadline."""
    seen: list[str] = []
    deadline = time.monotonic() + seconds
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"the receiver printed {seen!r}") from None
        if line is None:
            raise AssertionError(f"the receiver exited after printing {seen!r}")
        seen.append(line.rstrip("\n"))
        if wanted(seen[-1]):
            return seen


def _pump(stream, lines: queue.Queue) -> None:
    """Put each line of a stream on a queue, then None at its end."""
    for line in stream:
        lines.put(line)
    lines.put(None)


def test_the_webhook_receiver_runs_as_written(tmp_path):
    """The guide's receiver prints each signed event a real service sends it, and refuses a bad signature."""
    blocks = code_blocks(
        section(ROOT / "docs" / "oversight.md", "## Notifications: who hears of a ceremony"), "python"
    )
    assert len(blocks) == 1
    secret = secrets.token_urlsafe(24)
    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, "-u", "-c", blocks[0]],
        env={**os.environ, "GENERATE_SHARE_NOTIFY_SECRET": secret, "PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue = queue.Queue()
    pump = threading.Thread(target=_pump, args=(receiver.stdout, lines), daemon=True)
    pump.start()
    try:
        env = {
            **TOKEN_MODE,
            "GENERATE_SHARE_NOTIFY_URL": f"http://127.0.0.1:{port}/hook",
            "GENERATE_SHARE_NOTIFY_SECRET": secret,
        }
        with Server(tmp_path / "data", tmp_path / "gunicorn.log", env=env) as server:
            init = server.put("/v1/sys/init", json={"secret_shares": 3, "secret_threshold": 2}).json()
            token = init["root_token"]
            assert server.put("/v1/sys/generate-share/attempt", headers={"X-Vault-Token": token}).ok
            seen = _lines_until(lines, lambda line: " attempt_started " in f"{line} ")
            server.kill()
        assert seen[0].split()[:2] == ["1", "init"] and seen[-1].split()[:2] == ["2", "attempt_started"]
        assert all(line.split()[-1] == "127.0.0.1" for line in seen)  # the client address
        body = json.dumps(
            {"seq": 99, "event": "init", "client": "127.0.0.1", "audit_head": {"hash": "0" * 64}}
        ).encode()
        forged = requests.post(
            f"http://127.0.0.1:{port}/hook",
            data=body,
            headers={
                "X-Generate-Share-Signature": "sha256=" + hmac.new(b"wrong", body, hashlib.sha256).hexdigest()
            },
            timeout=10,
        )
        assert forged.status_code == 401
        signed = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        accepted = requests.post(
            f"http://127.0.0.1:{port}/hook",
            data=body,
            headers={"X-Generate-Share-Signature": signed},
            timeout=10,
        )
        assert accepted.status_code == 204
        for line in init["keys"]:
            assert line not in "\n".join(seen)
    finally:
        receiver.kill()
        receiver.wait(timeout=30)
        pump.join(timeout=30)
        receiver.stdout.close()


# -- the adoption example fits its own story (issue 25 item 4) --------------------------------------


def test_the_adoption_example_fits_its_story():
    """3-of-5 with one share lost: threshold 3, the four others brought, the lost x named, t-1 to prove."""
    guide = section(
        ROOT / "docs" / "operator-guide.md", "## Replacing a lost share of an existing Vault or OpenBao"
    )
    assert "3-of-5, one share lost" in guide
    example = re.search(
        r"generate-share adopt start --threshold (\d+) --required (\d+) --known ([\d,]+)", guide
    )
    threshold, required, known = int(example[1]), int(example[2]), example[3].split(",")
    assert (threshold, required, len(known)) == (3, 4, 1)  # 4 brought + 1 lost = the 5 of the story
    assert required == threshold + 1
    assert "If nobody noted the lost share's x" in guide
    assert "never reached generate-share" not in guide  # every survivor took part: no such share is left
    words = " ".join(guide.split())
    assert "t − 1 old shares** (two here)" in words


# -- the settings table -----------------------------------------------------------------------------


def test_the_deployment_guide_holds_the_settings_table_config_prints():
    """docs/deployment.md carries python -m app.config's table, byte for byte."""
    from app import config

    assert config.markdown_table() in (ROOT / "docs" / "deployment.md").read_text()


def test_no_example_in_the_docs_uses_a_pad_on_the_command_line():
    """decode --otp appears only as '--otp -' with --check, as the CLI accepts it."""
    for path in (README, *(ROOT / "docs" / g for g in GUIDES)):
        for use in re.findall(r"decode --otp \S+(?: --check \S+)?", path.read_text()):
            assert use.startswith("decode --otp - --check "), (path.name, use)


@pytest.mark.parametrize("guide", GUIDES)
def test_each_guide_starts_with_a_title_and_what_it_covers(guide):
    """A guide opens with a # title and a paragraph, as a reader arriving from the README expects."""
    lines = (ROOT / "docs" / guide).read_text().splitlines()
    assert lines[0].startswith("# ") and lines[1] == "" and lines[2].strip()


def test_the_curl_block_names_the_tools_it_needs():
    """The curl section says which programs its block runs, before the block."""
    text = section(README, "## A ceremony with curl")
    before = text[: text.index("```sh")]
    for tool in ("curl", "jq", "xxd", "base64", "gpg"):
        assert f"`{tool}`" in before, tool
