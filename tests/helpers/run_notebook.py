"""Run a notebook's code cells in order, like a fresh kernel (no Jupyter needed).

usage: python run_notebook.py NOTEBOOK.ipynb

The value of each cell's last expression is rendered as a notebook would:
through ``_repr_html_`` when it has one.  Exits non-zero on the first error.
"""

import ast
import json
import sys


def main(path: str) -> None:
    with open(path, encoding="utf-8") as f:
        book = json.load(f)
    namespace: dict = {"__name__": "__main__", "display": print}
    for number, cell in enumerate(book["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        tree = ast.parse(source, filename=f"{path} cell {number}")
        last = tree.body[-1] if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        if last is not None:
            tree.body = tree.body[:-1]
        exec(compile(tree, f"{path} cell {number}", "exec"), namespace)
        if last is not None:
            value = eval(
                compile(ast.Expression(last.value), f"{path} cell {number}", "eval"), namespace
            )
            shown = value._repr_html_() if hasattr(value, "_repr_html_") else repr(value)
            assert isinstance(shown, str)
    print(f"{path}: ok")


if __name__ == "__main__":
    main(sys.argv[1])
