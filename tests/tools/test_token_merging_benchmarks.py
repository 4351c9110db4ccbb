"""The token-merging benchmarks of the fusion models (smoke runs on tiny
inputs; no timing is asserted): the fused MiT's GMACs fall with the merged
share, and the 3D benchmark builds the paper's Table 10 model and the
merged rows."""
import re


def table_rows(table: str):
    lines = [line for line in table.splitlines() if line.startswith('| ')]
    return {
        cells[0]: cells[1:]
        for cells in ([c.strip() for c in line.strip('|').split('|')]
                      for line in lines[1:])
    }


def test_fused_mit_benchmark_counts_fewer_macs_when_merging(one_thread):
    from tools.analysis_tools import benchmark_fused_token_merging as bench
    tables = bench.main([
        '--arch', 'b0', '--size', '64', '96', '--ratios', '0.25', '0.75',
        '--stages', '3', '2,3,4', '--merge-mlp', 'both', '--iters', '1',
        '--warmup', '0', '--threads', '1'
    ])
    assert len(tables) == 2  # TokenFusion, GeminiFusion
    for table in tables:
        rows = table_rows(table)
        assert len(rows) == 1 + 2 * 2 * 2
        # the change against the unmerged backbone, in %
        macs = {
            name: float(cells[2].rstrip(' %'))
            for name, cells in rows.items()
        }
        unmerged = macs['unmerged']
        for ratio in ('0.25', '0.75'):
            plain = macs[f'stages 2,3,4, ratio {ratio}']
            assert plain < unmerged
            assert macs[f'stages 2,3,4, ratio {ratio}, + MLP'] < plain
        assert macs['stages 2,3,4, ratio 0.75'] < macs[
            'stages 2,3,4, ratio 0.25']
        assert all(
            re.fullmatch(r'\d+\.\d\dx', cells[4]) for cells in rows.values())


def test_table10_model_and_merged_rows():
    from tools.analysis_tools import benchmark_3d
    entries = benchmark_3d.entries_of('table10', [0.5])
    assert [(e[0], e[2], e[4]) for e in entries] == [
        ('points only (0 frames)', 0, 0),
        ('+ image, 5 frames', 5, 0),
        ('+ image, 5 frames, merged r=0.5', 5, 0.5),
        ('+ image, 10 frames', 10, 0),
        ('+ image, 10 frames, merged r=0.5', 10, 0.5),
    ]
    model = benchmark_3d.build_model(entries[4][1], 'cpu', 0.5)
    assert model.img_backbone.embed_dims == 192  # YOLOS-Ti
    assert not model.img_backbone.mid_pe
    assert model.img_backbone.token_merge.r == 0.5
    assert model.bbox_head.num_decoder_layers == 6
    assert model.bbox_head.num_proposal == 256
    assert model.fusion_cfg['blocks_per_layer'] == 2
