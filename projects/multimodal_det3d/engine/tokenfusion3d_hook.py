"""Start-up checks and training schedules of the 3D fusion detector, set on
the model by a hook (the model does not read the loop's epoch itself)."""
from typing import Optional

from mmdet3d.registry import HOOKS
from mmengine.hooks import Hook

from projects.common.runner_utils import unwrapped_model
from ..models.fusion_layers.projection import check_projection_pipeline

DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


@HOOKS.register_module()
class TokenFusion3DHook(Hook):
    """Check the data pipelines of :class:`TokenFusionGroupFree3D` at
    start-up and switch its 2D loss and seed-key fusion on and off by
    training epoch.

    Before the run (training or testing) every transform of the config's
    train / val / test pipelines must be one the seed projection knows
    (:data:`PROJECTION_TRANSFORMS`): any other one could move points or
    pixels without a record.

    Before every training iteration the hook computes the epoch as
    ``iteration // iterations per epoch`` (the length of the training
    dataloader), which is the loop's epoch with ``EpochBasedTrainLoop`` and
    the same count of passes over the data with ``IterBasedTrainLoop``, and
    sets:

    * ``model.img_loss_active``: the YOLOS 2D loss is on while the epoch is
      below ``img_loss_epochs`` (the reference: the first 120 of 600
      epochs; after that the image branch only learns through the 3D loss,
      if at all);
    * ``model.seed_fusion.active``: off while the epoch is below
      ``fusion_warmup_epochs``. While off, no seed takes anything from the
      image (θ = 0) and the sparsity loss is off (λ = 0), so the 2D loss
      can train the image branch before the seed scores start to decide.

    Validation and testing see the model as the last training iteration
    left it; a model built for ``tools/test.py`` has both on.

    Args:
        img_loss_epochs (int, optional): epochs with the 2D loss; None:
            every epoch.
        fusion_warmup_epochs (int): epochs without fusion. Defaults to 0.
    """

    priority = 'NORMAL'

    def __init__(self,
                 img_loss_epochs: Optional[int] = None,
                 fusion_warmup_epochs: int = 0) -> None:
        for name, value in (('img_loss_epochs', img_loss_epochs),
                            ('fusion_warmup_epochs', fusion_warmup_epochs)):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f'{name} must be a non-negative int, got '
                                 f'{value!r}')
        self.img_loss_epochs = img_loss_epochs
        self.fusion_warmup_epochs = fusion_warmup_epochs

    def before_run(self, runner) -> None:
        for key in DATALOADERS:
            dataset = (runner.cfg.get(key) or {}).get('dataset')
            while isinstance(dataset, dict) and 'pipeline' not in dataset \
                    and 'dataset' in dataset:  # dataset wrappers
                dataset = dataset['dataset']
            if isinstance(dataset, dict) and dataset.get('pipeline'):
                check_projection_pipeline(dataset['pipeline'],
                                          f'{key}.dataset.pipeline')

    def before_train(self, runner) -> None:
        model = unwrapped_model(runner)
        if not hasattr(model, 'img_loss_active') or not hasattr(
                getattr(model, 'seed_fusion', None), 'active'):
            raise TypeError(
                f'{type(self).__name__} schedules a TokenFusionGroupFree3D; '
                f'the model is a {type(model).__name__}. Remove the hook '
                'from custom_hooks or use the fusion detector.')

    def epoch_of(self, runner) -> int:
        """Passes over the training data completed before this
        iteration."""
        return runner.iter // len(runner.train_dataloader)

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        model = unwrapped_model(runner)
        epoch = self.epoch_of(runner)
        model.img_loss_active = (
            self.img_loss_epochs is None or epoch < self.img_loss_epochs)
        model.seed_fusion.active = epoch >= self.fusion_warmup_epochs
