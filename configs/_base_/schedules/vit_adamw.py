# AdamW for ViTs as DeiT trains them: weight decay 0.05, none on norms,
# biases, the class token and the position embedding; gradients clipped
# at 5. The schedules that inherit it set the lr and its schedule.
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0)
        }),
    clip_grad=dict(max_norm=5.0))
