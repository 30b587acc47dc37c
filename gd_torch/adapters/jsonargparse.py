"""jsonargparse's side of the command: its error messages made plain, ``--help`` made short, and the
optimizer a config gives.

Validation happens at the source: every project class checks its arguments in ``__init__`` and raises
a ``ValueError`` that names the argument, the value and what is allowed, and :func:`explain` only
prefixes the config key. What jsonargparse itself reports (a wrong type, a value outside a union or a
literal, a nested class_path) has its own wording, keyed here by regular expressions as a documented
fallback: ``tests/test_adapters.py`` pins each message, so an upgrade that rewords one fails there.
"""

import inspect
import re
from collections.abc import Callable

import torch
from jsonargparse import DefaultHelpFormatter

from gd_torch.errors import one_line


def explain(error: ValueError, config_key_of: Callable[[type], str | None]) -> str:
    """``model.learning_rate must be ...`` from a constructor's ``learning_rate must be ...``.

    jsonargparse wraps what a constructor raised; the innermost error has the user's words, and the
    ``__init__`` it was raised in tells which config section it belongs to (``config_key_of`` maps
    the class to its key). The constructors' messages begin with the argument's name, so the key and
    the message together name the value in full.
    """
    while isinstance(wrapped := cause_of(error), ValueError):
        error = wrapped
    message = one_line(str(error))
    # The innermost configured class whose __init__ it went through (a helper it built may have raised).
    owner, key = next(((cls, key) for cls in raised_in_init_of(error) if (key := config_key_of(cls))), (None, None))
    if key is None:
        return message
    first_word = re.match(r"\w+", message)
    if first_word and first_word[0] in init_parameters(owner):
        return f"{key}.{message}"
    return f"{key}: {message}"


def init_parameters(cls: type) -> set[str]:
    """The constructor arguments of ``cls`` and of the classes its ``**options`` go on to."""
    return {name for klass in cls.__mro__ for name in inspect.signature(klass.__init__).parameters}


def plain_parser_message(text: str) -> str:
    """jsonargparse's message, less its machinery: the key path, the bad value, what was expected.

    ``Parser key "data": Does not validate against any of the Union subtypes ... - Problem with given
    class_path '...Points': Parser key "x": Expected a <class 'float'>. Got value: a`` becomes
    ``data.init_args.x: expected float, got a``.
    """
    if "Union subtypes" in text:
        key = re.match(r'Parser key "([^"]+)":\s*', text)
        errors = text.split("Errors:", 1)[-1].split("Given value type:", 1)[0]
        reasons = [r.strip() for r in re.split(r"\n\s*- ", errors)[1:] if "NoneType" not in r]
        given = re.search(r"Given value: (.*)$", text, re.DOTALL)
        simple = [re.fullmatch(r"Expected a (.*)", r) for r in reasons]
        if reasons and all(simple) and given:  # e.g. float | Literal['auto']: name every type allowed
            allowed = allowed_values([match[1] for match in simple])
            return (f"{key[1]}: " if key else "") + f"expected {allowed}, got {one_line(given[1])}"
        if reasons:
            text = (f'Parser key "{key[1]}": ' if key else "") + reasons[0]
    text = one_line(text)
    nested = r'Parser key "([^"]+)": Problem with given class_path \'[^\']+\': Parser key "([^"]+)"'
    while re.search(nested, text):
        text = re.sub(nested, r'Parser key "\1.init_args.\2"', text)
    text = re.sub(r'^Parser key "([^"]+)": ', r"\1: ", text)
    text = re.sub(r"Expected a <class '(\w+)'>\. Got value: (.*)$", r"expected \1, got \2", text)
    literal = r"Expected a typing\.Literal\[(.*)\]\. Got value: (.*)$"
    return re.sub(literal, r"expected one of \1, got \2", text)


PLAIN_TYPES = {"bool": "true/false", "int": "an integer", "float": "a number", "str": "a string"}


