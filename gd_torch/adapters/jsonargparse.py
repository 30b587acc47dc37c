"""jsonargparse's side of the command: its error messages made plain, ``--help`` made short, and the
optimizer a config gives.

Validation happens at the source: every project class checks its arguments in ``__init__`` and raises
a ``ValueError`` that names the argument, the value and what is allowed, and :func:`explain` only
prefixes the config key. What jsonargparse itself reports (a wrong type, a value outside a union or a
literal, a nested class_path) has its own wording, keyed here by regular expressions as a documented
fallback: ``tests/test_adapters.py`` pins each message, so an upgrade that rewords one fails there.
"""

import difflib
import inspect
import pydoc
import re
import textwrap
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
    message = plain_parser_message(str(error))  # a library's error may come wrapped in a union's message
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
    """jsonargparse's message, less its machinery: the key path, what is allowed, the bad value.

    ``Parser key "data": Does not validate against any of the Union subtypes ... - Problem with given
    class_path '...Points': Parser key "batch_size": Does not validate ... Given value: abc`` becomes
    ``data.init_args.batch_size: expected an integer or null, got abc``. The message is read by its
    structure (each nested part indented under the one it explains), so a class inside a union inside
    a class is followed down to the value that was wrong.
    """
    key, reason = plain_reason(text)
    return f"{key}: {reason}" if key else reason


def plain_reason(text: str) -> tuple[str | None, str]:
    """(the full key, what is wrong with its value) of one jsonargparse message."""
    match = re.match(r'\s*Parser key "([^"]+)":(.*)', text, re.DOTALL)
    return explained(match[1], under(match[2])) if match else explained(None, textwrap.dedent(text).strip())


def explained(key: str | None, body: str) -> tuple[str | None, str]:
    """What jsonargparse says of ``key``'s value, followed down to the argument that was wrong."""
    if body.startswith("Problem with given class_path"):  # the class's own argument was wrong
        inner_key, reason = plain_reason(under(body.split("\n", 1)[1]) if "\n" in body else body)
        return init_arg(key, inner_key), reason
    callable_class = re.match(CALLABLE_CLASS, body, re.DOTALL)
    if callable_class:  # an optimizer's init_args: the argument it names, not the whole Namespace
        inner, class_path = callable_class[1].strip(), callable_class[2]
        option = re.fullmatch(r"Option '(\w+)' is not accepted", inner)
        if option:
            return init_arg(key, option[1]), not_accepted(option[1], class_path)
        inner_key, reason = plain_reason(inner)
        return init_arg(key, inner_key), reason
    if body.startswith("Does not validate against any of the Union subtypes"):
        subtypes, errors, given = union_parts(body)
        if subtypes and given is not None and all(e.startswith("Expected a ") for e in errors):
            return key, f"expected {allowed_values(subtypes)}, got {given}"
        # The alternative that was meant (a class given, init_args for a callable) says what is wrong.
        meant = [e for e in errors if not e.startswith("Expected a ")]
        refusals = [e for e in errors if e != "Expected a <class 'NoneType'>"]
        if meant or refusals:
            return explained(key, (meant or refusals)[0])
    return key, plain_words(body)


def init_arg(key: str | None, argument: str | None) -> str | None:
    """``data.init_args.x``: an argument of the class configured at ``key``."""
    return ".".join(filter(None, [key, "init_args" if key and argument else None, argument])) or None


CALLABLE_CLASS = r"Type .+? expects a function or a callable class: (.*)\. Got value: Namespace\(class_path='([^']+)'"
UNNAMED = "torch.optim.Optimizer"  # the class jsonargparse assumes when init_args come without a class_path


def not_accepted(argument: str, class_path: str) -> str:
    """Why a callable class's ``init_args`` has no such argument, and the one meant."""
    if class_path == UNNAMED:
        return (
            "no optimizer is named to take it; give its class first "
            "(class_path: torch.optim.SGD in a config, or --model.optimizer torch.optim.SGD)"
        )
    cls = pydoc.locate(class_path)
    known = [name for name in inspect.signature(cls).parameters if name != "params"] if callable(cls) else []
    near = difflib.get_close_matches(argument, known, n=2, cutoff=0.75)
    hint = f"did you mean {' or '.join(near)}?" if near else f"it takes {', '.join(known)}"
    return f"{class_path} takes no argument {argument!r}; {hint}"


