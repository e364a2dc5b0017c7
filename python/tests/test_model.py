"""HydraConfig and HydraLM: config defaults and validation, checkpoints,
forward logits bit for bit against a C program, generation against the CLI,
and every error path of the model's functions."""
import json

import numpy as np
import pytest
import torch

import hydralm
from c_helpers import compile_c, run_c
from conftest import hydra, small_config

FORWARD_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include "hydralm.h"
/* prog MODEL OUT MODE id... : logits of one sequence as raw float32
 * (MODE 2: [T, V] of every position, 1: [V] of the last) */
int main(int argc, char **argv) {
    hydra_set_num_threads(1);
    hydra_model *m;
    if (hydra_model_load(argv[1], &m)) { fprintf(stderr, "%s\n", hydra_last_error()); return 1; }
    int T = argc - 4, mode = atoi(argv[3]), V = hydra_model_config(m)->vocab_size;
    int32_t *ids = malloc(T * sizeof *ids);
    float *lg = malloc((size_t)T * V * sizeof *lg);
    for (int i = 0; i < T; i++) ids[i] = atoi(argv[4 + i]);
    if (hydra_forward(m, ids, 1, T, NULL, (hydra_logits_mode)mode, lg)) { fprintf(stderr, "%s\n", hydra_last_error()); return 1; }
    FILE *f = fopen(argv[2], "wb");
    fwrite(lg, sizeof *lg, (size_t)(mode == 2 ? T : 1) * V, f);
    fclose(f);
    hydra_model_free(m);
    return 0;
}
"""


# ------------------------------------------------------------------ config
def test_config_defaults_are_the_c_defaults():
    c = hydralm.HydraConfig()
    assert (c.d_model, c.n_layers, c.n_heads, c.head_dim, c.vocab_size, c.swa_every, c.window) == \
        (768, 12, 12, 64, 256, 4, 512)
    assert c.pattern == "" and c.layer_kinds == "DDDSDDDSDDDS"
    # the JSON the library writes for Python's defaults equals the one for its own
    assert json.loads(c.to_json()) == json.loads(hydralm.HydraConfig.from_json("{}").to_json())


def test_config_json_roundtrip_and_pattern():
    c = small_config(swa_every=2, pattern="")
    assert c.layer_kinds == "DSD"
    c2 = hydralm.HydraConfig.from_json(c.to_json())
    assert c2 == c
    assert hydralm.HydraConfig.from_json({"d_model": 128, "pattern": "DDS"}).layer_kinds[:3] == "DDS"
    assert small_config().validate() is not None


def test_config_errors():
    with pytest.raises(ValueError, match="d_model"):
        hydralm.HydraConfig(d_model=-1).validate()
    with pytest.raises(ValueError):
        hydralm.HydraLM(small_config(pattern="DXS"))
    with pytest.raises(TypeError):
        hydralm.HydraConfig(d_model="wide").validate()
    with pytest.raises(TypeError):
        hydralm.HydraConfig(pattern=5).validate()
    with pytest.raises(ValueError):
        hydralm.HydraConfig(d_model=2**40).validate()
    with pytest.raises(ValueError):
        hydralm.HydraConfig.from_json("{not json")
    with pytest.raises(TypeError):
        hydralm.HydraConfig.from_json(5)
    with pytest.raises(TypeError):
        hydralm.HydraLM({"d_model": 64})
    with pytest.raises(ValueError):
        hydralm.HydraLM(small_config(), seed=-1)


# ------------------------------------------------------------------- model
def test_model_properties_and_repr(model):
    assert model.eval() is model and model.to("cpu") is model
    assert model.config.layer_kinds == "DSD" and model.vocab_size == 256
    assert model.n_params > 0 and model.weight_bytes >= 4 * model.n_params and model.state_bytes > 0
    assert not model.is_bf16 and "DSD" in repr(model)
    assert model.fingerprint == hydralm.HydraLM(small_config(), seed=7).fingerprint
    assert model.fingerprint != hydralm.HydraLM(small_config(), seed=8).fingerprint


def test_save_load_and_cli_checkpoints(tmp_path, model, model_file):
    assert hydralm.HydraLM.load(model_file).fingerprint == model.fingerprint
    b = hydralm.HydraLM.load(model_file, dtype="bf16")
    assert b.is_bf16 and b.fingerprint == model.fingerprint
    with pytest.raises(ValueError):
        b.save(tmp_path / "x.safetensors")  # bf16-only models cannot be saved
    q = hydralm.HydraLM.load(model_file, dtype="int8")  # quantised at load; saves its own format
    assert q.quant == "int8" and model.quant is None and q.fingerprint == model.fingerprint
    q.save(tmp_path / "q.safetensors")
    assert hydralm.HydraLM.load(tmp_path / "q.safetensors", dtype="int8").fingerprint == model.fingerprint
    with pytest.raises(hydralm.HydraError):
        hydralm.HydraLM.load(tmp_path / "q.safetensors")  # the f32 loader refuses it
    with pytest.raises(ValueError):
        q.to("cuda")  # quantised matrices have no GPU kernels
    # a checkpoint written by `hydra init` loads and equals the same seeded model
    cli_file = tmp_path / "cli.safetensors"
    hydra("init", "--d-model", 64, "--n-layers", 3, "--n-heads", 2, "--head-dim", 32, "--pattern", "DSD",
          "--window", 16, "--seed", 7, "--out", cli_file)
    assert hydralm.HydraLM.load(str(cli_file)).fingerprint == model.fingerprint
    assert b"DSD" in hydra("info", model_file)  # and the CLI reads Python's file


def test_load_errors(tmp_path):
    with pytest.raises(OSError, match="nonexistent"):
        hydralm.HydraLM.load(tmp_path / "nonexistent.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(OSError):
        hydralm.HydraLM.load(junk)
    with pytest.raises(TypeError):
        hydralm.HydraLM.load(None)
    with pytest.raises(ValueError):
        hydralm.HydraLM.load(junk, dtype="f16")
    with pytest.raises(OSError):  # the file is refused before any device is tried
        hydralm.HydraLM.load(junk, device="cuda:0")
    with pytest.raises(TypeError):
        hydralm.HydraLM(small_config(), device=3)


def test_device_pass_through():
    """device= reaches hydra_model_to_device: without a GPU (or a CUDA build)
    the library's own error comes back as a RuntimeError and the model stays
    on the CPU; with one, f32 logits on the GPU match the CPU's."""
    lib = hydralm._lib.lib
    if lib.hydra_cuda_device_count() == 0:
        with pytest.raises(RuntimeError, match="CUDA"):
            hydralm.HydraLM(small_config(), device="cuda")
        m = hydralm.HydraLM(small_config())
        with pytest.raises(RuntimeError, match="CUDA"):
            m.to("cuda:0")
        assert m.device == "cpu"
        with pytest.raises(ValueError):
            m.to("tpu")  # the library refuses an unknown name before looking for a GPU
        return
    cpu, gpu = hydralm.HydraLM(small_config(), seed=3), hydralm.HydraLM(small_config(), seed=3)
    gpu.to("cuda", precision="f32")
    assert gpu.device == "cuda:0"
    ids = list(range(40))
    a, b = cpu.forward(ids), gpu.forward(ids)
    num = sum((x - y) ** 2 for ra, rb in zip(a, b) for x, y in zip(ra, rb)) ** 0.5
    den = sum(x * x for ra in a for x in ra) ** 0.5
    assert num <= 1e-4 * den


