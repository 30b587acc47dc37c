"""``--help`` a newcomer can read: one line of description per option, and the classes a newcomer
picks from rather than every importable subclass (``torch.nn.Module`` alone has hundreds)."""

import re

from jsonargparse import DefaultHelpFormatter

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
