# ToMe on DeiT-S (ToMe reports 79.8 -> 79.3 % top-1 after training, 1.6x
# throughput): the MCTF backbone at ToMe's setting, r = 13 in all 12
# blocks, merged between attention and MLP, matched on the keys (mean over
# heads) by similarity alone, unidirectional, size-weighted averages,
# proportional attention. Without the teacher pass, training is ToMe's
# plain fine-tuning; tools/test.py with the converted official DeiT-S
# weights evaluates it off the shelf.
_base_ = ['./mctf_deit-small_r16_8xb128-40e_in1k.py']
model = dict(
    backbone=dict(
        r=13,
        merge_layers=list(range(12)),
        placement='after_attention',
        metric='keys',
        tau_info=0.,
        tau_size=0.,
        bidirectional=False,
        pooling='size'),
    r_teacher_max=0)
