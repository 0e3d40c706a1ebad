#!/usr/bin/env python3
"""Prints one of the two commands the README opens with, word for word, so that CI runs exactly
what a new user copies: `readme_commands.py first` (run Standby on the demo) or `second` (the
tests). The commands are the first two lines of README.md's first ```sh block, without their
trailing `# comment`, character for character. Fails loudly if the README no longer has that
shape."""
import os
import sys

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "README.md")


def without_comment(line):
    """The line as written, up to a `#` that starts a word outside quotes (a shell comment)."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def opening_commands(text):
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "```sh")
    except StopIteration:
        sys.exit("README.md has no ```sh block")
    commands = []
    for line in lines[start + 1:]:
        if line.strip() == "```":
            break
        command = without_comment(line).strip()
        if command:
            commands.append(command)
    if len(commands) != 2:
        sys.exit(f"README.md's first ```sh block must hold exactly two commands, found {len(commands)}")
    return commands


def main():
    which = sys.argv[1] if len(sys.argv) == 2 else ""
    if which not in ("first", "second"):
        sys.exit("usage: readme_commands.py first|second")
    with open(README, encoding="utf-8") as f:
        first, second = opening_commands(f.read())
    print(first if which == "first" else second)


if __name__ == "__main__":
    main()
