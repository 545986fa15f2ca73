"""A systemd EnvironmentFile= read the way systemd reads it, so the tests load
deploy/applications-api.env as the unit does, not as a shell would: the states of
systemd's own reader (src/basic/env-file.c, parse_env_file_internal), and
systemd.exec(5):

- a line whose first non-blank character is "#" or ";" is a comment; "#" anywhere else
  is part of the value;
- KEY=VALUE, blank around the key and before the value dropped, and an unquoted value's
  trailing blank; a line without "=" is ignored;
- quotes open a quoted value only where the value starts ('…' verbatim, "…" with \\" \\\\
  \\` \\$ unescaped); later in a value they are plain characters; a backslash keeps the
  next character, and a backslash-newline continues the line;
- nothing is expanded: $VAR and $(command) stay as written.
"""

from pathlib import Path

WHITESPACE = " \t\n\r"
NEWLINE = "\n\r"
COMMENTS = "#;"
SHELL_NEED_ESCAPE = '"\\`$'


def environment_file(path: Path | str) -> dict[str, str]:
    found: dict[str, str] = {}
    state = "pre_key"
    key: list[str] = []
    value: list[str] = []
    kept = 0  # the unquoted value's length less its trailing blank

    def push(chomp: bool) -> None:
        name = "".join(key).rstrip(WHITESPACE)
        found[name] = "".join(value[:kept] if chomp else value)
        key.clear()
        value.clear()

    for char in Path(path).read_text(encoding="utf-8"):
        if state == "pre_key":
            if char in COMMENTS:
                state = "comment"
            elif char not in WHITESPACE:
                state, key[:] = "key", [char]
        elif state == "key":
            if char in NEWLINE:
                state = "pre_key"
                key.clear()
            elif char == "=":
                state = "pre_value"
            else:
                key.append(char)
        elif state == "pre_value":
            if char in NEWLINE:
                state = "pre_key"
                push(chomp=False)
            elif char == "'":
                state = "single_quoted"
            elif char == '"':
                state = "double_quoted"
            elif char == "\\":
                state = "value_escape"
            elif char not in WHITESPACE:
                state = "value"
                value.append(char)
                kept = len(value)
        elif state == "value":
            if char in NEWLINE:
                state = "pre_key"
                push(chomp=True)
            elif char == "\\":
                state = "value_escape"
            else:
                value.append(char)
                if char not in WHITESPACE:
                    kept = len(value)
        elif state == "value_escape":
            state = "value"
            if char not in NEWLINE:
                value.append(char)
                kept = len(value)
        elif state == "single_quoted":
            if char == "'":
                state, kept = "pre_value", len(value)
            else:
                value.append(char)
        elif state == "double_quoted":
            if char == '"':
                state, kept = "pre_value", len(value)
            elif char == "\\":
                state = "double_quoted_escape"
            else:
                value.append(char)
        elif state == "double_quoted_escape":
            state = "double_quoted"
            if char in SHELL_NEED_ESCAPE:
                value.append(char)
            elif char != "\n":
                value.extend(("\\", char))
        elif state == "comment":
            if char == "\\":
                state = "comment_escape"
            elif char in NEWLINE:
                state = "pre_key"
        elif state == "comment_escape":
            state = "pre_key" if char in NEWLINE else "comment"
    if state not in ("pre_key", "key", "comment", "comment_escape"):
        push(chomp=state == "value")
    return found
