"""GeminiFusion's mathematics (torch only): the relation discriminator, the
closed-form pixel-wise attention and :class:`GeminiFusionModule` against
``nn.MultiheadAttention``, and the DeLiVER hub's score / aggregation /
update equations on hand-made tensors."""
import functools

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

# yapf: disable (isort and yapf wrap this import differently)
from projects.fusion_math.geminifusion import (GeminiFusionModule,
                                               HubScorePredictor,
                                               RelationJudger,
                                               gemini_attention, hub_aggregate,
                                               hub_scores, hub_update,
                                               relation_scores)

# yapf: enable


def randomised(channels=16, heads=8, seed=0):
    """A GeminiFusionModule whose every parameter (incl. the
    zero-initialised biases) is random, so that the comparisons see all of
    them."""
    torch.manual_seed(seed)
    module = GeminiFusionModule(channels, heads)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return module


def naive_gemini(module, x, per_pixel):
    """The reference computation written out with ``nn.MultiheadAttention``
    (sequence-first): a Python loop over the batch (as the reference code)
    and, with ``per_pixel``, over the pixels too. Query length 1, keys /
    values length 2: [s + n_k[m], s * r] / [s + n_v[m], t]; z = s + MHA."""
    c = module.channels
    fc1 = nn.Linear(2 * c, c)
    fc2 = nn.Linear(c, c)
    fc1.load_state_dict(module.relation_judger[0].fc1.state_dict())
    fc2.load_state_dict(module.relation_judger[0].fc2.state_dict())
    mhas = []
    for name in ('cross_attn_0_to_1', 'cross_attn_1_to_0'):
        mha = nn.MultiheadAttention(c, module.num_heads)
        mha.load_state_dict(getattr(module, name).state_dict())
        mhas.append(mha.eval())
    k_noise = module.k_noise.weight
    v_noise = module.v_noise.weight
    y = x.reshape(2, -1, *x.shape[1:])  # (2, B, N, C)
    out = torch.empty_like(y)
    for m in range(2):
        for b in range(y.shape[1]):
            s_all, t_all = y[m, b], y[1 - m, b]  # (N, C)
            pixels = [slice(p, p + 1) for p in range(s_all.shape[0])] \
                if per_pixel else [slice(None)]
            for p in pixels:
                s, t = s_all[p], t_all[p]  # (n, C), n pixels as MHA batch
                r = torch.softmax(
                    fc2(F.gelu(fc1(torch.cat([s, t], -1)))), dim=-1)
                query = s[None]  # (1, n, C)
                key = torch.stack([s + k_noise[m], s * r])  # (2, n, C)
                value = torch.stack([s + v_noise[m], t])
                f, _ = mhas[m](query, key, value, need_weights=False)
                out[m, b, p] = s + f[0]
    return out.reshape(x.shape)


