import gzip

import numpy as np
import pytest

from imgclf.data.idx import IdxError, encode_idx, parse_idx, read_idx


def test_roundtrip_uint8_images_and_labels(tmp_path):
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(encode_idx(images)))
    out = read_idx(path)
    assert out.shape == (3, 4, 5) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, images)
    labels = np.array([9, 0, 3], dtype=np.uint8)
    np.testing.assert_array_equal(parse_idx(encode_idx(labels)), labels)


def test_big_endian_int_payload():
    arr = np.array([1, -2, 70000], dtype=np.int32)
    np.testing.assert_array_equal(parse_idx(encode_idx(arr)), arr)


def test_truncated_file_names_file_and_sizes(tmp_path):
    data = encode_idx(np.zeros((10, 28, 28), dtype=np.uint8))[:-5]
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(data)
    with pytest.raises(IdxError, match=r"train-images-idx3-ubyte.*shape \(10, 28, 28\).*truncated"):
        read_idx(path)


def test_not_idx_is_rejected(tmp_path):
    path = tmp_path / "page.gz"
    path.write_bytes(gzip.compress(b"<html>not found</html>"))
    with pytest.raises(IdxError, match="page.gz: not an IDX file"):
        read_idx(path)


def test_corrupt_gzip_is_named(tmp_path):
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(encode_idx(np.zeros(100, np.uint8)))[:20])
    with pytest.raises(IdxError, match="bad.gz: corrupt gzip"):
        read_idx(path)
