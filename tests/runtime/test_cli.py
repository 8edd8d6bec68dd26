"""`stead` command-line parsing and refusal of bad arguments."""

import pytest

from runtime.cli import build_parser, main


def test_serve_parses_sizes_durations_and_modes() -> None:
    args = build_parser().parse_args(
        ["serve", "examples.cart:application", "--max-body", "1KiB", "--retention", "2h",
         "--durability", "wal", "--always-replay"])
    assert args.max_body == 1024
    assert args.retention == 7200.0
    assert args.durability == "wal" and args.always_replay


def test_unknown_durability_is_refused() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "x:y", "--durability", "none"])


def test_bad_target_is_a_clear_error(capsys: pytest.CaptureFixture[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert main(["serve", "no_colon_here", "--data-dir", str(tmp_path / "d")]) == 2
    assert "MODULE:ATTRIBUTE" in capsys.readouterr().err
    assert main(["serve", "examples.cart:nothing", "--data-dir", str(tmp_path / "d")]) == 2
    assert "no attribute 'nothing'" in capsys.readouterr().err


def test_deployment_serve_has_its_own_options_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["deployment", "serve", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "MODULE:ATTR" in out and "--identity-key" in out and "--ready-file" in out
    with pytest.raises(SystemExit) as exit_:
        main(["deployment", "serve"])  # no app
    assert exit_.value.code == 2
