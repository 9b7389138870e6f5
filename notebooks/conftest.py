"""nbval settings for the notebooks: keep stderr (warnings, tqdm) and progress widgets out of the
comparison; numbers, times and addresses are sanitised by ../.nbval-sanitize.cfg."""
from __future__ import annotations

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
