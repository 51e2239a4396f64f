"""Checkpoints: append-only batch lines, fsync'd; a truncated tail is repaired; keys keep settings apart."""
from __future__ import annotations

import numpy as np

from console.generation.checkpoint import Checkpoint, content_hash, settings_key

KEY = settings_key(model="m", dimensions=4, normalize=True)


def _batch(n, seed):
    return np.random.default_rng(seed).standard_normal((n, 4)).astype(np.float32)


def _write_two_batches(tmp_path):
    a, b = _batch(2, 1), _batch(3, 2)
    with Checkpoint(tmp_path, "recipe", KEY) as cp:
        cp.append(["r1", "r2"], ["h1", "h2"], a)
        cp.append(["r3", "r4", "r5"], ["h3", "h4", "h5"], b)
    return cp.path, a, b


def test_batches_round_trip_exactly(tmp_path):
    path, a, b = _write_two_batches(tmp_path)
    assert path == tmp_path / ".checkpoints" / f"recipe-{KEY}.jsonl"
    assert len(path.read_text().splitlines()) == 2
    loaded = Checkpoint(tmp_path, "recipe", KEY).load()
    assert (loaded.batches, loaded.repaired) == (2, None)
    np.testing.assert_array_equal(np.vstack([loaded.vectors[h] for h in ["h1", "h2", "h3", "h4", "h5"]]),
                                  np.vstack([a, b]))


def test_load_keeps_only_the_wanted_hashes(tmp_path):
    _write_two_batches(tmp_path)
    assert sorted(Checkpoint(tmp_path, "recipe", KEY).load(wanted={"h2", "h5", "other"}).vectors) == ["h2", "h5"]


def test_a_truncated_last_line_is_cut_off_reported_and_appending_goes_on_cleanly(tmp_path):
    path, a, _ = _write_two_batches(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])  # killed while writing the second batch
    cp = Checkpoint(tmp_path, "recipe", KEY)
    loaded = cp.load()
    assert loaded.repaired == (f"recipe-{KEY}.jsonl: dropped 1 unreadable batch line (line 2; a run was probably "
                               "killed while writing); those items are embedded again")
    assert sorted(loaded.vectors) == ["h1", "h2"]
    cp.append(["r3"], ["h3"], _batch(1, 3))
    cp.close()
    again = Checkpoint(tmp_path, "recipe", KEY).load()
    assert (sorted(again.vectors), again.repaired) == (["h1", "h2", "h3"], None)


def test_a_corrupt_line_in_the_middle_is_skipped_and_the_rest_kept(tmp_path):
    path, _, _ = _write_two_batches(tmp_path)
    first, second = path.read_text().splitlines()
    path.write_text(first + "\n" + '{"ids": ["x"], "hashes": ["hx"], "dim": 4, "vectors": "!!"}\n' + second + "\n")
    loaded = Checkpoint(tmp_path, "recipe", KEY).load()
    assert sorted(loaded.vectors) == ["h1", "h2", "h3", "h4", "h5"]
    assert loaded.repaired.startswith(f"recipe-{KEY}.jsonl: dropped 1 unreadable batch line (line 2;")
    assert len(path.read_text().splitlines()) == 3  # nothing is cut when the tail is fine


def test_settings_that_change_vectors_change_the_key():
    base = dict(model="m", dimensions=4, normalize=True, max_length=None, prompt="")
    keys = {settings_key(**base), settings_key(**{**base, "model": "m2"}), settings_key(**{**base, "dimensions": 2}),
            settings_key(**{**base, "normalize": False}), settings_key(**{**base, "max_length": 128}),
            settings_key(**{**base, "prompt": "passage: "})}
    assert len(keys) == 6


def test_content_hash_depends_on_text_and_settings_not_on_the_id():
    assert content_hash(KEY, "Soto ayam") == content_hash(KEY, "Soto ayam")
    assert content_hash(KEY, "Soto ayam") != content_hash(KEY, "Soto ayam ")
    assert content_hash(KEY, "Soto ayam") != content_hash(settings_key(model="m", dimensions=2, normalize=True),
                                                          "Soto ayam")
