"""API-format workflows: loading, node references, overrides and sweeps, and what a prompt needs from a server."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)(?::(\d+))?$")
FILE_NAME = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,11}$")  # sd15.safetensors, frame.png, clip.mp4


class UsageError(Exception):
    """A problem with the command line or the workflow, found before anything is queued."""


def load_workflow(path: Path, api_only: bool = True) -> dict:
    """The workflow in ``path``; with ``api_only`` a UI-format file (what the frontend saves) is refused."""
    try:
        workflow = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot read the workflow {path}: {err}") from None
    if not api_only:
        return workflow
    if isinstance(workflow, dict) and "nodes" in workflow and "links" in workflow:
        raise UsageError(f'{path} is a UI-format workflow (it has "nodes" and "links"); the API takes the API format: '
                         'open it in ComfyUI and use Workflow > Export (API)')
    if not workflow or not isinstance(workflow, dict) or not all(isinstance(n, dict) and "class_type" in n for n in workflow.values()):
        raise UsageError(f"{path} is not an API-format workflow (an object of nodes, each with class_type and inputs)")
    return workflow


def is_link(value) -> bool:
    """An API-format link ``[source node id, output index]``."""
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def node_label(node_id: str, prompt: dict, class_type: str | None = None) -> str:
    """``node 7 (KSampler, "Title")``: id, class_type and title where it says more than the class_type."""
    node = prompt.get(str(node_id), {})
    class_type = node.get("class_type", class_type)
    title = node.get("_meta", {}).get("title")
    return f"node {node_id} ({class_type}" + (f', "{title}"' if title and title != class_type else "") + ")"


def find_node(workflow: dict, ref: str) -> str:
    """The id of the node that ``ref`` names: an id, else a unique title, else a unique class_type."""
    if ref in workflow:
        return ref
    for key in (lambda node: node.get("_meta", {}).get("title"), lambda node: node["class_type"]):
        matches = [node_id for node_id, node in workflow.items() if key(node) == ref]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UsageError(f'"{ref}" names several nodes ({", ".join(node_label(i, workflow) for i in matches)}); use a node id')
    known = "; ".join(node_label(node_id, workflow) for node_id in workflow)
    raise UsageError(f'no node "{ref}" in the workflow (give a node id, a unique title or a unique class_type): {known}')


@dataclass(frozen=True)
class Target:
    """One input of one node: ``node`` is the node id."""

    node: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.node}.inputs.{self.name}"


def parse_target(text: str, workflow: dict) -> Target:
    ref, sep, name = text.rpartition(".inputs.")
    if not (sep and ref and name):
        raise UsageError(f'"{text}": expected NODE.inputs.NAME (NODE: a node id, title or class_type)')
    node_id = find_node(workflow, ref)
    inputs = workflow[node_id].get("inputs", {})
    if name not in inputs:
        raise UsageError(f'{node_label(node_id, workflow)} has no input "{name}"; its inputs: {", ".join(inputs)}')
    if is_link(inputs[name]):
        raise UsageError(f'input "{name}" of {node_label(node_id, workflow)} is a link from node {inputs[name][0]}; only values can be set')
    return Target(node_id, name)


def scalar(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_values(text: str) -> list:
    """``1..20`` / ``1..20:2``: an inclusive integer range; a JSON list or string as is; else a comma list of scalars."""
    stripped = text.strip()
    match = RANGE.match(stripped)
    if match:
        start, stop, step = int(match[1]), int(match[2]), int(match[3] or 1)
        if step == 0:
            raise UsageError(f'"{text}": the step of a range must be at least 1')
        direction = 1 if stop >= start else -1
        return list(range(start, stop + direction, step * direction))
    if stripped.startswith(("[", '"')):
        try:
            value = json.loads(stripped)
        except ValueError as err:
            raise UsageError(f'"{text}" is not valid JSON: {err}') from None
        return value if isinstance(value, list) else [value]
    return [scalar(part.strip()) for part in text.split(",")]


def read_lines(path: Path, what: str) -> list[str]:
    """The lines of ``path`` that are not blank and not ``#`` comments."""
    try:
        lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    except OSError as err:
        raise UsageError(f"cannot read the {what} file: {err}") from None
    return [line for line in lines if line and not line.startswith("#")]


def read_prompts(path: Path) -> list[str]:
    prompts = read_lines(path, "prompts")
    if not prompts:
        raise UsageError(f"{path} has no prompts (one a line; blank lines and # comments are skipped)")
    return prompts


