import argparse
from pathlib import Path

import pytest

from qembed_worker.cli.main import build_parser, main

from .conftest import TINY_BUNDLE

COMMANDS = (
    "export",
    "calibrate",
    "fixture",
    "golden",
    "embed",
    "check",
    "eval-bundle",
    "train",
    "qat-report",
)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def test_every_command_and_option_is_documented() -> None:
    commands = _subparsers(build_parser())
    # Other commands may join; every one of them must still document every option.
    assert set(COMMANDS) <= set(commands)
    for name, sub in commands.items():
        assert sub.description, name
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings}"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_exits_cleanly(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m qembed_worker {command}")
    assert "--help" in out and "show this help message and exit" in out


def test_check_accepts_the_fixture(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--bundle", str(TINY_BUNDLE)]) == 0
    assert '"ok": true' in capsys.readouterr().out


def test_errors_are_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--bundle", str(tmp_path)]) == 1
    assert "error:" in capsys.readouterr().err


def test_quantile_needs_q(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["calibrate", "--bundle", "x", "--out", "y", "--method", "quantile"])
    assert "--quantile" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["export", "quantize-weights"])
def test_if_missing_leaves_an_existing_bundle_alone(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "manifest.json").write_text("{}", encoding="utf-8")
    source = ["--model", "not-a-model"] if command == "export" else ["--bundle", str(tmp_path)]
    assert main([command, *source, "--out", str(out), "--if-missing"]) == 0
    assert "already there" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]


def test_a_declared_command_needs_a_run_function_and_the_other_way_round() -> None:
    from qembed_worker.cli import spec

    declaration = spec.load_spec()
    runs = {command["name"]: (lambda args: None) for command in declaration["command"]}
    spec.build_parser(runs, version="x", spec=declaration)
    with pytest.raises(ValueError, match="differ"):
        spec.build_parser({**runs, "extra": lambda args: None}, version="x", spec=declaration)
    runs.pop("check")
    with pytest.raises(ValueError, match="differ"):
        spec.build_parser(runs, version="x", spec=declaration)


def test_options_keep_their_types_and_defaults() -> None:
    args = build_parser().parse_args(
        [
            "train",
            "--bundle",
            "b",
            "--dataset",
            "d",
            "--out",
            "o",
            "--precisions",
            "int8,binary",
            "--weights",
            "1,0.5",
            "--no-normalize",
            "--quiet",
        ]
    )
    assert args.bundle == Path("b") and args.precisions == ("int8", "binary")
    assert args.weights == (1.0, 0.5) and args.normalize is False and args.progress is False
    assert args.temperature == 0.05 and args.checkpoint_dir is None
    ptq = build_parser().parse_args(
        ["quantize-weights", "--bundle", "b", "--out", "o", "--no-smooth"]
    )
    assert ptq.smooth is False and ptq.per_channel is True and ptq.exclude == []
    assert ptq.method == "minmax" and ptq.corpus == "lee"


def test_a_non_positive_count_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["eval-bundle", "--bundle", "b", "--dataset", "d", "--batch-size", "0"])
    assert exit_info.value.code == 2
    assert "not a positive integer" in capsys.readouterr().err


def test_encoder_report_needs_timings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["encoder-report", "--bundle", f"a={TINY_BUNDLE}", "--dataset", "d", "--out", "o.md"])
    assert exit_info.value.code == 2
    assert "--service-timings" in capsys.readouterr().err


def test_options_reach_the_parameters_of_the_same_name() -> None:
    from qembed_worker.cli.options import keywords

    def callee(bundle: Path, out: Path, limit: int = 1, other: str = "x") -> None: ...

    args = argparse.Namespace(bundle=Path("b"), out=Path("o"), limit=5, unrelated=True)
    assert keywords(args, callee, other="y") == {
        "bundle": Path("b"),
        "out": Path("o"),
        "limit": 5,
        "other": "y",
    }
