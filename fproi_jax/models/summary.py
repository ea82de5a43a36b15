"""A parameter table of the four networks (`launch.py --mode=summary`)."""
import jax
import numpy as np


def parameter_table(params: dict) -> str:
    """Markdown table: one row per layer (network / module path), its shapes and size."""
    rows, totals = [], {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        keys = [k.key for k in path if hasattr(k, "key") and k.key != "params"]
        network, layer, name = keys[0], "/".join(keys[1:-1]), keys[-1]
        rows.append((network, layer, f"{name} {tuple(leaf.shape)}", int(np.prod(leaf.shape))))
        totals[network] = totals.get(network, 0) + rows[-1][-1]
    lines = ["| network | layer | parameter (shape) | count |", "|---|---|---|---:|"]
    lines += [f"| {n} | {layer} | {p} | {c:,} |" for n, layer, p, c in rows]
    lines += [f"| **{n}** | | **total** | **{c:,}** |" for n, c in totals.items()]
    lines.append(f"| **all** | | **total** | **{sum(totals.values()):,}** |")
    return "\n".join(lines)
