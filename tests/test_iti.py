"""ITI mass mean shift (memat.iti) against hand computations on synthetic activations, and its application on
tiny models traced with memat.hooks.TraceDict at the attention output projection's input (independent of the
correction hooks of memat.memat)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from tiny_models import make_tiny_model

from memat.data.records import EditCase, LangView
from memat.heads import ProbeData, collect_probe_data, head_outputs
from memat.hooks import TraceDict
from memat.iti import LABEL_NEW, LABEL_TRUE, ItiDirections, iti_directions
from memat.memat import HeadCorrections


def _synthetic(seed=0, n_cases=7, layers=(2, 5), n_heads=3, d=5, offset=None):
    """ProbeData with two sentences per case (true, new); ``offset`` [d] is added to every new-target row."""
    rng = np.random.default_rng(seed)
    n = 2 * n_cases
    X = rng.normal(size=(n, len(layers), n_heads, d)).astype(np.float32)
    y = np.tile([LABEL_TRUE, LABEL_NEW], n_cases)
    if offset is not None:
        X[y == LABEL_NEW] += np.asarray(offset, dtype=np.float32)
    return ProbeData(X=X, y=y, groups=np.repeat(np.arange(n_cases), 2), case_ids=list(range(n_cases)),
                     layers=list(layers), kept=list(range(n_cases)), lang="en")


def _hand(X, y, li, h):
    """Direction and sigma with explicit sums (no numpy mean/std/norm)."""
    rows = X[:, li, h].astype(np.float64)
    d = rows.shape[1]
    s_new, s_true, c_new, c_true = [0.0] * d, [0.0] * d, 0, 0
    for r, lab in zip(rows, y):
        if lab == 1:
            s_new = [a + b for a, b in zip(s_new, r)]
            c_new += 1
        else:
            s_true = [a + b for a, b in zip(s_true, r)]
            c_true += 1
    diff = [a / c_new - b / c_true for a, b in zip(s_new, s_true)]
    norm = math.sqrt(sum(v * v for v in diff))
    theta = [v / norm for v in diff]
    proj = [sum(a * b for a, b in zip(r, theta)) for r in rows]
    mu = sum(proj) / len(proj)
    sigma = math.sqrt(sum((p - mu) ** 2 for p in proj) / len(proj))  # population std (ITI's np.std)
    return np.array(theta), sigma


# --------------------------------------------------------------------------------------------------
# directions on synthetic activations
# --------------------------------------------------------------------------------------------------


def test_directions_and_sigmas_by_hand():
    data = _synthetic()
    heads = [(5, 1), (2, 0), (5, 2)]
    iti = iti_directions(data, heads)
    assert iti.heads == heads and iti.n_new == 7 and iti.n_true == 7 and iti.n_heads == 3
    for i, (l, h) in enumerate(heads):
        theta, sigma = _hand(data.X, data.y, data.layers.index(l), h)
        np.testing.assert_allclose(iti.directions[i], theta, rtol=1e-10, atol=1e-12)
        assert iti.sigmas[i] == pytest.approx(sigma, rel=1e-10)
        assert np.linalg.norm(iti.directions[i]) == pytest.approx(1.0, abs=1e-12)
        # sign: the new-target class projects further along theta than the true-target class
        assert iti.mean_new[i] @ iti.directions[i] > iti.mean_true[i] @ iti.directions[i]
    # the shift is alpha * sigma * theta, head by head, in the order given
    v = iti.vectors(2.5)
    for i, (l, h) in enumerate(heads):
        theta, sigma = _hand(data.X, data.y, data.layers.index(l), h)
        np.testing.assert_allclose(v[i], 2.5 * sigma * theta, rtol=1e-10, atol=1e-12)


def test_direction_points_to_the_new_target():
    """A planted offset on the new-target rows is recovered as +theta (not -theta)."""
    e = np.zeros(6)
    e[4] = 25.0
    data = _synthetic(seed=1, n_cases=40, d=6, offset=e)
    iti = iti_directions(data, [(2, 1)])
    assert iti.directions[0][4] > 0.99
    # both classes are spread by +-12.5 around their mean along theta: sigma ~ sqrt(12.5^2 + 1)
    assert iti.sigmas[0] == pytest.approx(math.sqrt(12.5**2 + 1), rel=0.05)
    flipped = ProbeData(**{**data.__dict__, "y": 1 - data.y})
    np.testing.assert_allclose(iti_directions(flipped, [(2, 1)]).directions, -iti.directions)


def test_rows_restrict_the_computation():
    data = _synthetic(seed=2)
    rows = np.arange(6)  # the first three cases
    sub = ProbeData(X=data.X[rows], y=data.y[rows], groups=data.groups[rows], case_ids=data.case_ids, layers=data.layers)
    a = iti_directions(data, [(2, 2)], rows=rows)
    b = iti_directions(sub, [(2, 2)])
    np.testing.assert_array_equal(a.directions, b.directions)
    np.testing.assert_array_equal(a.sigmas, b.sigmas)
    assert a.meta["n_cases"] == 3 and a.n_new == 3


def test_corrections_and_round_trip(tmp_path):
    data = _synthetic(seed=3)
    heads = [(5, 0), (5, 2), (2, 1)]
    iti = iti_directions(data, heads, model_name="tiny")
    corr = iti.corrections(4.0, k=2)
    assert isinstance(corr, HeadCorrections) and corr.heads == heads[:2]
    assert corr.vectors.dtype == torch.float32
    np.testing.assert_allclose(corr.vectors.numpy(), 4.0 * iti.sigmas[:2, None] * iti.directions[:2], rtol=1e-6)
    assert corr.hparams == {"method": "ITI", "alpha": 4.0, "k": 2} and corr.meta["n_heads"] == 3
    assert corr.langs == ("en",)
    assert iti.corrections(1.0).k == 3
    back = ItiDirections.from_dict(json.loads(json.dumps(iti.to_dict())))
    for name in ("directions", "sigmas", "mean_new", "mean_true"):
        np.testing.assert_array_equal(getattr(back, name), getattr(iti, name))
    assert back.heads == iti.heads and (back.n_new, back.n_true, back.n_heads) == (iti.n_new, iti.n_true, 3)
    assert back.meta == iti.meta and back.model_name == "tiny"
    path = corr.save(tmp_path / "iti.safetensors")
    loaded = HeadCorrections.load(path)
    assert torch.equal(loaded.vectors, corr.vectors) and loaded.hparams == corr.hparams


def test_errors():
    data = _synthetic()
    with pytest.raises(ValueError, match=r"heads \[\(3, 0\)\] are not in the probe data \(layers \[2, 5\]"):
        iti_directions(data, [(2, 0), (3, 0)])
    with pytest.raises(ValueError, match=r"heads \[\(5, 3\)\] are not in the probe data.*heads 0\.\.2"):
        iti_directions(data, [(5, 3)])
    only_true = np.zeros_like(data.y)
    with pytest.raises(ValueError, match=r"0 with the new target \(label 1\) and 14 with the true target"):
        iti_directions(ProbeData(**{**data.__dict__, "y": only_true}), [(2, 0)])
    with pytest.raises(ValueError, match=r"7 with the new target \(label 1\) and 0 with the true target"):
        iti_directions(data, [(2, 0)], rows=np.flatnonzero(data.y == 1))
    with pytest.raises(ValueError, match="duplicates"):
        iti_directions(data, [(2, 0), (2, 0)])
    with pytest.raises(ValueError, match="heads is empty"):
        iti_directions(data, [])
    same = data.X.copy()
    same[1::2] = same[0::2]  # identical classes: no direction
    with pytest.raises(ValueError, match=r"layer 2, head 0\): the new- and true-target means coincide"):
        iti_directions(ProbeData(**{**data.__dict__, "X": same}), [(2, 0)])
    iti = iti_directions(data, [(2, 0), (5, 1)])
    with pytest.raises(ValueError, match=r"alpha must be a finite number >= 0, got alpha=-1"):
        iti.corrections(-1)
    with pytest.raises(ValueError, match="alpha=nan"):
        iti.corrections(float("nan"))
    with pytest.raises(ValueError, match=r"k=3 is larger than the 2 heads given"):
        iti.corrections(1.0, k=3)
    with pytest.raises(ValueError, match=r"k must be >= 1, got k=0"):
        iti.corrections(1.0, k=0)
    with pytest.raises(TypeError, match="k must be an int"):
        iti.corrections(1.0, k=1.5)


# --------------------------------------------------------------------------------------------------
# application on tiny models
# --------------------------------------------------------------------------------------------------


def _v(subject, true, new, prompt):
    return LangView(subject, true, new, prompt)


CASES = [
    EditCase(1, {"en": _v("Danielle Darrieux", "French", "English", "The mother tongue of {} is")}),
    EditCase(2, {"en": _v("Toyota", "Japan", "Germany", "{} is located in")}),
    EditCase(3, {"en": _v("Lionel Messi", "football", "basketball", "{} plays")}),
    EditCase(4, {"en": _v("Pablo Picasso", "Spain", "Italy", "{} was born in")}),
    EditCase(5, {"en": _v("Microsoft", "America", "Japan", "The headquarters of {} is in")}),
]
TEXTS = ["The capital of France is Paris", "Michael Jordan plays basketball for the team of the city of Berlin", "Toyota"]
HEADS = [(1, 0), (1, 2), (3, 1)]  # two heads in layer 1


def _batch(lm):
    return lm.tokenizer(TEXTS, return_tensors="pt", padding=True)


@torch.no_grad()
def _o_proj_inputs(lm, layers, corr=None):
    """{layer: input of the attention output projection [B, T, H*d]} of a right-padded batch."""
    names = [lm.name_of("attn_out", l) for l in layers]
    b = _batch(lm)

    def run():
        with TraceDict(lm.model, names, retain_input=True, retain_output=False) as td:
            lm.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], use_cache=False)
        return {l: td[n].input.clone() for l, n in zip(layers, names)}

    if corr is None:
        return run()
    with corr.applied(lm):
        return run()


@pytest.fixture(scope="module", params=["llama", "gemma3_text"])
def lm_and_iti(request):
    lm = make_tiny_model(request.param)
    data = collect_probe_data(lm, CASES, "en", refine=False)
    return lm, data, iti_directions(data, HEADS, model_name=lm.name)


def test_alpha_zero_leaves_logits_bit_identical(lm_and_iti):
    lm, _, iti = lm_and_iti
    b = _batch(lm)
    with torch.no_grad():
        ref = lm.model(**b).logits
        with iti.corrections(0.0).applied(lm):
            out = lm.model(**b).logits
        after = lm.model(**b).logits
    assert torch.equal(out, ref) and torch.equal(after, ref)
    with torch.no_grad(), iti.corrections(5.0).applied(lm):
        assert not torch.allclose(lm.model(**b).logits, ref)


def test_head_inputs_shift_by_alpha_sigma_theta_at_every_position(lm_and_iti):
    lm, data, iti = lm_and_iti
    H, d, alpha = lm.n_heads, lm.head_dim, 3.0
    corr = iti.corrections(alpha)
    base = _o_proj_inputs(lm, [1, 3])
    shifted = _o_proj_inputs(lm, [1, 3], corr)
    # layer 1 is the first corrected layer: its input differs from the unedited one only by the shift
    x0, x1 = base[1].view(*base[1].shape[:2], H, d), shifted[1].view(*base[1].shape[:2], H, d)
    for i, (l, h) in enumerate(HEADS[:2]):  # both heads of layer 1 take effect
        theta, sigma = _hand(data.X, data.y, data.layers.index(l), h)
        want = torch.tensor(alpha * sigma * theta, dtype=torch.float32)
        assert float(want.norm()) > 1e-2
        torch.testing.assert_close(x1[:, :, h] - x0[:, :, h], want.expand_as(x1[:, :, h]), rtol=1e-4, atol=1e-5)
        assert torch.equal(x1[:, :, h], x0[:, :, h] + corr.vectors[i])  # every position, padding included
    untouched = [h for h in range(H) if h not in (0, 2)]
    assert torch.equal(x1[:, :, untouched], x0[:, :, untouched])
    # layer 3: relative to the run with only layer 1's shift, the third head moves by its own vector
    only_l1 = iti.corrections(alpha, k=2)
    partial = _o_proj_inputs(lm, [3], only_l1)[3].view(*base[3].shape[:2], H, d)
    full = shifted[3].view(*base[3].shape[:2], H, d)
    theta, sigma = _hand(data.X, data.y, data.layers.index(3), 1)
    torch.testing.assert_close(full[:, :, 1] - partial[:, :, 1],
                               torch.tensor(alpha * sigma * theta, dtype=torch.float32).expand_as(full[:, :, 1]),
                               rtol=1e-4, atol=1e-5)
    assert torch.equal(full[:, :, [0, 2, 3]], partial[:, :, [0, 2, 3]])
    assert not torch.equal(partial, base[3].view_as(partial))  # layer 1's shift reached layer 3


def test_projection_onto_theta_moves_by_alpha_sigma(lm_and_iti):
    """Read back with memat.heads.head_outputs: the corrected heads' outputs at the last token project onto
    theta exactly alpha * sigma further than before (the first corrected layer)."""
    lm, _, iti = lm_and_iti
    alpha = 2.0
    before = head_outputs(lm, TEXTS, layers=[1]).double()
    with iti.corrections(alpha).applied(lm):
        after = head_outputs(lm, TEXTS, layers=[1]).double()
    for i, (l, h) in enumerate(HEADS[:2]):
        theta = torch.from_numpy(iti.directions[i])
        moved = (after[:, 0, h] - before[:, 0, h]) @ theta
        torch.testing.assert_close(moved, torch.full_like(moved, alpha * iti.sigmas[i]), rtol=1e-4, atol=1e-5)
