"""``make demo TASK=mctf``: the trade-off of token merging without ImageNet.

On the embedded synthetic shapes set (one small shape on a cluttered
background; 6 classes, 32 x 32 images) the demo

1. trains a small plain ViT (mmpretrain's ``VisionTransformer``, 64 patch
   tokens + the class token) from scratch with ``tools/train.py``;
2. fine-tunes it twice for the same budget from that checkpoint: with MCTF
   (r = 6 in layers 1-5) and its token-reduction consistency, and with
   ToMe (r = 6 in all 6 layers), both with ``tools/train.py``;
3. evaluates the plain ViT's checkpoint with MCTF and with ToMe off the
   shelf, and both fine-tuned models, at r = 0, 3, 6, 9
   (``tools/analysis_tools/token_merging_tradeoff.py``): one table and one
   plot of top-1 against GFLOPs;
4. draws which patches the fine-tuned MCTF and ToMe fused on the first test
   image of every class (``tools/analysis_tools/visualize_token_merging.py``).

Everything is in ``work_dirs/demo_mctf/``. As ``make demo``, every tool
runs with ``--threads`` threads and, on x86-64, the AVX2 kernels, and the
training is seeded (``--seed``).
"""
import argparse
import os
import os.path as osp
import sys
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from tools import run_demo  # noqa: E402

CONFIGS = 'configs/mctf'
DATA = 'synthetic-shapes-32x32'
PLAIN = ('ViT', f'{CONFIGS}/vit-tiny-p4_1xb64-2k_{DATA}.py')
MCTF = f'{CONFIGS}/mctf_vit-tiny-p4_1xb64-500_{DATA}.py'
TOME = f'{CONFIGS}/tome_vit-tiny-p4_1xb64-500_{DATA}.py'
FINE_TUNED = [('MCTF fine-tuned', MCTF), ('ToMe fine-tuned', TOME)]
R_SWEEP = (0, 3, 6, 9)  # 9: the largest r both leave >= 10 tokens at
R_PICTURE = 6  # the fine-tuning r of both configs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--work-dir',
        default=osp.join(REPO_ROOT, 'work_dirs', 'demo_mctf'),
        help='where the models, logs, table and pictures go')
    run_demo.add_run_arguments(parser)
    args = parser.parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    start = time.time()
    name, config = PLAIN
    plain = run_demo.train_and_test(
        name,
        config,
        args.work_dir,
        show=False,
        seed=args.seed,
        threads=args.threads)
    plain_checkpoint = run_demo.last_checkpoint(
        run_demo.model_dir(args.work_dir, name))
    print(f'[demo] {name}: top-1 {plain["accuracy/top1"]:.2f} %', flush=True)
    specs = [
        f'MCTF={MCTF}:{plain_checkpoint}', f'ToMe={TOME}:{plain_checkpoint}'
    ]
    for name, config in FINE_TUNED:
        run_demo.train_and_test(
            name,
            config,
            args.work_dir,
            show=False,
            seed=args.seed,
            threads=args.threads,
            options=[f'load_from={plain_checkpoint}'])
        checkpoint = run_demo.last_checkpoint(
            run_demo.model_dir(args.work_dir, name))
        specs.append(f'{name}={config}:{checkpoint}')
    tradeoff = osp.join(args.work_dir, 'tradeoff')
    print('[demo] accuracy against GFLOPs', flush=True)
    run_demo.run([
        sys.executable, 'tools/analysis_tools/token_merging_tradeoff.py',
        *specs, '--r', *map(str, R_SWEEP), '--out-dir', tradeoff, '--title',
        'Synthetic shapes, ViT 6 x 64, 32 x 32 input'
    ], osp.join(args.work_dir, 'tradeoff.log'), args.threads)
    merges = osp.join(args.work_dir, 'merges.png')
    run_demo.run([
        sys.executable, 'tools/analysis_tools/visualize_token_merging.py',
        *specs[2:], '--r',
        str(R_PICTURE), '--out', merges, '--each-class'
    ], osp.join(args.work_dir, 'merges.log'), args.threads)
    with open(osp.join(tradeoff, 'tradeoff.md')) as f:
        table = f.read().strip()
    print(f'\nSynthetic shapes test set, 600 images '
          f'({time.time() - start:.0f} s):\n')
    print(table)
    print(f'\nTop-1 against GFLOPs: {osp.join(tradeoff, "tradeoff.png")}')
    print(f'Patches fused at r = {R_PICTURE}: {merges}')
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(table + '\n')


if __name__ == '__main__':
    main()
