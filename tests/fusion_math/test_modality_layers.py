"""The modality layers: one vectorised call equals a loop over the
modalities."""
import torch
import torch.nn.functional as F

from projects.fusion_math.modality_layers import (ModalityConv2d,
                                                  ModalityLayerNorm,
                                                  ModalityLinear,
                                                  split_modalities)


def test_modality_layers_equal_per_modality_loops():
    torch.manual_seed(0)
    m, b = 3, 2
    x = torch.randn(m * b, 7, 8)
    norm = ModalityLayerNorm(m, 8)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    linear = ModalityLinear(m, 8, 5, shared=False)
    expected_norm, expected_linear = [], []
    for i, part in enumerate(x.split(b)):
        expected_norm.append(
            F.layer_norm(part, (8, ), norm.weight[i], norm.bias[i], 1e-6))
        expected_linear.append(
            F.linear(part, linear.weight[i], linear.bias[i]))
    torch.testing.assert_close(norm(x), torch.cat(expected_norm))
    torch.testing.assert_close(linear(x), torch.cat(expected_linear))

    images = torch.randn(m * b, 4, 9, 9)
    conv = ModalityConv2d(
        m, 4, 4, 3, stride=2, padding=1, groups=2, shared=False)
    expected = torch.cat([
        F.conv2d(part, conv.weight[i], conv.bias[i], 2, 1, 1, 2)
        for i, part in enumerate(images.split(b))
    ])
    torch.testing.assert_close(conv(images), expected)
    shared = ModalityConv2d(m, 4, 6, 3, padding=1)
    assert shared.weight.shape == (6, 4, 3, 3)
    assert ModalityLayerNorm(m, 8, shared=True).weight.shape == (1, 8)


def test_split_modalities_stacks_channel_groups_in_the_batch():
    x = torch.arange(2 * 6 * 1 * 1, dtype=torch.float).view(2, 6, 1, 1)
    stack = split_modalities(x, 2, 3)
    assert stack.shape == (4, 3, 1, 1)
    # modality m of image b at row m * B + b
    assert torch.equal(stack[1], x[1, :3])
    assert torch.equal(stack[2], x[0, 3:])
