"""The CLI invoked in-process (click's CliRunner), as the CLI tests drive it.

The shell's GENERATE_SHARE_TOKEN never reaches a run: a test that wants the
lead's token passes it in ``env``.
"""

from click.testing import CliRunner, Result

from app.cli import cli
from app.cli.prompts import TOKEN_ENV

__all__ = ["TOKEN_ENV", "ok", "run"]


def run(address: str, *args: str, input: str | None = None, env: dict | None = None) -> Result:
    """Invoke the CLI against address; never a traceback."""
    env = {TOKEN_ENV: None, **(env or {})}
    result = CliRunner(env=env).invoke(
        cli, ["--address", address, *args], input=input, prog_name="generate-share"
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    return result


def ok(address: str, *args: str, input: str | None = None, env: dict | None = None) -> Result:
    """Invoke the CLI and assert that it succeeded."""
    result = run(address, *args, input=input, env=env)
    assert result.exit_code == 0, result.output
    return result
