"""The translation generator and discriminator: the reference's sizes,
shapes for 1 to 4 input modalities, fusion only where the reference fuses,
the ensemble."""
import pytest
import torch

from projects.multimodal_translation.models import (FusedMiTDiscriminator,
                                                    FusedMiTGenerator,
                                                    pair_inputs)

TINY = dict(
    embed_dims=16, encoder_depths=(1, 1, 2, 1, 1), decoder_depths=(1, 1, 1, 1))


def test_reference_sizes():
    """gen_b2 / dis_b2 of the TokenFusion release: 131.1 M and 85.3 M
    parameters (counted on the released networks), which pins the widths,
    depths, spatial-reduction ratios and MLP ratios of both."""
    generator = FusedMiTGenerator()
    count = sum(p.numel() for p in generator.parameters())
    assert round(count / 1e6, 1) == 131.1
    discriminator = FusedMiTDiscriminator()
    count = sum(p.numel() for p in discriminator.parameters())
    assert round(count / 1e6, 1) == 85.3
    # the first conv takes source + target, the head maps 1024 -> 1
    assert discriminator.encoder.patch_embed1.proj.weight.shape == (64, 6, 3,
                                                                    3)
    assert discriminator.head.weight.shape[:2] == (1, 1024)


@pytest.mark.parametrize('m', [1, 2, 3, 4])
def test_shapes_for_1_to_4_modalities(m):
    torch.manual_seed(0)
    fusion = None if m == 1 else dict(
        type='TokenExchange', threshold=0.02, blocks='last')
    generator = FusedMiTGenerator(num_modalities=m, fusion=fusion, **TINY)
    generator.init_weights()
    sources = torch.randn(2, 3 * m, 64, 96)
    images = generator(sources)
    assert images.shape == (m, 2, 3, 64, 96)
    assert images.abs().max() < 1  # tanh
    assert generator.ensemble(images).shape == (2, 3, 64, 96)
    discriminator = FusedMiTDiscriminator(
        num_streams=m, embed_dims=16, depths=TINY['encoder_depths'])
    assert discriminator.head.weight.shape[:2] == (1, 256)
    real = torch.rand(2, 3, 64, 96) * 2 - 1
    for target in (images, real):
        patches = discriminator(pair_inputs(sources, target, m))
        assert patches.shape == (m, 2, 1, 2, 3)
        assert ((patches > 0) & (patches < 1)).all()


def test_fusion_only_in_the_last_encoder_block_of_every_stage():
    generator = FusedMiTGenerator(**TINY)
    layers = generator.encoder.fusion_layers
    assert len(layers) == 1 and type(layers[0]).__name__ == 'TokenExchange'
    assert layers.blocks == [(0, 0), (1, 0), (2, 1), (3, 0), (4, 0)]
    assert len(layers[0].score_predictors) == 5
    # the decoder's blocks call no fusion layer, and the discriminator has
    # none
    generator(torch.randn(1, 6, 64, 64))
    assert len(layers[0].scores) == 5
    assert not len(
        FusedMiTDiscriminator(depths=(1, ) * 5).encoder.fusion_layers)
    with pytest.raises(ValueError, match='5 encoder and 4 decoder'):
        FusedMiTGenerator(encoder_depths=(1, 1, 1, 1))


