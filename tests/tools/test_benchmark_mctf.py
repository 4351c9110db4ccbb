"""tools/analysis_tools/benchmark_mctf.py: one table of GFLOPs, final
token counts and images/s ratios for DeiT, MCTF, MCTF-Fast and ToMe at
MCTF's GFLOPs (a smoke run; no timing is asserted)."""
import re


def test_benchmark_table(one_thread):
    from tools.analysis_tools import benchmark_mctf
    table = benchmark_mctf.main([
        '--arch', 'deit-tiny', '--batch-size', '1', '--threads', '1',
        '--iters', '1', '--repeats', '1', '--warmup', '0'
    ])
    rows = {
        cells[0]: cells[1:]
        for cells in ([c.strip() for c in line.strip('|').split('|')]
                      for line in table.splitlines()[2:])
    }
    assert list(rows) == ['DeiT', 'MCTF r=16', 'MCTF-Fast', 'ToMe r=14']
    assert [rows[m][0] for m in rows] == ['1.258', '0.709', '0.748', '0.700']
    assert [rows[m][1] for m in rows] == ['197', '21', '56', '29']
    assert rows['DeiT'][3] == '1.00x'
    assert all(re.fullmatch(r'\d+\.\d+x', rows[m][3]) for m in rows)