def allowed_values(expected: list[str]) -> str:
    """What a union of types allows, in words: ``a number or 'auto'``, ``an integer or true/false``,
    ``one of 64, 32, '16-mixed', ...`` when every alternative is a literal value."""
    literals = [re.fullmatch(r"typing\.Literal\[(.*)\]", e) for e in expected]
    if all(literals):
        return "one of " + ", ".join(v.strip() for match in literals for v in match[1].split(","))
    words = []
    for alternative, literal in zip(expected, literals, strict=True):
        plain = re.fullmatch(r"<class '(\w+)'>", alternative)
        if literal:
            words.append(" or ".join(v.strip() for v in literal[1].split(",")))
        else:
            words.append(PLAIN_TYPES.get(plain[1], plain[1]) if plain else alternative)
    return " or ".join(words)


def cause_of(error: BaseException) -> BaseException | None:
    """The exception ``error`` was raised from, as Python's traceback would show it."""
    if error.__cause__ is not None or error.__suppress_context__:
        return error.__cause__
    return error.__context__


def raised_in_init_of(error: BaseException) -> list[type]:
    """The classes whose ``__init__`` was running when ``error`` was raised, the innermost first."""
    owners, tb = [], error.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "__init__" and "self" in frame.f_locals:
            owners.append(type(frame.f_locals["self"]))
        tb = tb.tb_next
    return owners[::-1]


def optimizer_class_and_settings(optimizer) -> tuple[type | None, dict]:
    """The optimizer class and init_args of a configured optimizer: from the config, jsonargparse
    hands the module a ``functools.partial``-like callable of the class with its init_args."""
    arguments = (*getattr(optimizer, "args", ()), getattr(optimizer, "func", optimizer))
    cls = next((a for a in arguments if isinstance(a, type) and issubclass(a, torch.optim.Optimizer)), None)
    return cls, dict(getattr(optimizer, "keywords", {}))


# --help

LISTED = 6  # known subclasses named, when none of them is the project's
FIRST = ["torch.optim.SGD", "torch.optim.Adam", "torch.optim.AdamW", "torch.optim.RMSprop"]  # the usual picks
KNOWN = re.compile(r", known subclasses: ([^()]*)\)$", re.DOTALL)
DETAILS = re.compile(r" \((?=required|type:|default:)")  # where jsonargparse's "(type: ..., default: ...)" starts


def first_sentence(text: str) -> str:
    """The description up to its first full stop (Lightning's own docstrings run to paragraphs)."""
    text = " ".join(text.split())
    match = re.match(r"(.+?\.)(\s|$)", text)
    return match[1] if match else text


def shorter_subclasses(paths: list[str]) -> str:
    """The project's classes and the usual ones, and how many more there are."""
    if "torch.nn.Module" in paths:  # the model: the project's, torch's linear layer, and the rule
        ours = [p for p in paths if p.startswith("gd_torch.models.") and p != "gd_torch.models.Predictor"]
        return ", ".join([*ours, "torch.nn.Linear"]) + "; any nn.Module by class_path"
    ours = [p for p in paths if p.startswith("gd_torch.") and p != "gd_torch.data.PointData"]
    if ours:
        others = len(paths) - len(ours) - ("gd_torch.data.PointData" in paths)
        return ", ".join(ours) + (f"; {others} more" if others else "") + "; your own by class_path"
    usual = [p for p in FIRST if p in paths] + [p for p in paths if p not in FIRST]
    if len(usual) > LISTED:
        return ", ".join(usual[:LISTED]) + f", ... ({len(usual)} in all)"
    return ", ".join(usual)


class ShortHelp(DefaultHelpFormatter):
    def _get_help_string(self, action) -> str:
        text = super()._get_help_string(action)
        parts = DETAILS.split(text)
        description, details = " (".join(parts[:-1]), parts[-1]
        if len(parts) == 1:
            description, details = text, ""
        details = (
            " (" + KNOWN.sub(lambda m: ", known: " + shorter_subclasses(m[1].split(", ")) + ")", details)
            if details
            else ""
        )
        return (first_sentence(description) + details) if description else details.strip()


def option_keys(parser) -> list[str]:
    """Every key the parser takes (``trainer.max_steps``, ...), its own ``.help`` options left out."""
    return [
        option[2:]
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and not option.endswith(".help")
    ]


def option_groups(parser) -> list[tuple[str, list]]:
    """The parser's groups as ``--help`` shows them: (title, the group's actions)."""
    return [(group.title or "", list(group._group_actions)) for group in parser._action_groups]
