"""What a conversion did to each ADE node: converted, approximated (what differs) or unsupported (why).

The JSON form is the one ``scripts/convert_ade.py --report`` writes, one object per input file::

    {"file": NAME, "converted": [{"node": ID, "ade_class": CLASS, "became": [ID, ...]}],
     "approximated": [{"node": ..., "ade_class": ..., "became": [...], "differs": TEXT}],
     "unsupported": [{"node": ID, "ade_class": CLASS, "reason": TEXT}]}

Node ids inside a subgraph definition are written ``SUBGRAPH_ID/NODE_ID``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Report:
    file: str = ""
    converted: list[dict] = field(default_factory=list)
    approximated: list[dict] = field(default_factory=list)
    unsupported: list[dict] = field(default_factory=list)

    @staticmethod
    def _id(node_id: str, where: str) -> str:
        return f"{where}/{node_id}" if where else str(node_id)

    def converted_node(self, node_id: str, ade_class: str, rewrite, where: str = "") -> None:
        entry = {"node": self._id(node_id, where), "ade_class": ade_class, "became": []}
        if rewrite.differs:
            self.approximated.append({**entry, "differs": "; ".join(rewrite.differs)})
        else:
            self.converted.append(entry)

    def set_became(self, node_id: str, where: str, new_ids: list[str]) -> None:
        key = self._id(node_id, where)
        for item in self.converted + self.approximated:
            if item["node"] == key:
                item["became"] = [self._id(i, where) for i in new_ids]

    def unsupported_node(self, node_id: str, ade_class: str, reason: str, where: str = "") -> None:
        self.unsupported.append({"node": self._id(node_id, where), "ade_class": ade_class, "reason": reason})

    @property
    def complete(self) -> bool:
        """Every ADE node converted (approximations count as converted)."""
        return not self.unsupported

    def to_json(self) -> dict:
        return {"file": self.file, "converted": self.converted, "approximated": self.approximated, "unsupported": self.unsupported}

    def summary(self) -> str:
        """One line per node, for people (the command line, the frontend's dialog)."""
        lines = [f"{self.file or 'workflow'}: {len(self.converted)} converted, {len(self.approximated)} approximated, "
                 f"{len(self.unsupported)} unsupported"]
        lines += [f"  converted    {i['node']} {i['ade_class']} -> {', '.join(i['became']) or '(folded into others)'}"
                  for i in self.converted]
        lines += [f"  approximated {i['node']} {i['ade_class']}: {i['differs']}" for i in self.approximated]
        lines += [f"  unsupported  {i['node']} {i['ade_class']}: {i['reason']}" for i in self.unsupported]
        return "\n".join(lines)
