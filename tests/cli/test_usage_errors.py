"""Usage errors (missing arguments, options of the wrong type, unknown commands) end in one line, exit code 2."""

import pytest
from typer.testing import CliRunner

from aigckit.cli import app


@pytest.mark.parametrize("args, words", [
    (["sample"], "Missing argument 'run_dir'; see '"),
    (["generate", "x", "--max-new-tokens", "abc"], "Invalid value for '--max-new-tokens'"),
    (["sample", "x", "--n", "1.5"], "Invalid value for '--n'"),
    (["nosuch"], "No such command 'nosuch'; see '"),
    (["train", "configs/dcgan-digits.yaml", "--no-such-option"], "No such option: --no-such-option"),
])
def test_usage_errors_are_one_line(args, words):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], result.output
    assert "Traceback" not in result.output


def test_help_still_works():
    result = CliRunner().invoke(app, ["sample", "--help"])
    assert result.exit_code == 0 and "--sampler" in result.output
