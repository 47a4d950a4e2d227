"""bin/sam's rewriting of the SAM CLI's arguments (local/sam_cli.py): a build's cache is its
architecture's own, and the architecture comes from the command line, else samconfig.toml."""

from __future__ import annotations

from pathlib import Path

from local import sam_cli


def test_a_build_s_cache_is_keyed_by_its_architecture():
    assert sam_cli.with_cache_per_architecture(["build", "--cached"], "arm64") == [
        "build", "--cached", "--cache-dir", ".aws-sam/cache/arm64"]
    # a cache dir of the caller's (CI's) keeps its place, one folder per architecture beneath it
    args = ["build", "CoreLayer", "--cache-dir", "/ci/cache", "--parameter-overrides", "Architecture=x86_64"]
    assert sam_cli.with_cache_per_architecture(args, "x86_64") == [
        "build", "CoreLayer", "--parameter-overrides", "Architecture=x86_64", "--cache-dir", "/ci/cache/x86_64"]
    assert sam_cli.with_cache_per_architecture(["build", "--cache-dir=/c"], "arm64")[-1] == "/c/arm64"


def test_the_build_s_architecture_is_the_command_line_s_else_samconfig_s_else_arm64(tmp_path: Path):
    assert sam_cli.build_architecture(["build"], tmp_path) == "arm64"
    (tmp_path / "samconfig.toml").write_text(
        'version = 0.1\n[default.deploy.parameters]\nparameter_overrides = "StageName=prod Architecture=x86_64"\n')
    assert sam_cli.build_architecture(["build"], tmp_path) == "x86_64"
    assert sam_cli.build_architecture(["build", "--parameter-overrides", "Architecture=arm64"], tmp_path) == "arm64"


def test_parameter_overrides_are_read_and_written_as_sam_does():
    assert sam_cli.parse_overrides('A=1 B="two words" ParameterKey=C,ParameterValue=3 D=') == {
        "A": "1", "B": "two words", "C": "3", "D": ""}
    assert [sam_cli.quote_value(v) for v in ("x", "cron(15 0 * * ? *)", "", 'say "hi"')] == [
        "x", '"cron(15 0 * * ? *)"', '""', '"say \\"hi\\""']
