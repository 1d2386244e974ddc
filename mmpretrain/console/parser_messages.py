"""Turn jsonargparse's nested error reports into one line naming the key and what was expected.

jsonargparse reports a bad value deep in a `class_path`/`init_args` tree as an indented list
of "Parser key", "Problem with given class_path" and "Expected a ..." lines (tried against
every Union member). The walk below follows that tree to the innermost key.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re

_PARSER_KEY = re.compile(r'Parser key "([^"]+)"')
_CLASS_PATH = re.compile(r"Problem with given class_path '([^']+)'")
_NOT_ACCEPTED = re.compile(r"Option '([^']+)' is not accepted")
_NO_ATTRIBUTE = re.compile(r"module '([^']+)' has no attribute '([^']+)'")
_EXPECTED = re.compile(r"^-?\s*Expected a (.+?)(?:\. Got value: (.*))?$")
_NESTED_ARG = re.compile(r"NestedArg\(key='([^']+)', val='(.*)'\)")
_FILE_MISSING = re.compile(r"File does not exist: '?([^']+)'?")
_UNRECOGNIZED = "unrecognized arguments:"


def closest(word: str, candidates: list[str] | set[str]) -> str | None:
    matches = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _suggest(word: str, candidates: list[str] | set[str]) -> str:
    match = closest(word, candidates)
    return f"; did you mean {match!r}?" if match else ""


def init_parameters(class_path: str) -> list[str]:
    """Constructor argument names of `class_path` (what its `init_args` accept)."""
    module_name, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
        parameters = inspect.signature(cls).parameters.values()
    except (ImportError, AttributeError, TypeError, ValueError):
        return []
    return [p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


_LITERAL_MARK = "="


def _readable_type(text: str) -> list[str]:
    """"<class 'int'>" -> ["int"]; "typing.Literal['a', 'b']" -> ["='a'", "='b'"] (values)."""
    text = text.strip()
    literal = re.fullmatch(r"typing\.Literal\[(.*)\]", text)
    if literal:
        return [_LITERAL_MARK + value.strip() for value in literal.group(1).split(",")]
    plain = re.fullmatch(r"<class '(?:[\w.]+\.)?(\w+)'>", text)
    return [plain.group(1) if plain else text]


def parser_option_strings(parser) -> set[str]:
    """Every `--option` of a jsonargparse parser and of its subcommand parsers."""
    options: set[str] = set()
    stack, seen = [parser], set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        for action in getattr(current, "_actions", []):
            options.update(s for s in action.option_strings if s.startswith("--"))
            choices = getattr(action, "choices", None)
            if isinstance(choices, dict):
                stack.extend(p for p in choices.values() if hasattr(p, "_actions"))
    return options


def explain_unrecognized(message: str, parser) -> str:
    given = message.split(_UNRECOGNIZED, 1)[1].split()
    unknown = [arg.split("=", 1)[0] for arg in given if arg.startswith("--")] or given[:1]
    options = parser_option_strings(parser) if parser is not None else set()
    from mmpretrain.exact_keys import closest_keys  # prefers keys the word abbreviates

    def suggestion(arg: str) -> str:
        close = closest_keys(arg, sorted(options))
        return f"; did you mean {close[0]!r}?" if close else _suggest(arg, options)

    parts = [f"unknown option {arg}{suggestion(arg)}" for arg in unknown]
    return "; ".join(parts) if len(parts) > 1 else parts[0]


def explain_parser_message(message: str, parser=None) -> str:
    """One line for a jsonargparse error message (the text after `error:`)."""
    if _UNRECOGNIZED in message:
        return explain_unrecognized(message, parser)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    path: list[str] = []
    class_path: str | None = None
    after_class = False
    expected: list[str] = []
    got: str | None = None
    nested_arg: tuple[str, str] | None = None
    for line in lines:
        missing_file = _FILE_MISSING.search(line)
        if missing_file:
            return f"file {missing_file.group(1)!r} does not exist (given to --{_key(path, line)})"
        for key in _PARSER_KEY.findall(line):
            if path and after_class:
                path.append("init_args")
            path.append(key)
            after_class = "expects a function or a callable class" in line
            expected, got = [], None
        class_match = _CLASS_PATH.search(line)
        if class_match:
            class_path, after_class = class_match.group(1), True
            expected, got = [], None
        option = _NOT_ACCEPTED.search(line)
        if option:
            name = option.group(1)
            key = ".".join([*path, "init_args", name]) if path else name
            return (f"unknown key {key!r} for {class_path}"
                    f"{_suggest(name, init_parameters(class_path)) if class_path else ''}")
        no_attribute = _NO_ATTRIBUTE.search(line)
        if no_attribute:
            module, name = no_attribute.groups()
            return (f"{'.'.join(path)}: class {module}.{name} does not exist"
                    f"{_suggest(name, _public_names(module))}")
        nested = _NESTED_ARG.search(line)
        if nested:
            nested_arg = nested.groups()
            continue
        wanted = _EXPECTED.match(line.lstrip("- "))
        if wanted and not line.lstrip("- ").startswith(("Expected a path but", "Expected a dot import")):
            for kind in _readable_type(wanted.group(1)):
                if kind != "NoneType" and kind not in expected:
                    expected.append(kind)
            got = wanted.group(2) if wanted.group(2) is not None else got
        elif line.startswith("Given value:") and got is None:
            got = line.split(":", 1)[1].split(". Got value:", 1)[0].strip()
    key = ".".join(path)
    if nested_arg and path:
        key = f"{path[0]}.init_args.{nested_arg[0]}" if "." not in path[0] else path[0]
        got = nested_arg[1]
    if expected:
        literals = [kind for kind in expected if kind.startswith(_LITERAL_MARK)]
        kinds = [kind for kind in expected if not kind.startswith(_LITERAL_MARK)]
        if literals:
            kinds.append("one of " + ", ".join(kind.removeprefix(_LITERAL_MARK) for kind in literals))
        return f"{key}: expected {' or '.join(kinds)}, got {got!r}"
    return f"{key}: {lines[-1]}" if key else lines[-1] if lines else message


def _key(path: list[str], line: str) -> str:
    keys = _PARSER_KEY.findall(line)
    return ".".join(path + keys) or "config"


def _public_names(module: str) -> list[str]:
    try:
        return [n for n in dir(importlib.import_module(module)) if not n.startswith("_")]
    except ImportError:
        return []
