"""The HTML view of a store or node in notebooks: a collapsible tree, kept small.

Each entry shows the node's name, its one-line summary (kind, type, value,
shape, columns, metadata), the bytes stored below it and, for arrays and
columns, a short preview of the first items.  A DataFrame shows a head
table built from its stored columns (pandas is not imported).

The page stays small however big the store is: a node lists at most
``max_children`` children and then "... N more", and at most
``max_entries`` entries are shown in all, chosen breadth first (so every
top-level node appears before anything deeper); a node whose children do
not fit says how many it has.  Leaves stored outside their records are read
for previews only up to :data:`~tinystore.objects.contents.PREVIEW_READ_LIMIT`
bytes each and a few MB in all (:class:`~tinystore.objects.contents.ReadBudget`).
"""

from __future__ import annotations

import html
from collections import deque
from typing import Any

from tinystore.objects import contents
from tinystore.storage.base import LeafInfo, Tree

__all__ = ["render", "human_size"]

#: Entries of one HTML view at most (about 250 bytes each).
MAX_ENTRIES = 1000

_STYLE = (
    "<style>.tinystore-tree ul{list-style:none;margin:0;padding-left:1.2em}"
    ".tinystore-tree .s{color:#666}.tinystore-tree .z{color:#999;font-size:90%}"
    ".tinystore-tree .p{color:#357;font-family:monospace;font-size:90%}"
    ".tinystore-tree table{font-size:90%;margin:.2em 0 .4em 1.2em}"
    ".tinystore-tree td,.tinystore-tree th{padding:0 .5em;text-align:right}</style>"
)


def human_size(nbytes: int) -> str:
    """``'512 B'``, ``'1.5 kB'``, ``'3.2 MB'`` (powers of 1000, like file managers)."""
    size = float(nbytes)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover - the loop returns


#: Bytes counted for a number or None in a record (their size in an array).
_SCALAR_BYTES = {int: 8, float: 8, complex: 16, bool: 1, type(None): 1}


def _leaf_bytes(node: Any) -> int:
    if type(node) is LeafInfo:
        return node.nbytes
    if type(node) in _SCALAR_BYTES:
        return _SCALAR_BYTES[type(node)]
    nbytes = getattr(node, "nbytes", None)
    if type(nbytes) is int:
        return nbytes
    return len(node) if type(node) in (bytes, bytearray, str) else 0


def _sizes(root: Any) -> dict[int, int]:
    """Leaf bytes below every Tree node of ``root`` (by id), in one pass."""
    sizes: dict[int, int] = {}
    stack: list = [(root, False)]
    while stack:
        node, done = stack.pop()
        if not isinstance(node, Tree):
            continue
        c = node.children
        items = c if type(c) is list else list(c.values())
        if done:
            sizes[id(node)] = sum(
                sizes.get(id(x), 0) if isinstance(x, Tree) else _leaf_bytes(x) for x in items
            )
            continue
        stack.append((node, True))
        stack.extend((x, False) for x in items if isinstance(x, Tree))
    return sizes


def _plan(view: Any, max_children: int, max_entries: int) -> dict[int, tuple[list, int]]:
    """Breadth first: which views list which children, within ``max_entries`` in all.

    Returns ``{id(view): ([(key, child view), ...], hidden)}``; ``hidden``
    counts children not listed (past ``max_children``, or over the budget).
    """
    from tinystore.objects.browse import shown_keys

    plan: dict[int, tuple[list, int]] = {}
    queue = deque([view])
    used = 0
    while queue:
        current = queue.popleft()
        keys = shown_keys(current)
        if not keys:
            continue
        take = keys[:max_children] if used + min(len(keys), max_children) <= max_entries else []
        children = [(k, current[k]) for k in take]
        used += len(children)
        plan[id(current)] = (children, len(keys) - len(children))
        queue.extend(child for _, child in children)
    return plan


def _head_table(view: Any, budget: contents.ReadBudget) -> str:
    frame = contents.frame_info(view)
    if frame is None or not frame.keys:
        return ""
    head = frame.head(contents.HEAD_ROWS, budget)
    index = head.pop("index")
    rows = min(contents.HEAD_ROWS, frame.rows if frame.rows is not None else contents.HEAD_ROWS)
    shown = list(head.items())[:12]
    out = ["<table><tr><th></th>"]
    out += [f"<th>{html.escape(contents.cell(label, 16))}</th>" for label, _ in shown]
    out.append("</tr>")
    for r in range(rows):
        name = index[r] if index is not None and r < len(index) else r
        out.append(f"<tr><th>{html.escape(contents.cell(name, 16))}</th>")
        for _, items in shown:
            text = contents.cell(items[r]) if items is not None and r < len(items) else "..."
            out.append(f"<td>{html.escape(text)}</td>")
        out.append("</tr>")
    if frame.rows is not None and frame.rows > rows:
        out.append(f"<tr><td colspan={len(shown) + 1}>... {frame.rows - rows} more rows</td></tr>")
    if len(head) > len(shown):
        out.append(f"<tr><td colspan={len(shown) + 1}>... {len(head) - len(shown)} more columns")
        out.append("</td></tr>")
    out.append("</table>")
    return "".join(out)


def _label(view: Any, key: str, sizes: dict, budget: contents.ReadBudget) -> str:
    node = view._node
    size = sizes.get(id(node)) if isinstance(node, Tree) else _leaf_bytes(node)
    out = [f"<b>{html.escape(key)}</b> <span class=s>{html.escape(view.summary())}</span>"]
    if size:
        out.append(f" <span class=z>{human_size(size)}</span>")
    listed = view.kind in ("list", "tuple")
    if view.shape is not None or listed or (contents.folded(view) and view.value is None):
        text = view.preview(budget)
        if text is not None:
            out.append(f" <span class=p>{html.escape(text)}</span>")
    return "".join(out)


def render(view: Any, max_children: int = 50, max_entries: int = MAX_ENTRIES) -> str:
    """The HTML of ``view`` and the nodes below it (see the module docstring)."""
    plan = _plan(view, max_children, max_entries)
    sizes = _sizes(view._node)
    budget = contents.ReadBudget()
    out = [f"<div class='tinystore-tree'>{_STYLE}<ul>"]
    # each stack item: (key, view, depth); "</ul></details></li>" closes an opened one
    stack: list = [("/" + view.path, view, 0)]
    while stack:
        item = stack.pop()
        if type(item) is str:
            out.append(item)
            continue
        key, current, depth = item
        label = _label(current, key, sizes, budget)
        children, hidden = plan.get(id(current), ([], 0))
        frame = current.kind in ("pandas.DataFrame", "pandas.Series")
        table = _head_table(current, budget) if frame else ""
        if not children and not hidden and not table:
            out.append(f"<li>{label}</li>")
            continue
        opened = " open" if depth == 0 else ""
        if not children and not hidden:
            out.append(f"<li><details{opened}><summary>{label}</summary>{table}</details></li>")
            continue
        out.append(f"<li><details{opened}><summary>{label}</summary>{table}<ul>")
        stack.append("</ul></details></li>")
        if hidden:
            what = "more" if children else "children not shown"
            stack.append(f"<li class=s>... {hidden} {what}</li>")
        stack.extend((k, child, depth + 1) for k, child in reversed(children))
    out.append("</ul></div>")
    return "".join(out)