def under(text: str) -> str:
    """The text after ``Parser key "...":``, its own indentation removed (one line, or an indented block)."""
    return textwrap.dedent(text[1:] if text.startswith("\n") else text).strip()


def union_parts(body: str) -> tuple[list[str], list[str], str | None]:
    """A union's message: its alternatives, why each refused the value (each a block of its own), the value."""
    subtypes = re.search(r"^Subtypes: \[(.*)\]$", body, re.MULTILINE)
    given = re.search(r"^Given value: (.*)", body, re.MULTILINE | re.DOTALL)
    errors_block = re.search(r"^Errors:\n(.*?)(?=^\S|\Z)", body, re.MULTILINE | re.DOTALL)
    errors = []
    if errors_block:
        block = textwrap.dedent(errors_block[1])
        errors = [textwrap.dedent("  " + e).strip() for e in re.split(r"^- ", block, flags=re.MULTILINE)[1:]]
    return (top_level_items(subtypes[1]) if subtypes else []), errors, (one_line(given[1]) if given else None)


def top_level_items(text: str) -> list[str]:
    """``a, list[b, c], d`` -> ``['a', 'list[b, c]', 'd']``: split at commas outside brackets."""
    items, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += (char == "[") - (char == "]")
        if char == "," and depth == 0:
            items.append(text[start:i].strip())
            start = i + 1
    return [*items, text[start:].strip()]


def plain_words(text: str) -> str:
    """One refusal in words: ``Expected a <class 'int'>. Got value: abc`` -> ``expected an integer, got abc``."""
    text = one_line(text)
    refused = re.fullmatch(r"Expected a (<class '\w+'>|typing\.Literal\[.*\])\. Got value: (.*)", text)
    return f"expected {allowed_values([refused[1]])}, got {refused[2]}" if refused else text


PLAIN_TYPES = {"bool": "true/false", "int": "an integer", "float": "a number", "str": "a string", "NoneType": "null"}
PLURALS = {"bool": "true/false values", "int": "integers", "float": "numbers", "str": "strings"}


def allowed_values(alternatives: list[str]) -> str:
    """What a union of types allows, in words and in its order: ``a number or 'auto'``, ``an integer
    or null``, ``a string or a list of strings``; values listed as ``one of 64, 32, '16-mixed', ...``."""
    literals = [re.fullmatch(r"typing\.Literal\[(.*)\]", a) for a in alternatives]
    values = [v.strip() for match in literals if match for v in match[1].split(",")]
    if len(values) > 2:
        kinds = [type_in_words(a) for a, literal in zip(alternatives, literals, strict=True) if not literal]
        return " or ".join([f"one of {', '.join(values)}", *kinds])
    parts = [
        value.strip()
        for alternative, literal in zip(alternatives, literals, strict=True)
        for value in (literal[1].split(",") if literal else [type_in_words(alternative)])
    ]
    return " or ".join(parts) if len(parts) <= 2 else ", ".join(parts[:-1]) + " or " + parts[-1]


def type_in_words(alternative: str) -> str:
    """``<class 'int'>`` -> ``an integer``, ``list[str]`` -> ``a list of strings``."""
    plain = re.fullmatch(r"<class '(\w+)'>", alternative)
    if plain:
        return PLAIN_TYPES.get(plain[1], plain[1])
    listed = re.fullmatch(r"list\[(\w+)\]", alternative)
    if listed:
        return f"a list of {PLURALS.get(listed[1], listed[1])}"
    return alternative


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
    hidden = ("gd_torch.data.PointData", "gd_torch.data.HandedDataModule")  # a base; gd_torch.fit's own
    ours = [p for p in paths if p.startswith("gd_torch.") and p not in hidden]
    if ours:
        others = len(paths) - len(ours) - sum(p in paths for p in hidden)
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
