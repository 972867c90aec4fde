"""The progress file on its own: complete lines only, the contract's checks, torn and long lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker_bootstrap.progress import (
    MAX_LINE_BYTES,
    BadLine,
    ProgressTail,
    append_line,
    end_torn_line,
    last_valid_line,
    parse_line,
    parse_raw,
)


def test_a_half_written_line_is_read_once_it_is_whole(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    tail = ProgressTail(path)
    assert tail.read() == []  # no file yet
    path.write_text('{"step": 1, "value": 0.5}\n{"step": 2, "va')
    [first] = tail.read()
    assert parse_raw(first).step == 1 and first.end == tail.offset
    assert tail.read() == []
    with path.open("a") as handle:
        handle.write('lue": 0.6}\n')
    [second] = tail.read()
    assert (parse_raw(second).step, parse_raw(second).values) == (2, [{"value": 0.6}])
    assert second.end == path.stat().st_size


def test_a_last_line_without_newline_counts_once_the_evaluation_ended(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    path.write_text('{"step": 1, "value": 0.5}')
    tail = ProgressTail(path)
    assert tail.read() == []
    [line] = tail.read(final=True)
    assert parse_raw(line).step == 1


def test_reading_resumes_at_an_offset_and_restarts_when_the_file_shrank(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    append_line(path, 1, 0.5)
    append_line(path, 2, values=[{"name": "acc", "value": 0.6}], metadata={"lr": 0.1})
    offset = len(path.read_bytes().splitlines(keepends=True)[0])
    [line] = ProgressTail(path, offset).read()
    parsed = parse_raw(line)
    assert (parsed.step, parsed.values, parsed.metadata) == (
        2,
        [{"name": "acc", "value": 0.6}],
        {"lr": 0.1},
    )
    path.write_text('{"step": 1, "value": 0.1}\n')  # rewritten from scratch
    tail = ProgressTail(path, 10_000)
    assert [parse_raw(r).step for r in tail.read()] == [1] and tail.truncated


def test_a_line_longer_than_the_limit_is_refused_without_being_held(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    tail = ProgressTail(path)
    path.write_text("x" * (MAX_LINE_BYTES + 10))
    [refused] = tail.read()
    with pytest.raises(BadLine) as info:
        parse_raw(refused)
    assert info.value.kind == "too_long"
    with path.open("a") as handle:
        handle.write('yyy\n{"step": 7, "value": 1}\n')
    assert [parse_raw(r).step for r in tail.read()] == [7]  # the rest of it is skipped


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("nope", "not_json"),
        ('{"step": 1, "value": NaN}', "not_finite"),
        ('{"step": 1, "value": 1e999}', "not_finite"),
        ('{"step": 1, "values": [{"name": "a", "value": Infinity}]}', "not_finite"),
        ("[1, 2]", "invalid"),
        ('{"step": -1, "value": 1}', "invalid"),
        ('{"step": 1.5, "value": 1}', "invalid"),
        ('{"step": true, "value": 1}', "invalid"),
        ('{"value": 1}', "invalid"),
        ('{"step": 1}', "invalid"),
        ('{"step": 1, "value": 1, "values": [{"value": 1}]}', "invalid"),
        ('{"step": 1, "value": [1]}', "invalid"),
        ('{"step": 1, "value": "high"}', "invalid"),
        ('{"step": 1, "value": 1, "loss": 2}', "invalid"),
        ('{"step": 1, "value": 1, "metadata": [1]}', "invalid"),
        ('{"step": 1, "value": 1, "metadata": {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6}}',
         "invalid"),
    ],
)  # fmt: skip
def test_lines_that_break_the_contract_say_why(text: str, kind: str) -> None:
    with pytest.raises(BadLine) as info:
        parse_line(text)
    assert info.value.kind == kind


def test_the_last_valid_line_is_the_latest_word(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    assert last_valid_line(path) is None
    lines = [
        {"step": 1, "value": 0.1},
        {"step": 2, "value": 0.2},
        {"step": 1, "value": 0.9},  # a restart from scratch: below the step reached
        {"step": 3, "value": 0.3, "metadata": {"epoch": 3}},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"step": 4, "value": Na')
    last = last_valid_line(path)
    assert last is not None
    assert (last.step, last.values, last.metadata) == (3, [{"value": 0.3}], {"epoch": 3})


def test_a_torn_last_line_is_ended_before_the_next_attempt_writes(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    assert end_torn_line(path) is False
    path.write_text('{"step": 1, "value": 0.1}\n{"step": 2, "val')
    assert end_torn_line(path) is True
    append_line(path, 3, 0.3)
    assert end_torn_line(path) is False
    steps = []
    for raw in ProgressTail(path).read():
        try:
            steps.append(parse_raw(raw).step)
        except BadLine:
            steps.append(None)
    assert steps == [1, None, 3]


def test_append_line_refuses_calls_that_cannot_make_a_line(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    with pytest.raises(TypeError):
        append_line(path, 1)
    with pytest.raises(TypeError):
        append_line(path, 1, 0.5, values=[{"value": 0.5}])
    with pytest.raises(TypeError):
        append_line(path, 1.0, 0.5)  # type: ignore[arg-type]
    append_line(path, 1, float("nan"))  # the agent's to judge: written, then refused by it
    [raw] = ProgressTail(path).read()
    with pytest.raises(BadLine):
        parse_raw(raw)
