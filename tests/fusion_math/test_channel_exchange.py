"""CEN-style channel exchange on tensors (TokenFusion supplementary,
Table 9)."""
import pytest
import torch

from projects.fusion_math.channel_exchange import (channel_exchange,
                                                   channel_exchange_statistics,
                                                   channel_sparsity_loss,
                                                   exchanged_channels)


def test_channel_exchange_two_modalities_by_hand():
    # x: (M=2, B=1, N=2, C=3)
    x = torch.tensor([[[[1., 2., 3.], [4., 5., 6.]]],
                      [[[10., 20., 30.], [40., 50., 60.]]]])
    gammas = torch.tensor([[1.0, 0.01, -0.5], [0.019, 0.5, -0.001]])
    out = channel_exchange(x, gammas, 0.02)
    # modality 0 takes channel 1 (|0.01| < θ) from modality 1;
    # modality 1 takes channels 0 and 2 (|γ| < θ, sign ignored)
    expected = torch.tensor([[[[1., 20., 3.], [4., 50., 6.]]],
                             [[[1., 20., 3.], [4., 50., 6.]]]])
    assert torch.equal(out, expected)
    assert torch.equal(
        exchanged_channels(gammas, 0.02),
        torch.tensor([[False, True, False], [True, False, True]]))
    # |γ| == θ is kept (CEN: bn >= threshold keeps)
    assert torch.equal(channel_exchange(x, torch.full((2, 3), 0.02), 0.02), x)


def test_channel_exchange_three_modalities_mean_of_others():
    # x: (M=3, B=1, C=2)
    x = torch.tensor([[[1., 2.]], [[4., 8.]], [[16., 32.]]])
    gammas = torch.tensor([[0., 1.], [1., 0.], [0., 0.]])
    out = channel_exchange(x, gammas, 0.02)
    expected = torch.tensor([[[(4 + 16) / 2, 2.]], [[4., (2 + 32) / 2]],
                             [[(1 + 4) / 2, (2 + 8) / 2]]])
    torch.testing.assert_close(out, expected)
    # one modality: nothing to exchange
    assert torch.equal(channel_exchange(x[:1], gammas[:1], 0.02), x[:1])
    with pytest.raises(ValueError):
        channel_exchange(x, gammas[:2], 0.02)


def test_channel_sparsity_loss_and_statistics():
    g1 = torch.tensor([[1., -2.], [0.5, 0.]])
    g2 = torch.tensor([[-0.25, 0.01, 3.], [0., 0., 1.]])
    assert channel_sparsity_loss(
        [g1, g2]).item() == pytest.approx(1 + 2 + 0.5 + 0.25 + 0.01 + 3 + 1)
    stats = channel_exchange_statistics([g1, g2], 0.02, ('rgb', 'depth'))
    assert stats['channels/rgb/exchanged'].item() == pytest.approx(1 / 5)
    assert stats['channels/depth/exchanged'].item() == pytest.approx(3 / 5)
    assert stats['channels/rgb/gamma_abs_mean'].item() == pytest.approx(6.26 /
                                                                        5)
    with pytest.raises(ValueError):
        channel_sparsity_loss([])
