"""Fails when a function of the load-test package is longer than MAX_LINES (80) lines:
`python3 scripts/loadtest/check_function_length.py` (standard library only, for CI)."""

import ast
import sys
from pathlib import Path

MAX_LINES = 80


def long_functions(root):
    for path in sorted(Path(root).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_LINES:
                    yield f"{path}:{node.lineno}: {node.name} is {length} lines (at most {MAX_LINES})"


def main():
    root = Path(__file__).resolve().parent
    found = list(long_functions(root))
    print("\n".join(found) or f"every function in {root.name}/ is at most {MAX_LINES} lines")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
