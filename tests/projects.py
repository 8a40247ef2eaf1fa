"""The example projects every project-aware test runs on."""

from pathlib import Path

import pytest
from tideline import learners, project

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = [
    ROOT / "examples" / "cards" / "project.yaml",
    ROOT / "examples" / "meters" / "project.py",
]

# every model family with every task it does, and with every example of such a task
FAMILY_TASKS = [(f, t) for f in sorted(learners.FAMILIES) for t in learners.FAMILIES[f].make]
FAMILY_EXAMPLES = [
    pytest.param(family, path, id=f"{family}-{path.parent.name}")
    for path in EXAMPLES
    for family, task in FAMILY_TASKS
    if task == project.load(path).label.task
]
