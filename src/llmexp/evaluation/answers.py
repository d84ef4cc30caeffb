"""Final answers pulled out of generated text: GSM8K's last number, MATH's boxed expression (Hendrycks et al. 2021:
the answer is the content of the last `\\boxed{...}`), each normalised so equal answers compare equal."""

from __future__ import annotations

import re

NUMBER = re.compile(r"-?[\d,]*\.?\d+")


def last_number(text: str) -> str:
    """The last number in a text, commas and a trailing period removed (GSM8K's flexible answer extraction)."""
    found = NUMBER.findall(text)
    return found[-1].replace(",", "").rstrip(".") if found else text.strip()


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (or `\\fbox{...}`), nested braces kept; `\\boxed 5` gives `5`."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    body = text[start:].removeprefix("\\boxed").removeprefix("\\fbox")
    if body.startswith(" "):
        return body[1:].split("$")[0].strip() or None
    depth = 0
    for index, char in enumerate(body):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:
            return body[1:index] if index else None
    return None


_DROP = ("\\left", "\\right", "\\!", "\\,", "\\;", "\\$", "$", "^\\circ", "^{\\circ}", "\\%", "%", " ")


def _braced(match: re.Match[str]) -> str:
    return "\\frac{" + match.group(1) + "}{" + match.group(2) + "}"


def normalize_math(answer: str) -> str:
    """One spelling per answer: no spaces, `\\left`/`\\right`, dollars, degrees or percent signs; `\\dfrac`/`\\tfrac`
    as `\\frac`, `\\frac12` and `1/2` as `\\frac{1}{2}`, `.5` as `0.5`, `x = 5` as `5`, units in `\\text{...}` and a
    trailing period dropped."""
    text = re.sub(r"\\text\{\s*[a-zA-Z ]*\}$", "", answer.strip()).strip().rstrip(".")
    for token in _DROP:
        text = text.replace(token, "")
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = re.sub(r"\\frac(\d)(\d)", _braced, text)
    text = re.sub(r"^(-?\d+)/(\d+)$", _braced, text)
    text = re.sub(r"^[a-zA-Z]\w*=", "", text)
    text = re.sub(r"(^|[^\d])\.(\d)", r"\g<1>0.\2", text)
    return re.sub(r"^(-?\d+)\.0+$", r"\1", text)


def math_answer(text: str) -> str:
    """MATH-style extraction: the last boxed expression, else the last number, else the text; normalised."""
    boxed = last_boxed(text)
    if boxed is not None:
        return normalize_math(boxed)
    found = NUMBER.findall(text)
    return normalize_math(found[-1].replace(",", "") if found else text)
