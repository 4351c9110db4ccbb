"""Writing a generated dataset into ``data_root`` once, safely.

The synthetic sets are generated on first use by whichever process builds
the dataset first; several processes (dataloader workers, DDP ranks, a test
run next to a demo) may do so at once. Each writes a private sibling folder
and renames it into place (the first rename wins); a marker file with the
generator's parameters tells a finished set from a stale or foreign one.
"""
import json
import os
import os.path as osp
import shutil
import uuid
from typing import Optional

MARKER = 'synthetic_meta.json'


def begin_generation(root: str, params: dict) -> Optional[str]:
    """The private folder to write a set with ``params`` into, or None if
    ``root`` already holds it.

    A set of ours with other parameters is moved aside and deleted; a
    non-empty ``root`` without the marker is an error (not ours to delete).
    """
    root = osp.normpath(root)  # 'data/x/' -> 'data/x': tmp is a sibling
    marker = osp.join(root, MARKER)
    if osp.isfile(marker):
        with open(marker) as f:
            if json.load(f) == params:
                return None
        stale = f'{root}.stale-{uuid.uuid4().hex[:8]}'
        try:  # atomic; a concurrent process may have moved it already
            os.rename(root, stale)
        except OSError:
            pass
        shutil.rmtree(stale, ignore_errors=True)
    elif osp.exists(root) and os.listdir(root):
        raise FileExistsError(
            f'{root} exists, is not empty and has no {MARKER} (not written '
            'by a synthetic generator of this repository); choose another '
            'data_root')
    tmp = f'{root}.tmp-{uuid.uuid4().hex[:8]}'
    os.makedirs(tmp)
    return tmp


def finish_generation(tmp: str, root: str, params: dict) -> str:
    """Mark the set written into ``tmp`` and move it to ``root``."""
    root = osp.normpath(root)
    with open(osp.join(tmp, MARKER), 'w') as f:
        json.dump(params, f)
    os.makedirs(osp.dirname(osp.abspath(root)), exist_ok=True)
    try:
        os.rename(tmp, root)
    except OSError:  # another process finished first
        shutil.rmtree(tmp)
    return root