# ----------------------------------------------------- pure functions
def test_relation_scores_equal_linear_gelu_linear_softmax():
    torch.manual_seed(0)
    fc1, fc2 = nn.Linear(2 * 12, 12), nn.Linear(12, 12)
    s, t = torch.randn(3, 5, 12), torch.randn(3, 5, 12)
    with torch.no_grad():
        expected = torch.softmax(
            fc2(F.gelu(fc1(torch.cat([s, t], -1)))), dim=-1)
        r = relation_scores(s, t, fc1.weight, fc1.bias, fc2.weight, fc2.bias)
        judger = RelationJudger(12)
        judger.fc1.load_state_dict(fc1.state_dict())
        judger.fc2.load_state_dict(fc2.state_dict())
        torch.testing.assert_close(judger(s, t), r, atol=0, rtol=0)
    torch.testing.assert_close(r, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(r.sum(-1), torch.ones(3, 5))
    # the order of [self; other] matters
    assert not torch.allclose(
        r, relation_scores(t, s, fc1.weight, fc1.bias, fc2.weight, fc2.bias))


@pytest.mark.parametrize('heads', [1, 4])
def test_gemini_attention_equals_multihead_attention(heads):
    """The closed form of one direction equals ``nn.MultiheadAttention``
    with query s (length 1, the pixels as its batch) and keys / values
    [s + n_k, s * r] / [s + n_v, t], without the residual."""
    torch.manual_seed(1)
    c = 16
    mha = nn.MultiheadAttention(c, heads).eval()
    with torch.no_grad():
        for p in mha.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    s, t = torch.randn(2, 7, c), torch.randn(2, 7, c)
    r = torch.randn(2, 7, c).softmax(-1)
    k_noise, v_noise = torch.randn(c), torch.randn(c)
    with torch.no_grad():
        out = gemini_attention(s, t, r, k_noise, v_noise, mha.in_proj_weight,
                               mha.in_proj_bias, mha.out_proj.weight,
                               mha.out_proj.bias, heads)
        pixels = s.reshape(1, -1, c)  # (1, B*N, C)
        keys = torch.cat([pixels + k_noise, (s * r).reshape(1, -1, c)])
        values = torch.cat([pixels + v_noise, t.reshape(1, -1, c)])
        expected, _ = mha(pixels, keys, values, need_weights=False)
    assert out.shape == s.shape
    torch.testing.assert_close(
        out, expected.reshape(s.shape), atol=1e-5, rtol=0)


# --------------------------------------------------- GeminiFusionModule
@pytest.mark.parametrize('per_pixel', [False, True])
def test_vectorised_module_equals_reference_loop(per_pixel):
    module = randomised()
    x = torch.randn(2 * 3, 10, 16)  # M=2, B=3, N=10, C=16
    with torch.no_grad():
        expected = naive_gemini(module, x, per_pixel)
        out = module(x)
    # both directions: rows 0..2 (0 <- 1) and 3..5 (1 <- 0)
    torch.testing.assert_close(out[:3], expected[:3], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[3:], expected[3:], atol=1e-5, rtol=0)


def test_noise_is_learned_and_deterministic():
    module = randomised()
    x = torch.randn(4, 7, 16)
    module.train()
    first, second = module(x), module(x)
    module.eval()
    torch.testing.assert_close(first, second, atol=0, rtol=0)
    torch.testing.assert_close(module(x), first, atol=0, rtol=0)
    assert module.k_noise.weight.shape == (2, 16)
    assert module.v_noise.weight.shape == (2, 16)


def test_relation_softmax_over_channels_and_init():
    module = GeminiFusionModule(32)
    s, t = torch.randn(2, 5, 32), torch.randn(2, 5, 32)
    r = module.relation(s, t)
    assert r.shape == s.shape and (r > 0).all()
    torch.testing.assert_close(r.sum(-1), torch.ones(2, 5))
    # the reference's init: trunc_normal(0.02) Linear layers with zero
    # bias, xavier in_proj with zero bias, N(0, 1) noise
    fc1 = module.relation_judger[0].fc1
    assert fc1.weight.std() < 0.03 and not fc1.bias.any()
    assert not module.cross_attn_0_to_1.in_proj_bias.any()
    assert not module.cross_attn_1_to_0.out_proj.bias.any()
    assert module.cross_attn_0_to_1.out_proj.weight.std() < 0.03
    assert module.k_noise.weight.std() > 0.5
    names = {k for k, _ in module.named_parameters()}
    assert {
        'cross_attn_0_to_1.in_proj_weight', 'cross_attn_1_to_0.in_proj_bias',
        'cross_attn_0_to_1.out_proj.weight', 'relation_judger.0.fc1.weight',
        'relation_judger.0.fc2.bias', 'k_noise.weight', 'v_noise.weight'
    } <= names


def test_gradients_reach_every_fusion_parameter():
    module = randomised()
    x = torch.randn(4, 6, 16, requires_grad=True)
    (module(x)**2).sum().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


def test_module_fuses_exactly_two_streams():
    # the module fuses two streams; the error points to the backbone's hub
    with pytest.raises(NotImplementedError, match='hub'):
        GeminiFusionModule(16, num_modalities=3)
    with pytest.raises(ValueError, match='not divisible'):
        GeminiFusionModule(20, num_heads=8)


# ------------------------------------------------------- hub equations
def test_scores_on_hand_made_tensors():
    # A = 2 auxiliaries, B = 1, 2x2 grid, C = 2
    aux = torch.arange(16.).reshape(2, 1, 4, 2) / 10 - 0.5
    dw_w = torch.zeros(2, 2, 1, 3, 3)
    dw_w[:, :, 0, 1, 1] = torch.tensor([[1., 2.], [-1., 0.5]])  # centre tap
    dw_b = torch.tensor([[0.1, 0.], [0., -0.2]])
    pw_w = torch.tensor([[1., -1.], [2., 3.]]).reshape(2, 1, 2, 1, 1)
    pw_b = torch.tensor([[0.3], [-0.4]])
    scores = hub_scores(aux, (2, 2), dw_w, dw_b, pw_w, pw_b)
    assert scores.shape == (2, 1, 4, 1)
    x = aux[:, 0]  # (A, N, C)
    expected = torch.stack([
        torch.sigmoid(0.3 + 1 * (x[0, :, 0] + 0.1) - 1 * (2 * x[0, :, 1])),
        torch.sigmoid(-0.4 + 2 * (-x[1, :, 0]) + 3 * (0.5 * x[1, :, 1] - 0.2))
    ])
    torch.testing.assert_close(scores[:, 0, :, 0], expected)


def test_scores_follow_the_row_major_token_grid():
    # a depthwise tap on the left neighbour: token (h, w) sees (h, w - 1)
    aux = torch.tensor([1., 2., 3., 4., 5., 6.]).reshape(1, 1, 6, 1)
    dw_w = torch.zeros(1, 1, 1, 3, 3)
    dw_w[0, 0, 0, 1, 0] = 1.
    scores = hub_scores(aux, (2, 3), dw_w, torch.zeros(1, 1),
                        torch.ones(1, 1, 1, 1, 1), torch.zeros(1, 1))
    grid = torch.tensor([[0., 1., 2.], [0., 4., 5.]])
    torch.testing.assert_close(scores.flatten(), grid.flatten().sigmoid())


def test_aggregation_and_update_on_hand_made_tensors():
    aux = torch.tensor([[1., -2., 4.], [3., 0.5, -1.]]).reshape(2, 1, 1, 3)
    scores = torch.tensor([0.5, 0.]).reshape(2, 1, 1, 1)
    scaled, stream = hub_aggregate(aux, scores)
    # x * s + x: 1.5 x for the first, x for the second auxiliary
    torch.testing.assert_close(scaled.flatten(),
                               torch.tensor([1.5, -3., 6., 3., 0.5, -1.]))
    torch.testing.assert_close(stream.flatten(), torch.tensor([3., 0.5, 6.]))
    assert stream.shape == (1, 1, 3)
    updated = hub_update(scaled, torch.tensor([10., 20., 30.]).view(1, 1, 3))
    torch.testing.assert_close(updated.flatten(),
                               torch.tensor([11.5, 17., 36., 13., 20.5, 29.]))


def test_predictor_equals_one_call_per_score_net():
    torch.manual_seed(0)
    predictor = HubScorePredictor(4, 8)
    aux = torch.randn(3, 2, 6 * 5, 8)
    scaled, stream = predictor(aux, (6, 5))
    expected = []
    for i in range(3):
        nchw = aux[i].transpose(1, 2).reshape(2, 8, 6, 5)
        s = predictor.score_nets[i](nchw).flatten(2).transpose(1, 2)
        expected.append(aux[i] * s + aux[i])
    torch.testing.assert_close(scaled, torch.stack(expected))
    torch.testing.assert_close(stream, functools.reduce(torch.max, expected))


def test_predictor_layout_and_init():
    predictor = HubScorePredictor(3, 16)
    shapes = {k: tuple(v.shape) for k, v in predictor.state_dict().items()}
    assert shapes == {
        f'score_nets.{i}.{k}': shape
        for i in range(3)
        for k, shape in (('0.weight', (16, 1, 3, 3)), ('0.bias', (16, )),
                         ('1.weight', (1, 16, 1, 1)), ('1.bias', (1, )))
    }
    assert isinstance(predictor.score_nets[0][2], torch.nn.Sigmoid)
    # the unused last net is frozen, the others train
    assert [p.requires_grad
            for p in predictor.score_nets[2].parameters()] == [False] * 4
    assert all(p.requires_grad for p in predictor.score_nets[0].parameters())
    # N(0, 2 / fan_out), fan_out = k * k * out (not divided by groups)
    assert not predictor.score_nets[0][0].bias.any()
    assert predictor.score_nets[0][1].weight.std() > 0.5  # sqrt(2 / 1)
    assert predictor.score_nets[0][0].weight.std() < 0.2  # sqrt(2 / 144)
    with pytest.raises(ValueError, match='>= 3 modalities'):
        HubScorePredictor(2, 16)
    with pytest.raises(ValueError, match='2 auxiliary modalities expected'):
        predictor(torch.randn(3, 1, 4, 16), (2, 2))
