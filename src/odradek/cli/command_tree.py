"""The `odradek` command tree as data, read from the argparse definitions, for the generated
shell completion (`completion.py`) and the CLI reference (`reference.py`).

argparse has no public API to walk its parsers, so this is the one place that reads its
private attributes (`_actions`, `_SubParsersAction`, `_choices_actions`).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Option:
    flags: tuple[str, ...]
    takes_value: bool
    choices: tuple[str, ...]
    metavar: str
    help: str
    is_path: bool


@dataclass(frozen=True, slots=True)
class Command:
    path: tuple[str, ...]  # () for `odradek` itself, ("groups", "list") for `odradek groups list`
    parser: argparse.ArgumentParser
    help: str  # the one-line help its parent lists it with
    subcommands: tuple[str, ...]
    options: tuple[Option, ...]
    argument_choices: tuple[str, ...]  # the values positional arguments are limited to

    @property
    def name(self) -> str:
        return " ".join(("odradek", *self.path))


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:  # type: ignore[type-arg]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def _options(parser: argparse.ArgumentParser) -> tuple[Option, ...]:
    out: list[Option] = []
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        takes_value = action.nargs != 0
        metavar = action.metavar if isinstance(action.metavar, str) else ""
        out.append(
            Option(
                flags=tuple(action.option_strings),
                takes_value=takes_value,
                choices=tuple(str(c) for c in action.choices or ()),
                metavar=metavar or (action.dest.upper() if takes_value else ""),
                help=action.help or "",
                is_path=takes_value and metavar in ("FILE", "PATH", "DIR"),
            )
        )
    return tuple(out)


def walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = (), help_text: str = ""
) -> Iterator[Command]:
    """Every command, parents before children, subcommands in definition order."""
    sub = _subparsers(parser)
    children: list[tuple[str, argparse.ArgumentParser, str]] = []
    if sub is not None:
        helps = {a.dest: a.help or "" for a in sub._choices_actions}
        children = [(name, child, helps.get(name, "")) for name, child in sub.choices.items()]
    yield Command(
        path=path,
        parser=parser,
        help=help_text,
        subcommands=tuple(name for name, _, _ in children),
        options=_options(parser),
        argument_choices=tuple(
            str(choice)
            for action in parser._actions
            if not action.option_strings and not isinstance(action, argparse._SubParsersAction)
            for choice in action.choices or ()
        ),
    )
    for name, child, child_help in children:
        yield from walk(child, (*path, name), child_help)
