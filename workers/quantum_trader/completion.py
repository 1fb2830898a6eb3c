"""Shell completion for ``qt``, generated from its argparse parser (so it never drifts).

``eval "$(qt completion bash)"`` or ``eval "$(qt completion zsh)"``: subcommands with their
summaries (zsh), every option of each subcommand, the choices of an option or a positional
(``--clock wall|sim``, ``qt worker NAME``), and file names for ``--profile`` and files.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass
from typing import Final, Literal

FILE_DESTS: Final = frozenset({"profile", "files", "file"})


@dataclass(frozen=True, slots=True)
class Option:
    flags: tuple[str, ...]
    help: str
    takes_value: bool
    choices: tuple[str, ...]
    files: bool


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    summary: str
    options: tuple[Option, ...]
    positional_choices: tuple[str, ...]
    positional_files: bool


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise ValueError("qt has no subcommands")


def commands(parser: argparse.ArgumentParser) -> list[Command]:
    """Every subcommand with its options, from the parser."""
    sub = _subparsers(parser)
    summaries = {a.dest: a.help or "" for a in sub._choices_actions}
    out = []
    for name, p in sub.choices.items():
        options: list[Option] = []
        choices: tuple[str, ...] = ()
        files = False
        for a in p._actions:
            if a.help == argparse.SUPPRESS:
                continue
            if a.option_strings:
                takes = a.nargs != 0
                options.append(Option(tuple(a.option_strings), (a.help or "").replace("%(default)s", ""), takes,
                                      tuple(str(c) for c in a.choices or ()), a.dest in FILE_DESTS))
            elif a.nargs != argparse.REMAINDER:
                choices += tuple(str(c) for c in a.choices or getattr(a, "completions", ()))
                files = files or a.dest in FILE_DESTS
        out.append(Command(name, summaries.get(name, ""), tuple(options), choices, files))
    return out


def bash(parser: argparse.ArgumentParser) -> str:
    cmds = commands(parser)
    lines = [
        "# bash completion for qt: eval \"$(qt completion bash)\"",
        "_qt() {",
        '  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" cmd="${COMP_WORDS[1]}"',
        "  COMPREPLY=()",
        "  if [[ $COMP_CWORD -eq 1 ]]; then",
        f'    COMPREPLY=($(compgen -W {shlex.quote(" ".join(c.name for c in cmds) + " --help --version")} -- "$cur"))',
        "    return",
        "  fi",
        '  case "$cmd:$prev" in',
    ]
    for c in cmds:
        for o in c.options:
            if not o.takes_value:
                continue
            pattern = "|".join(f"{c.name}:{f}" for f in o.flags)
            if o.choices:
                lines.append(f'    {pattern}) COMPREPLY=($(compgen -W {shlex.quote(" ".join(o.choices))} -- "$cur")); return ;;')
            elif o.files:
                lines.append(f'    {pattern}) COMPREPLY=($(compgen -f -- "$cur")); return ;;')
            else:
                lines.append(f"    {pattern}) return ;;")
    lines += ["  esac", '  local opts="" words=""', '  case "$cmd" in']
    for c in cmds:
        opts = " ".join(f for o in c.options for f in o.flags)
        lines.append(f"    {c.name}) opts={shlex.quote(opts)}; words={shlex.quote(' '.join(c.positional_choices))} ;;")
    lines += [
        "  esac",
        '  if [[ "$cur" == -* ]]; then',
        '    COMPREPLY=($(compgen -W "$opts" -- "$cur"))',
        '  elif [[ -n "$words" ]]; then',
        '    COMPREPLY=($(compgen -W "$words" -- "$cur"))',
        "  fi",
        "}",
        "complete -o default -F _qt qt",
    ]
    return "\n".join(lines)


def _zsh_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "'\\''").replace("[", "\\[").replace("]", "\\]").replace(":", "\\:")


def _zsh_option(o: Option) -> str:
    help_text = _zsh_text(o.help.splitlines()[0] if o.help else "")
    if len(o.flags) > 1:
        head = "(" + " ".join(o.flags) + ")'{" + ",".join(o.flags) + "}'"
    else:
        head = o.flags[0]
    if not o.takes_value:
        return f"'{head}[{help_text}]'"
    if o.choices:
        action = f":{o.flags[-1].lstrip('-')}:({' '.join(o.choices)})"
    elif o.files:
        action = ":file:_files"
    else:
        action = f":{o.flags[-1].lstrip('-')}:"
    return f"'{head}[{help_text}]{action}'"


def zsh(parser: argparse.ArgumentParser) -> str:
    cmds = commands(parser)
    lines = [
        "#compdef qt",
        "# zsh completion for qt: eval \"$(qt completion zsh)\"",
        "_qt() {",
        "  local -a subcommands",
        "  subcommands=(",
        *[f"    '{c.name}:{_zsh_text(c.summary)}'" for c in cmds],
        "  )",
        "  if (( CURRENT == 2 )); then",
        "    _describe -t commands 'qt command' subcommands",
        "    return",
        "  fi",
        "  local cmd=${words[2]}",
        "  words=(${words[1]} ${words[3,-1]})",
        "  (( CURRENT-- ))",
        "  case $cmd in",
    ]
    for c in cmds:
        specs = [_zsh_option(o) for o in c.options]
        if c.positional_choices:
            specs.append(f"'1:{c.name}:({' '.join(c.positional_choices)})'")
        elif c.positional_files:
            specs.append("'*:file:_files'")
        body = " \\\n        ".join(specs) if specs else "'*::'"
        lines.append(f"    {c.name})\n      _arguments -s \\\n        {body}\n      ;;")
    lines += ["  esac", "}", 'if (( $+functions[compdef] )); then compdef _qt qt; fi']
    return "\n".join(lines)


def script(parser: argparse.ArgumentParser, *, shell: Literal["bash", "zsh"] | str) -> str:
    if shell == "bash":
        return bash(parser)
    if shell == "zsh":
        return zsh(parser)
    raise ValueError(f"unknown shell {shell!r}: bash or zsh")