def default_prompt_input(workflow: dict) -> Target:
    """The ``text`` input of the one node linked to a ``positive`` input (samplers, ControlNet apply, guiders)."""
    sources = {str(value[0]) for node in workflow.values() for name, value in node.get("inputs", {}).items()
               if name == "positive" and is_link(value)}
    texts = sorted(s for s in sources if isinstance(workflow.get(s, {}).get("inputs", {}).get("text"), str))
    if len(texts) != 1:
        found = f"several text nodes feed a positive input: {', '.join(texts)}" if texts else "no text node feeds a positive input"
        raise UsageError(f"--prompts: {found}; name the input with --prompt-input NODE.inputs.NAME")
    return Target(texts[0], "text")


@dataclass
class Sweep:
    """The values one input takes across the batch; ``label`` is how the user named it."""

    target: Target
    label: str
    values: list


@dataclass(eq=False)
class Item:
    """One prompt of a batch: ``parameters`` maps ``"7.inputs.seed"`` to its value; ``hash`` identifies the prompt."""

    index: int
    parameters: dict
    label: str
    prompt: dict
    hash: str


def build_sweeps(workflow: dict, sets: list[str], prompts_file: Path | None = None, prompt_input: str | None = None) -> list[Sweep]:
    sweeps = []
    for text in sets:
        target_text, sep, value_text = text.partition("=")
        if not sep:
            raise UsageError(f'--set "{text}": expected NODE.inputs.NAME=VALUE')
        values = parse_values(value_text)
        if not values:
            raise UsageError(f'--set "{text}": no values')
        sweeps.append(Sweep(parse_target(target_text, workflow), target_text.replace(".inputs.", "."), values))
    if prompts_file:
        target = parse_target(prompt_input, workflow) if prompt_input else default_prompt_input(workflow)
        sweeps.append(Sweep(target, "prompt", read_prompts(prompts_file)))
    repeated = [key for key, count in Counter(s.target.key for s in sweeps).items() if count > 1]
    if repeated:
        raise UsageError(f"{', '.join(repeated)} is set more than once")
    return sweeps


def combinations(value_lists: list[list], zipped: bool) -> list[tuple]:
    """The product of the lists, or with ``zipped`` their positions side by side (single values repeat)."""
    if not zipped:
        return list(itertools.product(*value_lists))
    longest = max((len(values) for values in value_lists), default=1)
    if any(len(values) not in (1, longest) for values in value_lists):
        raise UsageError(f"--zip needs lists of one length (or single values); got lengths {[len(v) for v in value_lists]}")
    return [tuple(values[min(i, len(values) - 1)] for values in value_lists) for i in range(longest)]


def prompt_hash(prompt: dict) -> str:
    return hashlib.sha256(json.dumps(prompt, sort_keys=True).encode()).hexdigest()[:16]


def short(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def expand(workflow: dict, sweeps: list[Sweep], zipped: bool = False) -> list[Item]:
    items = []
    for index, values in enumerate(combinations([sweep.values for sweep in sweeps], zipped)):
        pairs = list(zip(sweeps, values, strict=True))
        prompt = copy.deepcopy(workflow)
        for sweep, value in pairs:
            prompt[sweep.target.node]["inputs"][sweep.target.name] = value
        label = " ".join(f"{sweep.label}={short(value)}" for sweep, value in pairs)
        parameters = {sweep.target.key: value for sweep, value in pairs}
        items.append(Item(index, parameters, label, prompt, prompt_hash(prompt)))
    return items


def choices(spec) -> list | None:
    """The allowed values of a combo input in ``/object_info`` (``[[a, b]]`` or ``["COMBO", {"options": [a, b]}]``)."""
    if not isinstance(spec, list) or not spec:
        return None
    if isinstance(spec[0], list):
        return spec[0]
    if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict) and isinstance(spec[1].get("options"), list):
        return spec[1]["options"]
    return None


def is_file_name(value) -> bool:
    return isinstance(value, str) and FILE_NAME.search(value) is not None


def missing_on(prompts: list[dict], object_info: dict) -> list[str]:
    """What a server (its ``/object_info``) lacks to run ``prompts``: node classes, and the files the combo inputs
    name (models, images, videos), e.g. ``node 1 (CheckpointLoaderSimple) input "ckpt_name": no "sd15.safetensors"``.
    Other combo values (sampler names, ...) are the same on every server; /prompt's validation reports them per item."""
    lacks = {}
    for prompt in prompts:
        for node_id, node in prompt.items():
            info = object_info.get(node["class_type"])
            if info is None:
                lacks.setdefault(f"node class {node['class_type']}", f"node class {node['class_type']} (a custom node pack not installed?)")
                continue
            declared = {**info.get("input", {}).get("required", {}), **info.get("input", {}).get("optional", {})}
            for name, value in node.get("inputs", {}).items():
                options = choices(declared.get(name))
                if options is not None and is_file_name(value) and value not in options:
                    lacks.setdefault((name, json.dumps(value)),
                                     f'{node_label(node_id, prompt)} input "{name}": no {json.dumps(value)} (it has {len(options)} others)')
    return list(lacks.values())
