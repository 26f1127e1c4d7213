"""Finding the line of a key path in TOML text."""

from __future__ import annotations

import tomllib

from hotstandby.config.errors import KeyPath
from hotstandby.config.positions import key_lines, line_of

from .config_samples import BASE, line_with


def test_top_level_tables_and_keys() -> None:
    assert line_of(BASE, ("cluster",)) == 1
    assert line_of(BASE, ("cluster", "secret_file")) == 3
    assert line_of(BASE, ("timers", "lease")) == line_with(BASE, "lease =")


def test_arrays_of_tables_are_indexed() -> None:
    assert line_of(BASE, ("node", 1)) == line_with(BASE, "[[node]]", 2)
    assert line_of(BASE, ("node", 1, "name")) == line_with(BASE, 'name = "beta"')
    assert line_of(BASE, ("link", 1, "endpoints", "beta")) == line_with(BASE, "/dev/ttyS1")
    assert line_of(BASE, ("link", 0, "endpoints")) == line_with(BASE, "[link.endpoints]")


def test_missing_keys_fall_back_to_the_enclosing_table() -> None:
    assert line_of(BASE, ("node", 1, "priority")) == line_with(BASE, "[[node]]", 2)
    assert line_of(BASE, ("resource", 0, "params", "extra", "nested")) == line_with(BASE, "extra =")
    assert line_of(BASE, ("nowhere", 3)) == 1
    assert line_of(BASE, ()) == 1


TRICKY = """\
# comment [not.a.table]
title = "a # not a comment"   # a comment
"quoted.key" = 1
'literal' = 2
dotted.key.path = 3
multi = \"\"\"
[not.a.table]
name = "inside a string" \\\"\"\"
\"\"\"\"
lit = '''
[[also.not]]
'''
arr = [
  1, # comment
  [2, 3],
  { a = 1, b = "x" },
]
inline = { x = { y = 1 }, z = [1, 2] }
when = 1979-05-27 07:32:00Z

[ spaced . "header" ]
key = true

[[outer]]
[[outer.inner]]
v = 1
[[outer.inner]]
v = 2
[[outer]]
[[outer.inner]]
v = 3
[outer.sub]
w = 4
"""


def test_tricky_syntax() -> None:
    assert tomllib.loads(TRICKY)  # the fixture is valid TOML
    lines = key_lines(TRICKY)
    expected: dict[KeyPath, str] = {
        ("title",): "title =",
        ("quoted.key",): '"quoted.key"',
        ("literal",): "'literal'",
        ("dotted",): "dotted.key",
        ("dotted", "key", "path"): "dotted.key",
        ("multi",): "multi =",
        ("lit",): "lit =",
        ("arr",): "arr =",
        ("inline",): "inline =",
        ("when",): "when =",
        ("spaced", "header"): "[ spaced",
        ("spaced", "header", "key"): "key = true",
    }
    for key, snippet in expected.items():
        assert lines[key] == line_with(TRICKY, snippet), key
    assert ("not", "a", "table") not in lines
    assert ("also",) not in lines
    assert ("name",) not in lines


def test_nested_arrays_of_tables_count_per_parent() -> None:
    lines = key_lines(TRICKY)
    assert lines[("outer", 0, "inner", 1, "v")] == line_with(TRICKY, "v = 2")
    assert lines[("outer", 1, "inner", 0, "v")] == line_with(TRICKY, "v = 3")
    assert lines[("outer", 1, "sub", "w")] == line_with(TRICKY, "w = 4")
    assert lines[("outer",)] == line_with(TRICKY, "[[outer]]")


def test_text_without_final_newline() -> None:
    assert line_of("a = 1\nb = 2", ("b",)) == 2
    assert line_of("[t]\nx = 1 # end", ("t", "x")) == 2
