"""A model split over two devices (``load_model(..., device_map="auto")`` on several GPUs): every tensor an
edit, an evaluation, a probe or a correction builds must go to the device of the module it meets.

No machine here has two devices, so the split is onto a fake second device (``tests/fake_device.py``): the
second half of a tiny model's blocks and its final norm report ``cpu:1`` and any operation mixing them with
ordinary CPU tensors raises, as CUDA does across GPUs. The arithmetic is the CPU's, so the split model must
give bit for bit the results of the unsplit one: statistics, MEMIT and PMET updates, scores with an edit
and corrections applied, probe data and trained corrections.
"""
from __future__ import annotations

import pytest
import torch
from fake_device import FAKE, FakeDevice, OnFake, split_model
from test_memat_corrections import CASES, CTX, LANGS, _delta
from test_memit import EFFICACY_REQS, _stats_texts
from tiny_models import make_tiny_model

from memat.evaluate import evaluate_cases
from memat.heads import collect_probe_data
from memat.hparams import MemitHparams
from memat.memat import MematHparams, train_corrections
from memat.memit import compute_memit
from memat.pmet import PmetHparams, compute_pmet
from memat.stats import compute_second_moments

LAYERS = [1, 2]  # tiny models have 4 blocks: split after block 1, so every edit and probe spans both devices
HEADS = [(1, 0), (3, 1)]  # one head on each device


def _cpu(x):
    return x.to("cpu") if isinstance(x, torch.Tensor) else x


def _run(lm) -> dict:
    """Every device-sensitive path of the package, on ``lm``; the results on the CPU."""
    out = {}
    stats, _ = compute_second_moments(lm, LAYERS, _stats_texts(), progress=False)
    out["stats"] = {l: _cpu(s) for l, s in stats.items()}
    hp = MemitHparams(layers=LAYERS, v_lr=1.0, v_num_grad_steps=5, v_weight_decay=1e-3, clamp_norm_factor=4.0,
                      mom2_update_weight=0.01, batch_size=8)
    memit = compute_memit(lm, EFFICACY_REQS, hp, stats=stats, contexts=["{}", "The {}"], progress=False)
    out["memit"] = memit.deltas
    out["memit_nll"] = [t["nll_end"] for t in memit.meta["targets"]]
    php = PmetHparams(layers=LAYERS, v_num_grad_steps=3, batch_size=8, mom2_update_weight=1.0, kl_stop_loss=-1.0)
    out["pmet"] = compute_pmet(lm, EFFICACY_REQS, php, stats=stats, contexts=["{}", "The {}"]).deltas
    delta = _delta(lm)
    corr, log = train_corrections(lm, CASES, HEADS, MematHparams(lr=0.05, n_steps=3, batch_size=2, lambda_omega=0.1),
                                  delta=delta, langs=LANGS, contexts=CTX)
    out["corrections"] = _cpu(corr.vectors)
    out["train_log"] = [(s["nll"], s["kl"], s["penalty"]) for s in log["steps"]]
    frame = evaluate_cases(lm, CASES, list(LANGS), progress=False, interventions=[delta, corr], cache=False)
    out["scores"] = torch.tensor(frame.select_dtypes("number").to_numpy())
    out["probe_data"] = torch.as_tensor(collect_probe_data(lm, CASES, "ca", delta=delta).X)
    out["weights"] = {k: _cpu(v).clone() for k, v in lm.model.state_dict().items()}
    return out


def _assert_same(a, b, where):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}[{k}]")
    elif isinstance(a, torch.Tensor):
        assert not isinstance(b, OnFake), f"{where}: left on the fake device"
        assert torch.equal(a, b), f"{where}: max |diff| {float((a.double() - b.double()).abs().max())}"
    else:
        assert a == b, where


@pytest.mark.parametrize("family", ["llama", "gemma3_text", "falcon", "gpt2"])
def test_split_model_gives_the_unsplit_results(family):
    ref = _run(make_tiny_model(family))
    lm = make_tiny_model(family)
    with FakeDevice():
        moved = split_model(lm)
        assert lm.device == torch.device("cpu") and lm.device_of("layer", lm.n_layers - 1) == FAKE
        assert lm.device_of("mlp_out", LAYERS[0]) != lm.device_of("mlp_out", LAYERS[1])
        assert lm.spec.final_norm in moved
        assert (lm.spec.unembed in moved) == (not lm.model.config.tie_word_embeddings)  # llama: logits on the fake device
        got = _run(lm)
    _assert_same(ref, got, family)


def test_the_fake_device_catches_a_tensor_on_the_wrong_device():
    """The harness itself: a tensor built on the input device and added to a fake-device output raises."""
    lm = make_tiny_model("llama")
    with FakeDevice():
        split_model(lm)
        ids = torch.tensor([[5, 6, 7]])
        h = lm.model(input_ids=ids, output_hidden_states=True).hidden_states[-2]  # after a fake-device block
        assert h.device == FAKE
        with pytest.raises(RuntimeError, match="two devices"):
            h + torch.ones(h.shape[-1], device=lm.device)
        assert torch.equal((h + torch.ones(h.shape[-1], device=h.device)).cpu(), h.cpu() + 1)
        # gradients cross the devices
        x = torch.randn(3, requires_grad=True)
        (x.to(FAKE) * 2).sum().backward()
        assert torch.equal(x.grad, torch.full((3,), 2.0))
