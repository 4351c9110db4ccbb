from .fused_mit_gan import (FusedMiTDiscriminator, FusedMiTGenerator,
                            PatchUpsample, pair_inputs)
from .translator import (MultiStreamTranslator, discriminator_loss,
                         generator_gan_loss, reconstruction_loss)

__all__ = [
    'FusedMiTDiscriminator', 'FusedMiTGenerator', 'PatchUpsample',
    'pair_inputs', 'MultiStreamTranslator', 'discriminator_loss',
    'generator_gan_loss', 'reconstruction_loss'
]
