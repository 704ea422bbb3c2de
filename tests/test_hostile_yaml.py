"""Hostile or broken YAML files end in one located line and exit 3 (issue 14).

Every YAML file a project has goes through the same reader: ``driftline_project.yml``,
``monitors/*.yml`` and ``macros/*.yml``. A file that would make it spin (nested aliases, a
"billion laughs"), take minutes (tens of megabytes), or crash (UTF-16, binary, 5,000-deep
nesting) is refused with ``path:line:column: message`` before the warehouse is even opened, so
``driftline validate`` creates nothing, not even the DuckDB file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from driftline import cli
from driftline.spec.yaml_source import MAX_DEPTH, MAX_FILE_BYTES

FILES = ("driftline_project.yml", "monitors/hostile.yml", "macros/hostile.yml")


def billion_laughs() -> str:
    """342 bytes whose aliases expand to 9^9 (387 million) strings."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in "bcdefghi":
        previous = chr(ord(level) - 1)
        lines.append(f"{level}: &{level} [{','.join([f'*{previous}'] * 9)}]")
    return "\n".join(lines) + "\n"


OVERSIZED = b"name: x\n# " + b"x" * MAX_FILE_BYTES  # a valid file, but over the limit
DEEP = "a: " + "[" * 5000 + "]" * 5000 + "\n"

# name: (the file's bytes, where the problem is, the message)
CASES = {
    "over_1_mb": (OVERSIZED, "1:1", f"the file is {len(OVERSIZED):,} bytes, over the limit of 1,000,000 (1 MB) "
                                    "for a driftline YAML file; split it into several files"),
    "utf16": ("name: x\n".encode("utf-16"), "1:1", "the file is UTF-16 text; driftline reads UTF-8: save it as UTF-8"),
    "latin1": ("name: x\nowner: café\n".encode("latin-1"), "2:11", "the file is not UTF-8 text (byte 0xe9 here); save it as UTF-8"),
    "binary": (b"name: x\n\x89PNG\r\n\x1a\n\x00", "2:1", "the file is not UTF-8 text (byte 0x89 here); save it as UTF-8"),
    "utf16_without_bom": ("name: x\n".encode("utf-16-le"), "1:2",
                          "the file holds a NUL byte: it is binary, or UTF-16 text; driftline reads UTF-8 text"),
    "control_character": (b"name: x\nowner: a\x07b\n", "2:9", "character #x0007 is not allowed in YAML; is this a text file?"),
    "5000_deep": (DEEP.encode(), f"1:{3 + MAX_DEPTH}", f"nested more than {MAX_DEPTH} levels deep; a driftline file needs a handful"),
}


def write(project_root: Path, file: str, content: bytes) -> Path:
    path = project_root.resolve() / file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def assert_refused(code: int, out: str, err: str, path: Path, where: str, message: str) -> None:
    assert (code, out) == (3, ""), err
    assert err == f"{path}:{where}: {message}\n"
    assert not (path.parents[1 if path.parent.name in ("monitors", "macros") else 0] / "warehouse.duckdb").exists()


@pytest.mark.parametrize("file", FILES)
@pytest.mark.parametrize("case", CASES)
def test_a_hostile_file_is_one_located_line(make_project, capsys, case, file):
    project = make_project()  # no tables: validate would create warehouse.duckdb on connecting
    content, where, message = CASES[case]
    path = write(project.root, file, content)

    code = cli.main(["validate", "--project", str(project.root)])

    captured = capsys.readouterr()
    assert_refused(code, captured.out, captured.err, path, where, message)


@pytest.mark.parametrize("file", FILES)
def test_a_billion_laughs_is_refused_at_its_first_anchor(make_project, file):
    """Before: `validate` expanded the aliases and never finished. A subprocess, so that such a
    regression fails on the timeout instead of hanging the test run."""
    project = make_project()
    path = write(project.root, file, billion_laughs().encode())
    assert len(path.read_bytes()) < 400

    ran = subprocess.run([sys.executable, "-m", "driftline.cli", "validate", "--project", str(project.root)],
                         capture_output=True, text=True, timeout=120)

    message = "YAML anchors and aliases (&name, *name) are not supported; write the value out in full"
    assert_refused(ran.returncode, ran.stdout, ran.stderr, path, "1:4", message)


@pytest.mark.parametrize("file", FILES[:2])  # macro files read their values as text, untagged
@pytest.mark.parametrize(("text", "where", "message"), [
    ("name: !!python/name:os.system x\n", "1:7",
     "invalid YAML: could not determine a constructor for the tag 'tag:yaml.org,2002:python/name:os.system'"),
    ("name: x\n? [a, b]\n: 1\n", "2:3", "a key must be a word, not a list or a mapping (`? [a, b]: ...`)"),
])
def test_tags_and_keys_that_are_not_words(make_project, capsys, file, text, where, message):
    project = make_project()
    path = write(project.root, file, text.encode())

    code = cli.main(["validate", "--project", str(project.root)])

    captured = capsys.readouterr()
    assert_refused(code, captured.out, captured.err, path, where, message)


def test_a_duration_too_long_for_the_calendar(make_project, capsys):
    """Before: ``every: 9999999d`` made every run fail with an OverflowError."""
    project = make_project()
    path = write(project.root, "monitors/m.yml", b"name: m\nschedule:\n  every: 9999999d\n")

    code = cli.main(["validate", "--project", str(project.root)])

    captured = capsys.readouterr()
    assert code == 3  # with the keys this monitor misses, one line each
    assert f"{path}:3:3: schedule.every: '9999999d' is longer than 3650d, the longest duration driftline accepts\n" in captured.err


def test_debug_adds_the_traceback_and_keeps_exit_code_3(make_project, capsys):
    """Before: --debug re-raised, and Python exits 1: "some check warns"."""
    project = make_project()
    path = write(project.root, "monitors/m.yml", "name: m\n".encode("utf-16"))

    code = cli.main(["--debug", "validate", "--project", str(project.root)])

    err = capsys.readouterr().err
    assert code == 3
    assert err.startswith("Traceback (most recent call last)")
    assert err.splitlines()[-1] == f"{path}:1:1: the file is UTF-16 text; driftline reads UTF-8: save it as UTF-8"


def test_a_file_at_the_limits_is_read(make_project, capsys):
    """Just inside the limits: MAX_DEPTH levels, and MAX_FILE_BYTES bytes."""
    project = make_project()
    deep = "a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    padded = deep + "#" * (MAX_FILE_BYTES - len(deep) - 1) + "\n"
    path = write(project.root, "monitors/m.yml", padded.encode())
    assert len(path.read_bytes()) == MAX_FILE_BYTES

    assert cli.main(["validate", "--project", str(project.root)]) == 3
    err = capsys.readouterr().err  # read whole: what is wrong now is the monitor itself
    assert f"{path}:1:1: unknown key 'a' in document" in err
