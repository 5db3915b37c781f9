"""``metacni demo --step``: each stage waits for a line on stdin; end of input runs through."""

from __future__ import annotations

import io

from metacni.cli.demo_cmd import _Progress


def test_step_waits_for_a_line_per_stage_and_runs_through_at_end_of_input(monkeypatch, capsys):
    stdin = io.StringIO("\n")
    monkeypatch.setattr("sys.stdin", stdin)
    progress = _Progress(pause=True)
    progress("first stage")
    assert stdin.tell() == 1  # the one line was read before the first stage went on
    assert progress.pause
    progress("second stage")  # end of input: no more waiting
    assert not progress.pause
    progress("third stage")
    err = capsys.readouterr().err.splitlines()
    assert [line.endswith("(Enter: go on)") for line in err] == [True, True, False]


def test_without_step_stdin_is_never_read(monkeypatch, capsys):
    class Untouchable(io.StringIO):
        def readline(self, *args: object) -> str:  # type: ignore[override]
            raise AssertionError("stdin read without --step")

    monkeypatch.setattr("sys.stdin", Untouchable())
    progress = _Progress()
    progress("a stage")
    assert "(Enter" not in capsys.readouterr().err
