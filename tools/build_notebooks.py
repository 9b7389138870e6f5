"""Write the notebooks' *sources* (cells without outputs) from the cell lists below.

The committed notebooks carry the outputs of their default CPU run; after changing a notebook here,
regenerate it and re-run it in place:  python tools/build_notebooks.py 02 && make notebooks
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]


def nb02():
    cells = [
        new_markdown_cell(
            "# 02 · Cross-lingual MEMIT (paper Fig. 1)\n\n"
            "Edit `N_EDITS` facts with MEMIT in language `L1`, then measure efficacy (ES), paraphrase (PS) and "
            "neighbourhood (NS) success in `L1` and in `L2`, against the unedited model, split by the token-set "
            "Jaccard similarity of the subject in the two languages (J = 1 versus J ≤ 0.5), as in Fig. 1 of "
            "Tamayo et al. A fluency cost (mean token NLL on held-out text of each language) is reported beside "
            "the edit.\n\n"
            "Defaults: the embedded Gemma 3 270M on CPU, a few minutes. Paper setting on a GPU:\n\n"
            "```\npapermill notebooks/02_crosslingual_memit.ipynb out.ipynb -p MODEL projecte-aina/aguila-7b "
            "-p HPARAMS aguila-7b -p N_EDITS 1000\n```"
        ),
        new_code_cell(
            'MODEL = "gemma3-270m"  # Hugging Face id, local path, or the embedded default\n'
            'DATASET = "bmike53_counterfact"  # registered name or a path (EasyEdit, ROME, BMIKE-53, MEMAT schema)\n'
            'L1 = "ca"  # language of the edit\n'
            'L2 = "en"  # the other language of the evaluation\n'
            "N_EDITS = 24  # split evenly between subjects with J = 1 and J <= 0.5\n"
            "SEED = 0\n"
            'HPARAMS = "gemma3-270m"  # preset in configs/memit/ or a YAML path\n'
            "DATA_SOURCE = None  # local copy of the raw data sets; None: $MEMAT_DATA_SOURCE, else download\n"
            "HELDOUT = 50  # held-out Global Voices lines per language for the fluency check\n"
            "DEVICE = None  # None: CUDA if available, else CPU\n"
            "DTYPE = None  # None: bfloat16 on CUDA, float32 on CPU\n"
            'RESULTS_NAME = "02_crosslingual_memit"',
            metadata={"tags": ["parameters"]},
        ),
        new_code_cell(
            "import random\n\n"
            "import numpy as np\n"
            "import pandas as pd\n"
            "import torch\n\n"
            "from memat import evaluate, experiments, memit, models, plots, stats\n"
            
            "from memat.hparams import load_hparams\n\n"
            "random.seed(SEED); np.random.seed(SEED); torch.manual_seed(SEED)\n"
            'pd.set_option("display.precision", 1)\n'
            "lm = models.load_model(MODEL, dtype=DTYPE, device=DEVICE)\n"
            "hp = load_hparams(HPARAMS)\n"
            'print(f"{lm.name}: {lm.config.model_type}, {lm.n_layers} layers, {lm.n_heads} heads ({lm.n_kv_heads} KV)")\n'
            'print(f"MEMIT layers {hp.layers}, statistics from {hp.mom2_corpus[L1]!r} ({L1})")'
        ),
        new_markdown_cell("## Cases\nCases with both languages; half with identical subject tokens (J = 1), half with J ≤ 0.5."),
        new_code_cell(
            "ds = experiments.load_cases(DATASET, (L1, L2), source_dir=DATA_SOURCE)\n"
            "print(ds.summary())\n"
            "cases, jac = experiments.select_by_jaccard(ds.cases, L1, L2, lm.tokenizer, N_EDITS, SEED)\n"
            'print(jac.group.value_counts().sort_index().to_string())\n'
            "jac.head(6)"
        ),
        new_markdown_cell("## Unedited baseline"),
        new_code_cell(
            "held = {l: stats.heldout_lines(\"globalvoices\", l, HELDOUT, source_dir=DATA_SOURCE) for l in dict.fromkeys((L1, L2))}\n"
            "baseline = evaluate.evaluate_cases(lm, cases, [L1, L2])\n"
            "nll_base = {l: evaluate.heldout_nll(lm, t) for l, t in held.items()}\n"
            'print("held-out NLL (nats):", {l: round(v, 2) for l, v in nll_base.items()})'
        ),
        new_markdown_cell(
            f"## MEMIT in `L1`\n"
            "Key statistics of the edited layers in one pass (cached on disk), then the batched target "
            "vectors and the layer-by-layer solve. The model's weights are untouched until `delta.applied(lm)`."
        ),
        new_code_cell(
            "import time\n"
            "t0 = time.perf_counter()\n"
            "mom2 = stats.layer_stats(lm, hp.layers, hp.mom2_corpus[L1], L1, hp.mom2_n_samples, max_len=hp.mom2_max_len,\n"
            "                         dtype=hp.mom2_dtype, source_dir=DATA_SOURCE)\n"
            "t1 = time.perf_counter()\n"
            "delta = memit.compute_memit(lm, cases, hp, stats=mom2, lang=L1)\n"
            "t2 = time.perf_counter()\n"
            "timing = {\"stats_s\": t1 - t0, \"memit_s\": t2 - t1}\n"
            "with delta.applied(lm):\n"
            "    edited = evaluate.evaluate_cases(lm, cases, [L1, L2])\n"
            "    nll_edit = {l: evaluate.heldout_nll(lm, t) for l, t in held.items()}\n"
            'print("held-out NLL after the edit (nats):", {l: round(v, 2) for l, v in nll_edit.items()})'
        ),
        new_markdown_cell("## Results\nPercent, with 95% confidence intervals over cases."),
        new_code_cell(
            "per_case = pd.concat([baseline.assign(model=\"unedited\"), edited.assign(model=\"MEMIT\")])\n"
            "per_case = per_case.merge(jac[[\"case_id\", \"jaccard\", \"group\"]], on=\"case_id\")\n"
            "overall = evaluate.summarize(per_case, by=(\"model\", \"lang\")).assign(group=\"all\")\n"
            "by_group = evaluate.summarize(per_case, by=(\"model\", \"group\", \"lang\"))\n"
            "table = pd.concat([overall, by_group], ignore_index=True)\n"
            "wide = table.pivot_table(index=[\"group\", \"model\"], columns=[\"lang\", \"metric\"], values=\"mean\", sort=False)\n"
            "wide[[(l, m) for l in (L1, L2) for m in (\"ES\", \"PS\", \"NS\", \"EM\", \"PM\", \"NM\")]].round(1)"
        ),
        new_code_cell(
            "fig = plots.crosslingual_bars(table, L1, L2)\n"
            "paths = experiments.save_figure(fig, f\"fig1_crosslingual_memit_{L1}_{L2}\")\n"
            "print([p.name for p in paths])"
        ),
        new_markdown_cell("## Checks and results file"),
        new_code_cell(
            "def metric(model, lang, name, group=\"all\"):\n"
            "    r = table[(table.model == model) & (table.lang == lang) & (table.metric == name) & (table.group == group)]\n"
            "    return float(r[\"mean\"].iloc[0])\n\n"
            "checks = {\n"
            "    f\"ES({L1}) >= 90\": metric(\"MEMIT\", L1, \"ES\") >= 90,\n"
            "    f\"ES({L2}) above the unedited model\": metric(\"MEMIT\", L2, \"ES\") > metric(\"unedited\", L2, \"ES\"),\n"
            "    **{f\"held-out NLL({l}) within 0.5 nats\": nll_edit[l] - nll_base[l] <= 0.5 for l in held},\n"
            "}\n"
            "for k, v in checks.items():\n"
            "    print(f\"{k}: {v}\")"
        ),
        new_code_cell(
            "path = experiments.write_results(RESULTS_NAME, {\n"
            "    \"parameters\": dict(MODEL=MODEL, DATASET=DATASET, L1=L1, L2=L2, N_EDITS=N_EDITS, SEED=SEED, HPARAMS=HPARAMS),\n"
            "    \"model\": {\"name\": lm.name, \"model_type\": lm.config.model_type, \"device\": str(lm.device), \"dtype\": str(lm.dtype)},\n"
            "    \"hparams\": hp.to_dict(),\n"
            "    \"dataset\": {\"summary\": ds.summary(), \"case_ids\": [c.case_id for c in cases]},\n"
            "    \"metrics\": table,\n"
            "    \"heldout_nll\": {\"unedited\": nll_base, \"MEMIT\": nll_edit},\n"
            "    \"checks\": checks,\n"
            "    \"timing\": timing,\n"
            "    \"memit\": delta.meta[\"targets\"],\n"
            "    \"per_case\": per_case,\n"
            "})\n"
            "print(path.relative_to(experiments.project_root()))"
        ),
    ]
    return cells


NOTEBOOKS = {"02": ("02_crosslingual_memit.ipynb", nb02)}


def main(argv):
    keys = argv or list(NOTEBOOKS)
    for k in keys:
        name, fn = NOTEBOOKS[k]
        nb = new_notebook(cells=fn())
        nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
        nb.metadata["language_info"] = {"name": "python"}
        path = ROOT / "notebooks" / name
        nbformat.write(nb, path)
        print("wrote", path)


if __name__ == "__main__":
    main(sys.argv[1:])
