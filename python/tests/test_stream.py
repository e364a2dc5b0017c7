"""StreamingEngine: chunking, generation equal to HydraLM.generate, stats,
state files that move between Python and `hydra stream` both ways."""
import numpy as np
import pytest

import hydralm
from conftest import DATA, hydra


def text_ids(n, offset=0):
    with open(DATA, "rb") as f:
        f.seek(offset)
        return list(f.read(n))


def test_feed_in_any_split_equals_forward(model):
    ids = text_ids(700)
    e = hydralm.StreamingEngine(model, chunk=64)
    assert e.dtype == "f32" and e.chunk == 64
    for i in range(0, 700, 97):
        assert e.feed(ids[i:i + 97]) == len(ids[i:i + 97])
    np.testing.assert_allclose(e.last_logits(), model.forward(ids, last_only=True), rtol=1e-4, atol=1e-5)
    s = e.stats()
    assert s.tokens == 700 and s.position == 700 and s.chunks >= 11
    assert s.state_bytes == s.peak_state_bytes == model.state_bytes
    assert s.seconds > 0 and s.tokens_per_s > 0


def test_extend_and_generate_equals_generate(model):
    ids, q = text_ids(300), hydralm.encode("\nKING: ")
    e = hydralm.StreamingEngine(model)
    e.feed(ids)
    out = e.extend_and_generate(prompt=q, max_new=40, temperature=0.8, top_p=0.9, seed=5)
    assert out.tokens == model.generate(ids + q, max_new_tokens=40, temperature=0.8, top_p=0.9, seed=5)
    assert out.tokens_processed == 300 + len(q) + 40 and out.position == out.tokens_processed
    assert out.peak_state_bytes == model.state_bytes and out.state_bytes == model.state_bytes
    # an empty prompt continues right after the last token
    more = e.extend_and_generate(max_new=5, temperature=0)
    assert len(more.tokens) == 5 and e.position == out.position + 5
    seen = []
    e.extend_and_generate(prompt=[1], max_new=4, on_token=seen.append)
    assert len(seen) == 4
    e.reset()
    assert e.stats().tokens == 0 and e.position == 0


def test_bf16_engine(model):
    ids = text_ids(200)
    e = hydralm.StreamingEngine(model, dtype="bf16")
    e.feed(ids)
    ref = model.forward(ids, last_only=True)
    got = e.last_logits()
    assert e.dtype == "bf16"
    assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 5e-2


def test_state_files_python_to_cli_and_back(tmp_path, model, model_file):
    ids, q = text_ids(1000), "\nKING: "
    # Python saves, the CLI resumes
    e = hydralm.StreamingEngine(hydralm.HydraLM.load(model_file))
    e.feed(ids)
    e.save_state(tmp_path / "py.hstate")
    cli = hydra("stream", "--model", model_file, "--load-state", tmp_path / "py.hstate", "--then", q, "-n", 30,
                "--temperature", 0.7, "--seed", 2, "--threads", 1, "--quiet")
    py = e.extend_and_generate(prompt=hydralm.encode(q), max_new=30, temperature=0.7, seed=2)
    assert cli == q.encode() + bytes(py.tokens) + b"\n"
    # the CLI saves, Python resumes
    (tmp_path / "in.txt").write_bytes(bytes(ids))
    hydra("stream", "--model", model_file, "--input", tmp_path / "in.txt", "--save-state", tmp_path / "cli.hstate",
          "--threads", 1, "--quiet")
    e2 = hydralm.StreamingEngine(model)
    e2.load_state(tmp_path / "cli.hstate")
    assert e2.position == 1000
    with pytest.raises(ValueError, match="no logits"):
        e2.last_logits()  # a loaded state carries no logits
    got = e2.extend_and_generate(prompt=hydralm.encode(q), max_new=30, temperature=0.7, seed=2)
    assert got.tokens == py.tokens
    # and a State object reads the same file
    st = model.new_state()
    st.load(tmp_path / "cli.hstate")
    assert st.position == 1000
    assert model.generate(hydralm.encode(q), max_new_tokens=30, temperature=0.7, seed=2, state=st) == py.tokens
    st.save(tmp_path / "state2.hstate")


def test_engine_errors(tmp_path, model):
    for kw, exc in [(dict(dtype="f16"), ValueError), (dict(chunk=0), ValueError), (dict(chunk="8"), TypeError),
                    (dict(device=7), TypeError)]:
        with pytest.raises(exc):
            hydralm.StreamingEngine(model, **kw)
    with pytest.raises(TypeError):
        hydralm.StreamingEngine(None)
    e = hydralm.StreamingEngine(model)
    with pytest.raises(ValueError, match="no logits"):
        e.last_logits()
    with pytest.raises(ValueError, match="empty prompt"):
        e.extend_and_generate(max_new=3)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        e.feed([1, 2, 300])
    assert e.position == 0  # nothing consumed
    for bad, exc in [(None, TypeError), ([-1], ValueError), (np.array([0.5]), TypeError)]:
        with pytest.raises(exc):
            e.feed(bad)
    assert e.feed([]) == 0
    e.feed([1, 2, 3])
    with pytest.raises(ValueError):
        e.extend_and_generate(prompt=[1], max_new=0)
    with pytest.raises(OSError):
        e.load_state(tmp_path / "missing.hstate")
    (tmp_path / "bad.hstate").write_bytes(b"HYDRASTnot a state file at all")
    with pytest.raises(OSError):
        e.load_state(tmp_path / "bad.hstate")
    other = hydralm.StreamingEngine(hydralm.HydraLM(model.config, seed=99))
    other.feed([1])
    other.save_state(tmp_path / "other.hstate")
    with pytest.raises(ValueError, match="model"):
        e.load_state(tmp_path / "other.hstate")  # another model's state (fingerprint)
    with pytest.raises(TypeError):
        e.save_state(None)
    e.close()
    with pytest.raises(ValueError, match="closed"):
        e.feed([1])
