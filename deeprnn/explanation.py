"""Explanation: what `explain()` returns, a list of row dicts that prints as a table."""

from __future__ import annotations


class Explanation(list):
    """A list of dicts (one per layer or block, as before) that prints as an aligned table.

    `print(net.explain())` shows the table; indexing, iteration, `len` and `==` against a
    list of dicts work as on the plain list; `rows` is the plain list.
    """

    @property
    def rows(self) -> list[dict]:
        return list(self)

    def columns(self) -> list[str]:
        seen: dict[str, None] = {}
        for row in self:
            seen.update(dict.fromkeys(row))
        return list(seen)

    def __str__(self) -> str:
        if not self:
            return "(nothing to explain)"
        names = self.columns()
        cells = [[str(row.get(n, "")) for n in names] for row in self]
        widths = [max(len(n), *(len(c[j]) for c in cells)) for j, n in enumerate(names)]
        lines = ["  ".join(n.ljust(w) for n, w in zip(names, widths)).rstrip()]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
        return "\n".join(lines)

    __repr__ = __str__  # a REPL or notebook cell shows the table too

    def markdown(self) -> str:
        """The table in Markdown (for reports)."""
        names = self.columns()
        lines = ["| " + " | ".join(names) + " |", "|---" * len(names) + "|"]
        for row in self:
            lines.append("| " + " | ".join(str(row.get(n, "")) for n in names) + " |")
        return "\n".join(lines)
