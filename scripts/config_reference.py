"""Write the configuration reference page, docs/reference/configuration.md, from the command's own parser:
every section and key with its type, default and help text, as --help has them (a test fails when the
committed page differs from what this writes).

    python scripts/config_reference.py            # writes the page
    python scripts/config_reference.py --check    # exit 1 when the page is not what it would write
"""

import argparse
import re
import sys
from pathlib import Path

import yaml
from jsonargparse import Namespace

from gd_torch.adapters.jsonargparse import option_groups
from gd_torch.cli import GradientDescentCLI

PAGE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "configuration.md"
SUPPRESS = "==SUPPRESS=="
INTRO = """# Configuration reference

Every key of the command, section by section, with its type, default and help text, as
`python scripts/train.py --help` prints them. This page is written from the command's parser by
`python scripts/config_reference.py` (a test fails when it differs), so it cannot drift from `--help`.

A key is set in a config file (`model: {learning_rate: 0.05}`) or on the command line
(`--model.learning_rate 0.05`); the command line wins. Keys that take a class (`model.model`, `data`,
`trainer.logger`, `trainer.callbacks`, `model.optimizer`) take `class_path` and `init_args`;
`--model.model.help CLASS` (or `--data.help CLASS`) lists that class's own arguments.
"""


class _Parsed(Exception):
    """Carries the parser out of the CLI before it parses anything."""


class _ReferenceCLI(GradientDescentCLI):
    def parse_arguments(self, parser, args) -> None:
        raise _Parsed(parser)


def command_parser():
    try:
        _ReferenceCLI([])
    except _Parsed as parsed:
        return parsed.args[0]
    raise RuntimeError("the CLI parsed without asking for its parser")


def type_name(action: argparse.Action) -> str:
    hint = getattr(action, "_typehint", None) or action.type
    if hint is None:
        return ""
    text = getattr(hint, "__name__", None) if isinstance(hint, type) else None
    text = text or str(hint)
    text = re.sub(r"<class '([^']+)'>", r"\1", text)
    text = re.sub(r"\b(?:[a-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", text)  # lightning.pytorch...Logger: Logger
    return text.replace("NoneType", "None")


def default_text(default) -> str:
    """The default as a config file would write it."""
    if default in (None, SUPPRESS):
        return "null"
    if isinstance(default, Namespace):
        return yaml.safe_dump(default.as_dict(), default_flow_style=True, width=10**6).strip()
    if isinstance(default, bool):
        return "true" if default else "false"
    return str(default)


def cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def sections(parser) -> list[tuple[str, str, list[tuple[str, str, str, str]]]]:
    """(section key, its description, [(key, type, default, help)])."""
    found = []
    for title, actions in option_groups(parser):
        rows, section = [], None
        for action in actions:
            long = [s for s in action.option_strings if s.startswith("--")]
            if not long or long[0] in ("--help", "--print_config") or long[0].endswith(".help"):
                continue
            key = long[0][2:]
            if action.default == SUPPRESS and type(action).__name__ == "_ActionConfigLoad":
                section = key  # the section's own --trainer: a config file for the section alone
                continue
            rows.append((key, type_name(action), default_text(action.default), action.help or ""))
        if rows:
            section = section or rows[0][0].split(".")[0]
            found.append((section, title, rows))
    return found


def page() -> str:
    parts = [INTRO]
    for section, title, rows in sections(command_parser()):
        top = section in ("config", "seed_everything", "ckpt_path")
        heading, about = ("Top level", "") if top else (f"`{section}`", f"{cell(title)}\n\n")
        parts.append(f"\n## {heading}\n\n{about}| key | type | default | what it does |\n| --- | --- | --- | --- |")
        parts += [f"| `{key}` | {cell(kind)} | {cell(default)} | {cell(text)} |" for key, kind, default, text in rows]
    return "\n".join(parts) + "\n"


def main() -> int:
    text = page()
    if "--check" in sys.argv[1:]:
        if not PAGE.is_file() or PAGE.read_text() != text:
            print(f"{PAGE} is not what the parser gives: python scripts/config_reference.py writes it", file=sys.stderr)
            return 1
        return 0
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(text)
    print(f"Wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
