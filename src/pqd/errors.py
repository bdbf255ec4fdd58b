"""One exception type for problems the user can fix.

Every PQDError message is a single line that names the problem and the fix; the CLI prints it without a
traceback. Anything else that escapes is a bug in pqd.
"""


class PQDError(Exception):
    """A user-facing error: bad input, missing files, impossible settings."""


def format_validation_error(e, source: str) -> str:
    """One line for a pydantic ValidationError: '<source>: <field path>: <problem> (got <value>)'."""
    errors = e.errors()
    err = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])  # a typo explains the rest
    loc = ""
    for p in err["loc"]:
        loc += f"[{p}]" if isinstance(p, int) else (f".{p}" if loc else str(p))
    msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    shown = "" if err["type"] in ("extra_forbidden", "missing") or isinstance(got, (dict, list)) else f" (got {got!r})"
    return f"{source}: {loc + ': ' if loc else ''}{msg}{shown}"
