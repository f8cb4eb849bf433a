"""Save a Keras model so that the same weights give the same bytes.

A `.keras` file is a zip whose metadata.json carries the save time, whose config.json numbers
shared objects by their memory address (`shared_object_id`), and whose entries carry their write
time: the same model saved twice differs, so `dvc.lock` would change on every re-run of an
unchanged commit. The archive is rewritten with the save time removed, shared objects numbered
1, 2, ... in order of appearance (the links between them are kept), and every entry stamped
1980-01-01, then moved into place atomically.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from imgclf.core.atomic import atomic_path

_EPOCH = (1980, 1, 1, 0, 0, 0)


def save_model(model, dest: Path | str) -> None:
    with atomic_path(dest, suffix=".keras") as tmp:
        raw = tmp.with_name(tmp.stem + ".raw.keras")      # beside it, so a kill leaves only temp names
        try:
            model.save(raw)
            with zipfile.ZipFile(raw) as src, zipfile.ZipFile(tmp, "w") as out:
                for info in sorted(src.infolist(), key=lambda i: i.filename):
                    data = src.read(info.filename)
                    if info.filename == "metadata.json":
                        meta = json.loads(data)
                        meta.pop("date_saved", None)
                        data = json.dumps(meta, sort_keys=True).encode()
                    elif info.filename == "config.json":
                        data = json.dumps(_renumber_shared(json.loads(data), {})).encode()
                    entry = zipfile.ZipInfo(info.filename, date_time=_EPOCH)
                    entry.compress_type = info.compress_type
                    entry.external_attr = 0o644 << 16
                    out.writestr(entry, data)
        finally:
            raw.unlink(missing_ok=True)


def _renumber_shared(node, ids: dict):
    if isinstance(node, dict):
        return {k: (ids.setdefault(v, len(ids) + 1) if k == "shared_object_id" else _renumber_shared(v, ids))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_renumber_shared(v, ids) for v in node]
    return node