# ----------------------------------------------------------------- forward
def test_forward_logits_bit_equal_to_a_c_program(tmp_path, model, model_file):
    ids = [int(x) for x in np.random.default_rng(0).integers(0, 256, 40)]
    exe = compile_c(tmp_path, FORWARD_C, "forward")
    run_c(exe, model_file, tmp_path / "lg.bin", 2, *ids)
    ref = np.fromfile(tmp_path / "lg.bin", dtype=np.float32).reshape(40, 256)
    run_c(exe, model_file, tmp_path / "last.bin", 1, *ids)
    last = np.fromfile(tmp_path / "last.bin", dtype=np.float32)
    got = model.forward(ids)
    assert got.dtype == np.float32 and got.shape == (40, 256)
    assert got.tobytes() == ref.tobytes()  # bit for bit
    assert model(np.array(ids)).tobytes() == ref.tobytes()
    assert model.forward(ids, last_only=True).tobytes() == last.tobytes()


def test_forward_kinds_batches_and_state(model):
    ids = list(range(10, 30))
    ref = model.forward(ids)
    t = model.forward(torch.tensor(ids))
    assert isinstance(t, torch.Tensor) and t.numpy().tobytes() == ref.tobytes()
    assert model.forward(bytes(ids)).tobytes() == ref.tobytes()
    batch = model.forward([ids, ids[::-1]])
    assert batch.shape == (2, 20, 256) and batch[0].tobytes() == ref.tobytes()
    # a State carries the context: two halves equal the whole (to fp32 chunking)
    st = model.new_state()
    model.forward(ids[:12], state=st)
    second = model.forward(ids[12:], state=st)
    assert st.position == 20 and st.nbytes > 0
    np.testing.assert_allclose(second, ref[12:], rtol=1e-4, atol=1e-5)
    st.reset()
    assert st.position == 0


def test_forward_errors(model):
    for bad, exc in [(None, TypeError), ([1.5, 2], TypeError), (np.array([1.0, 2.0]), TypeError),
                     (torch.tensor([0.5]), TypeError), ([True, 1], TypeError), ("x", None), ([], ValueError),
                     ([-1, 2], ValueError), ([1, 256], ValueError), ([2**40], ValueError),
                     (np.zeros((2, 2, 2), dtype=np.int32), ValueError), ([[1, 2], [3]], ValueError), (3.0, TypeError),
                     (np.array([2**33]), ValueError)]:
        if exc is None:
            model.forward(bad)
            continue
        with pytest.raises(exc):
            model.forward(bad)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.forward([1, 999])
    other = hydralm.HydraLM(small_config(), seed=1)
    with pytest.raises(ValueError, match="another model"):
        model.forward([1, 2], state=other.new_state())
    with pytest.raises(TypeError):
        model.forward([1, 2], state="state")
    with pytest.raises(ValueError, match="one sequence"):
        model.forward([[1, 2], [3, 4]], state=model.new_state())


