"""MCTFVisionTransformer: the plain DeiT at r = 0 bit for bit, the
reference's token counts, and the logits of an official-layout DeiT-T
checkpoint against an independent reference forward for the one-step-ahead
modes 0 / 1 / 2, MCTF-Fast and ToMe."""
import pytest
import torch
from mmpretrain.models import VisionTransformer
from mmpretrain.registry import MODELS

import projects.mctf  # noqa: F401
from tools.model_converters.deit2mmpretrain import convert_deit
from .reference_forward import reference_forward

TRACE = [197, 197, 181, 165, 149, 133, 117, 101, 85, 69, 53, 37, 21]
FAST_TRACE = [197, 197, 197, 197, 129, 129, 129, 85, 85, 85, 56, 56, 56]
NUM_CLASSES = 10


def deit_tiny_timm_state(seed=0):
    """A DeiT-T state dict with timm's names and shapes (as the official
    ``deit_tiny_patch16_224`` file holds under ``'model'``), random values
    large enough for uneven attention."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, std=0.2):
        return torch.randn(*shape, generator=g) * std

    c, hidden = 192, 768
    sd = {
        'cls_token': rand(1, 1, c),
        'pos_embed': rand(1, 197, c),
        'patch_embed.proj.weight': rand(c, 3, 16, 16, std=0.05),
        'patch_embed.proj.bias': rand(c),
    }
    for i in range(12):
        p = f'blocks.{i}'
        sd.update({
            f'{p}.norm1.weight': 1 + rand(c, std=0.1),
            f'{p}.norm1.bias': rand(c, std=0.1),
            f'{p}.attn.qkv.weight': rand(3 * c, c, std=0.15),
            f'{p}.attn.qkv.bias': rand(3 * c, std=0.1),
            f'{p}.attn.proj.weight': rand(c, c, std=0.05),
            f'{p}.attn.proj.bias': rand(c, std=0.02),
            f'{p}.norm2.weight': 1 + rand(c, std=0.1),
            f'{p}.norm2.bias': rand(c, std=0.1),
            f'{p}.mlp.fc1.weight': rand(hidden, c, std=0.05),
            f'{p}.mlp.fc1.bias': rand(hidden, std=0.02),
            f'{p}.mlp.fc2.weight': rand(c, hidden, std=0.03),
            f'{p}.mlp.fc2.bias': rand(c, std=0.02),
        })
    sd.update({
        'norm.weight': 1 + rand(c, std=0.1),
        'norm.bias': rand(c, std=0.1),
        'head.weight': rand(NUM_CLASSES, c, std=0.05),
        'head.bias': rand(NUM_CLASSES, std=0.01),
    })
    return sd


def classifier(**backbone):
    cfg = dict(
        type='ImageClassifier',
        backbone=dict(
            type='MCTFVisionTransformer', arch='deit-tiny', **backbone),
        head=dict(
            type='VisionTransformerClsHead',
            num_classes=NUM_CLASSES,
            in_channels=192))
    model = MODELS.build(cfg)
    model.eval()
    return model


@pytest.fixture(scope='module')
def official():
    return deit_tiny_timm_state()


@pytest.fixture(scope='module')
def images():
    return torch.randn(
        2, 3, 224, 224, generator=torch.Generator().manual_seed(1))


def reference_and_model(official, images, model, r_per_layer, **reference):
    """Logits of ``model`` (loaded with the converted checkpoint) and of
    the reference forward, in float64: in float32 two implementations
    differ in the last bits of the scores, which flips the order of two
    near-equal step-2 edges (gaps of 5e-7 occur) and with it the next
    layer's even / odd split; in float64 the comparison is about the
    algorithm. Also the reference's token counts of the first image."""
    model.load_state_dict(convert_deit(official))
    model.double()
    counts = []
    expected = reference_forward({
        k: v.double()
        for k, v in official.items()
    },
                                 images.double(),
                                 r_per_layer,
                                 heads=3,
                                 counts=counts,
                                 **reference)
    with torch.no_grad():
        logits = model(images.double(), mode='tensor')
    return logits, expected, counts


def test_r0_is_mmpretrain_deit_bit_for_bit(images):
    torch.manual_seed(0)
    plain = VisionTransformer(arch='deit-tiny')
    merging = MODELS.build(
        dict(type='MCTFVisionTransformer', arch='deit-tiny', r=0))
    merging.load_state_dict(plain.state_dict())
    plain.eval()
    merging.eval()
    with torch.no_grad():
        assert torch.equal(plain(images)[0], merging(images)[0])
    assert merging.last_trace.tokens == [197] * 13


