"""nbval settings for the notebooks: pin the CPU instruction set (:mod:`memat.cpuenv`); keep stderr
(warnings, tqdm) and progress widgets out of the comparison; numbers, times and addresses are sanitised
by ../.nbval-sanitize.cfg."""
from __future__ import annotations

import sys
from pathlib import Path

# one CPU instruction set for the kernels nbval starts (they inherit this environment): memat.cpuenv
_SRC = str(Path(__file__).resolve().parent.parent / "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)
from memat.cpuenv import pin  # noqa: E402  (a leaf module: imports neither torch nor numpy)

pin()

try:
    import nbval.plugin as _nbp
except ImportError:  # nbval not installed: nothing to configure
    _nbp = None


def _is_noise(out) -> bool:
    if out.get("output_type") == "stream" and out.get("name") == "stderr":
        return True
    data = out.get("data", {}) if isinstance(out, dict) else {}
    return "application/vnd.jupyter.widget-view+json" in data


if _nbp is not None and not getattr(_nbp.IPyNbCell.compare_outputs, "_memat", False):
    _orig = _nbp.IPyNbCell.compare_outputs

    def compare_outputs(self, test, ref, skip_compare=None):
        return _orig(self, [o for o in test if not _is_noise(o)], [o for o in ref if not _is_noise(o)], skip_compare)

    compare_outputs._memat = True
    _nbp.IPyNbCell.compare_outputs = compare_outputs