# ---------------------------------------------------------------- generate
@pytest.mark.parametrize("opts", [("0", "0", "1"), ("0.8", "0", "0.95"), ("1.2", "20", "1")])
def test_generate_equals_hydra_generate(model, model_file, opts):
    temp, top_k, top_p = opts
    cli = hydra("generate", "--model", model_file, "--prompt", "ROMEO: ", "-n", 48, "--temperature", temp,
                "--top-k", top_k, "--top-p", top_p, "--seed", 11, "--threads", 1)
    py = model.generate(hydralm.encode("ROMEO: "), max_new_tokens=48, temperature=float(temp), top_k=int(top_k),
                        top_p=float(top_p), seed=11)
    assert cli == b"ROMEO: " + bytes(py) + b"\n"


def test_generate_options(model):
    p = hydralm.encode("Hello")
    a = model.generate(p, max_new_tokens=30, temperature=0.9, seed=3)
    assert len(a) == 30 and a == model.generate(p, max_new_tokens=30, temperature=0.9, seed=3)
    assert a != model.generate(p, max_new_tokens=30, temperature=0.9, seed=4)
    # stop tokens end generation after emitting one
    stop = a[10]
    b = model.generate(p, max_new_tokens=30, temperature=0.9, seed=3, stop_tokens=[stop])
    assert b == a[:a.index(stop) + 1]
    # the streaming callback sees every token; returning True stops
    seen = []
    c = model.generate(p, max_new_tokens=30, temperature=0.9, seed=3, on_token=lambda t: seen.append(t) or len(seen) == 5)
    assert seen == a[:5] and c == a[:5]
    # the iterator yields the same tokens; leaving early stops the C loop
    assert list(model.generate_iter(p, max_new_tokens=30, temperature=0.9, seed=3)) == a
    it = model.generate_iter(p, max_new_tokens=10**6, temperature=0.9, seed=3)
    assert [next(it) for _ in range(3)] == a[:3]
    it.close()
    # output kinds follow the input
    assert isinstance(model.generate(np.array(p), max_new_tokens=4), np.ndarray)
    t = model.generate(torch.tensor(p), max_new_tokens=4)
    assert isinstance(t, torch.Tensor) and t.tolist() == model.generate(p, max_new_tokens=4)
    # a State continues: prompt then more equals the whole
    st = model.new_state()
    first = model.generate(p, max_new_tokens=5, temperature=0, state=st)
    assert st.position == len(p) + 5
    whole = model.generate(p, max_new_tokens=5, temperature=0)
    assert first == whole


def test_generate_callback_exception_propagates(model):
    def boom(t):
        raise RuntimeError("from the callback")
    with pytest.raises(RuntimeError, match="from the callback"):
        model.generate([1, 2], max_new_tokens=5, on_token=boom)
    with pytest.raises(TypeError):
        model.generate([1, 2], on_token=5)
    with pytest.raises(ValueError, match="max_new_tokens"):  # errors reach the iterating thread
        for _ in model.generate_iter([1, 2], max_new_tokens=0):
            pass


def test_generate_errors(model):
    for kw, exc in [(dict(max_new_tokens=0), ValueError), (dict(max_new_tokens=-5), ValueError),
                    (dict(top_p=1.5), ValueError), (dict(top_p=0.0), ValueError), (dict(temperature=-1.0), ValueError),
                    (dict(top_k=-2), ValueError), (dict(seed=-1), ValueError), (dict(seed=2**64), ValueError),
                    (dict(stop_tokens=list(range(9))), ValueError), (dict(stop_tokens=[2**40]), ValueError),
                    (dict(temperature="hot"), TypeError), (dict(max_new_tokens=2.5), TypeError),
                    (dict(stop_tokens=[1.5]), TypeError)]:
        with pytest.raises(exc):
            model.generate([1, 2], **kw)
    for prompt, exc in [([], ValueError), (None, TypeError), ([-3], ValueError), ([256], ValueError),
                        (np.array([1.0]), TypeError), ({"a": 1}, TypeError)]:
        with pytest.raises(exc):
            model.generate(prompt, max_new_tokens=3)


def test_closed_model(model):
    model.close()
    model.close()  # twice is fine
    assert model.closed and repr(model) == "HydraLM(closed)"
    for call in (lambda: model.forward([1]), lambda: model.generate([1]), lambda: model.save("x"),
                 lambda: model.config, lambda: model.new_state(), lambda: hydralm.StreamingEngine(model)):
        with pytest.raises(ValueError, match="closed"):
            call()


def test_encode_decode():
    assert hydralm.encode("hé") == [104, 195, 169] and hydralm.decode([104, 195, 169]) == "hé"
    with pytest.raises(TypeError):
        hydralm.encode(5)
    assert hydralm.get_num_threads() >= 1 and "BLIS" in hydralm.blas_info()