def test_token_counts_follow_the_reference_trace(images):
    model = MODELS.build(
        dict(type='MCTFVisionTransformer', arch='deit-tiny', r=16))
    assert model.token_counts() == TRACE
    fast = MODELS.build(
        dict(
            type='MCTFVisionTransformer',
            arch='deit-tiny',
            r=0.35,
            merge_layers=[3, 6, 9]))
    assert fast.token_counts() == FAST_TRACE
    model.eval()
    with torch.no_grad():
        model(images)
    trace = model.last_trace
    assert trace.tokens == TRACE
    assert (trace.size.sum(dim=(1, 2)) == 197).all()
    assert (trace.index[:, 0] == 0).all() and (trace.size[:, 0] == 1).all()


SETTINGS = {
    'mode0': (dict(placement='after_block'), dict(mode=0)),
    'mode1': (dict(), dict(mode=1)),
    'mode2': (dict(placement='precise'), dict(mode=2)),
    'mode1_unidirectional_size_pooling':
    (dict(bidirectional=False,
          pooling='size'), dict(mode=1, bidirectional=False, pooling='size')),
    'mode1_max_pooling': (dict(pooling='max'), dict(mode=1, pooling='max')),
    'tome':
    (dict(
        placement='after_attention',
        metric='keys',
        tau_info=0.,
        tau_size=0.,
        bidirectional=False,
        pooling='size',
        r=13,
        merge_layers=list(range(12))),
     dict(tome=True, taus=(1., 0., 0.), bidirectional=False, pooling='size')),
}


@pytest.mark.parametrize('setting', list(SETTINGS))
def test_logits_match_the_reference_forward(official, images, setting):
    backbone, reference = SETTINGS[setting]
    model = classifier(**backbone)
    trace = model.backbone.token_counts()
    r_per_layer = [a - b for a, b in zip(trace[:-1], trace[1:])]
    logits, expected, counts = reference_and_model(official, images, model,
                                                   r_per_layer, **reference)
    torch.testing.assert_close(logits, expected, atol=1e-6, rtol=1e-6)
    assert model.backbone.last_trace.tokens == counts == trace


def test_mctf_fast_matches_the_reference_forward(official, images):
    model = classifier(r=0.35, merge_layers=[3, 6, 9])
    r_per_layer = [0, 0, 0, 68, 0, 0, 44, 0, 0, 29, 0, 0]
    logits, expected, counts = reference_and_model(official, images, model,
                                                   r_per_layer)
    torch.testing.assert_close(logits, expected, atol=1e-6, rtol=1e-6)
    assert counts == FAST_TRACE


def test_r_eval_in_eval_mode_only():
    model = MODELS.build(
        dict(type='MCTFVisionTransformer', arch='deit-tiny', r=16, r_eval=8))
    model.train()
    assert model.token_counts()[-1] == 21
    model.eval()
    assert model.token_counts()[-1] == 197 - 8 * 11
    assert model.token_counts(r=0) == [197] * 13


@pytest.mark.parametrize('kwargs, message', [
    (dict(out_type='featmap'), "needs out_type='cls_token'"),
    (dict(placement='before'), 'placement must be one of'),
    (dict(metric='keys'), "needs placement='after_attention'"),
    (dict(tau_info=-1.), 'tau_info must be >= 0'),
    (dict(pooling='median'), 'pooling must be one of'),
    (dict(merge_layers=[12]), r'merge_layers \[12\] are not layers'),
    (dict(r=2.5), 'r must be a count'),
    (dict(r_eval=-1), 'r_eval must be a count'),
])
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MODELS.build(
            dict(type='MCTFVisionTransformer', arch='deit-tiny', **kwargs))


def test_r_beyond_the_safeguards_is_an_error_naming_the_layer():
    model = MODELS.build(
        dict(
            type='MCTFVisionTransformer',
            arch='deit-tiny',
            r=16,
            merge_layers=list(range(12))))
    with pytest.raises(ValueError, match='layer 11: r=16 removes 16 of 21'):
        model.token_counts()
    clamped = MODELS.build(
        dict(
            type='MCTFVisionTransformer',
            arch='deit-tiny',
            r=16,
            merge_layers=list(range(12)),
            overflow='clamp'))
    assert clamped.token_counts()[-2:] == [21, 11]


def test_converter_errors(official):
    distilled = dict(official, dist_token=torch.zeros(1, 1, 192))
    with pytest.raises(ValueError, match='distilled DeiT'):
        convert_deit(distilled, 'deit_tiny_distilled.pth')
    with pytest.raises(KeyError, match=r"not DeiT keys.*'fc_norm.weight'"):
        convert_deit(dict(official, **{'fc_norm.weight': torch.ones(1)}))
    converted = convert_deit(official)
    assert len(converted) == len(official)
    model = classifier()
    missing, unexpected = model.load_state_dict(converted, strict=True)
    assert not missing and not unexpected
