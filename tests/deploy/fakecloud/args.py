"""Command-line parsing shared by the fake tools: positionals, --flag=value / --flag value, booleans."""

from __future__ import annotations

from dataclasses import dataclass, field

from fakecloud.platform import UsageError


@dataclass
class Parsed:
    words: list[str] = field(default_factory=list)
    flags: dict[str, str] = field(default_factory=dict)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.flags.get(name, default)

    def need(self, name: str) -> str:
        if name not in self.flags:
            raise UsageError(f"--{name} is required here")
        return self.flags[name]

    def has(self, name: str) -> bool:
        return name in self.flags


def parse(args: list[str], booleans: set[str], short: dict[str, str] | None = None) -> Parsed:
    """Flags in `booleans` take no value; every other --flag takes the next word unless given with =."""
    short = short or {}
    parsed = Parsed()
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            parsed.flags["--"] = " ".join(args[index + 1 :])
            parsed.words.append("--")
            parsed.words.extend(args[index + 1 :])
            break
        if arg.startswith("--"):
            name, equals, value = arg[2:].partition("=")
            if equals:
                parsed.flags[name] = value
            elif name in booleans or name.startswith("no-") and name[3:] in booleans:
                parsed.flags[name] = "true"
            elif index + 1 < len(args):
                index += 1
                parsed.flags[name] = args[index]
            else:
                raise UsageError(f"--{name} needs a value")
        elif arg.startswith("-") and len(arg) > 1 and arg[1:2] in short:
            name = short[arg[1:2]]
            if len(arg) > 2:
                parsed.flags[name] = arg[2:]
            elif name in booleans:
                parsed.flags[name] = "true"
            else:
                index += 1
                parsed.flags[name] = args[index]
        else:
            parsed.words.append(arg)
        index += 1
    return parsed


def value_format(fields: str, record: dict) -> str:
    """gcloud's --format='value(a.b,c)': tab-separated values of the named fields."""
    values = []
    for path in fields.split(","):
        current = record
        for part in path.strip().split("."):
            current = current.get(part, "") if isinstance(current, dict) else ""
        values.append(str(current))
    return "\t".join(values)
