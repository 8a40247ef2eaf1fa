"""The example projects every project-aware test runs on."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = [
    ROOT / "examples" / "cards" / "project.yaml",
    ROOT / "examples" / "meters" / "project.py",
]