def test_exchange_changes_the_streams():
    """With every token below θ the streams swap their attention updates
    in the 5 fused blocks: the images differ from the same weights without
    fusion."""
    torch.manual_seed(0)
    fused = FusedMiTGenerator(
        fusion=dict(type='TokenExchange', threshold=1.0, blocks='last'),
        **TINY)
    fused.init_weights()
    plain = FusedMiTGenerator(fusion=None, **TINY)
    missing, unexpected = plain.load_state_dict(
        fused.state_dict(), strict=False)
    assert not missing and all('fusion_layers' in k for k in unexpected)
    x = torch.randn(1, 6, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(fused(x), plain(x))
    assert 'loss_sparsity' in fused.fusion_loss()


def test_ensemble_gradient_reaches_alpha_only():
    generator = FusedMiTGenerator(**TINY)
    images = generator(torch.randn(1, 6, 64, 64))
    generator.ensemble(images).sum().backward()
    assert generator.alpha.grad is not None
    assert generator.project.weight.grad is None


def tiny_translator(**kwargs):
    from mmseg.registry import MODELS
    return MODELS.build(
        dict(
            type='MultiStreamTranslator',
            generator=dict(type='FusedMiTGenerator', **TINY),
            discriminator=dict(
                type='FusedMiTDiscriminator', depths=TINY['encoder_depths']),
            stream_names=('shade', 'texture'),
            **kwargs))


def translation_batch(batch=2, size=64):
    from mmengine.structures import BaseDataElement
    torch.manual_seed(1)
    samples = [
        BaseDataElement(gt_image=torch.rand(3, size, size) * 2 - 1)
        for _ in range(batch)
    ]
    return dict(
        inputs=[torch.rand(6, size, size) * 2 - 1 for _ in range(batch)],
        data_samples=samples)


def test_losses_on_tensors():
    from projects.multimodal_translation.models import (discriminator_loss,
                                                        generator_gan_loss,
                                                        reconstruction_loss)
    real = torch.full((2, 1, 1, 2, 2), 0.8)
    fake = torch.full((2, 1, 1, 2, 2), 0.3)
    # per stream 0.5 * (-log 0.8 - log 0.7), summed over 2 streams
    expected = 2 * 0.5 * -(
        torch.log(torch.tensor(0.8)) + torch.log(torch.tensor(0.7)))
    torch.testing.assert_close(discriminator_loss(real, fake), expected)
    torch.testing.assert_close(
        generator_gan_loss(fake), 2 * -torch.log(torch.tensor(0.3)))
    target = torch.zeros(1, 3, 4, 4)
    images = torch.stack([torch.full_like(target, 0.5), -target - 0.25])
    # L1 0.5 + 0.25 over the streams, + 0.125 for the ensemble
    torch.testing.assert_close(
        reconstruction_loss(images, torch.full_like(target, 0.125), target),
        torch.tensor(0.875))


def test_one_gan_step_updates_both_networks():
    from mmengine.optim import OptimWrapper, OptimWrapperDict
    torch.manual_seed(0)
    model = tiny_translator()
    model.init_weights()

    def adam(module):
        return OptimWrapper(
            torch.optim.Adam(module.parameters(), lr=2e-4, betas=(0.5, 0.999)))

    wrappers = OptimWrapperDict(
        generator=adam(model.generator),
        discriminator=adam(model.discriminator))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    log = model.train_step(translation_batch(), wrappers)
    assert {'loss', 'loss_gan', 'loss_l1', 'loss_sparsity',
            'loss_d'} <= set(log)
    changed = {
        k.split('.')[0]
        for k, v in model.state_dict().items()
        if v.dtype.is_floating_point and not torch.equal(v, before[k])
    }
    assert changed == {'generator', 'discriminator'}
    assert not torch.equal(before['generator.alpha'], model.generator.alpha)
    # the generator step left no gradient in the frozen discriminator, and
    # it trains again afterwards
    assert all(p.grad is None or not p.grad.any()
               for p in model.discriminator.parameters())
    assert all(p.requires_grad for p in model.discriminator.parameters())

    model.eval()
    batch = model.data_preprocessor(translation_batch(batch=1), False)
    with torch.no_grad():
        sample = model(**batch, mode='predict')[0]
    assert set(sample.pred_images) == {'shade', 'texture', 'ensemble'}
    assert sample.pred_images['ensemble'].shape == (3, 64, 64)
    with pytest.raises(KeyError, match='hold no gt_image'):
        model.targets([sample.__class__()])


def test_per_submodule_optimizers():
    from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS
    model = tiny_translator()
    build = OPTIM_WRAPPER_CONSTRUCTORS.build
    wrappers = build(
        dict(
            type='PerSubmoduleOptimWrapperConstructor',
            optim_wrapper_cfg=dict(
                generator=dict(
                    optimizer=dict(type='Adam', lr=2e-4, betas=(0.5, 0.999)),
                    paramwise_cfg=dict(
                        custom_keys=dict(alpha=dict(lr_mult=10.)))),
                discriminator=dict(optimizer=dict(type='Adam', lr=1e-4)))))(
                    model)
    assert set(wrappers.keys()) == {'generator', 'discriminator'}
    generator_params = {id(p) for p in model.generator.parameters()}
    groups = wrappers['generator'].optimizer.param_groups
    assert {id(p) for g in groups for p in g['params']} == generator_params
    assert [
        g['lr'] for g in groups if g['params'][0] is model.generator.alpha
    ] == [2e-3]
    assert wrappers['discriminator'].optimizer.param_groups[0]['lr'] == 1e-4
    with pytest.raises(AttributeError, match='has no submodule'):
        build(
            dict(
                type='PerSubmoduleOptimWrapperConstructor',
                optim_wrapper_cfg=dict(
                    critic=dict(optimizer=dict(type='Adam')))))(
                        model)
