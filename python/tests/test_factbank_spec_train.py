"""FactBank (CLI-written banks mount from Python), speculative decoding, and
training (progress callback, exact resume, errors)."""
import pytest

import hydralm
from conftest import DATA, hydra, small_config

FACTS = "Alice lives in Paris. Bob lives in Rome. The code is 4711.\n"


def test_factbank_written_by_cli_mounts_from_python(tmp_path, model, model_file):
    (tmp_path / "facts.txt").write_text(FACTS)
    hydra("factbank", "write", "--model", model_file, "--facts", tmp_path / "facts.txt", "--out",
          tmp_path / "cli.bank", "--quiet", "--threads", 1)
    info = hydralm.FactBank.info(tmp_path / "cli.bank")
    assert info["tokens"] == len(FACTS) and info["schedule"] == "DSD" and info["fingerprint"] == model.fingerprint
    bank = hydralm.FactBank.load(model, tmp_path / "cli.bank")
    assert bank.tokens == len(FACTS) and bank.nbytes == model.state_bytes
    # mounting (restore) continues exactly as if the facts had just been read
    q = hydralm.encode("Where does Bob live?")
    state = bank.mount(model)
    assert state.position == len(FACTS)
    got = model.generate(q, max_new_tokens=20, temperature=0, state=state)
    assert got == model.generate(hydralm.encode(FACTS) + q, max_new_tokens=20, temperature=0)
    # into an engine, and a bank written from Python equals the CLI's
    e = hydralm.StreamingEngine(model)
    bank.mount(e)
    assert e.extend_and_generate(prompt=q, max_new=20, temperature=0).tokens == got
    mine = hydralm.FactBank(model)
    assert mine.write(FACTS[:20]) == 20 and mine.write(FACTS[20:]) == len(FACTS) - 20
    mine.save(tmp_path / "py.bank")
    assert (tmp_path / "py.bank").read_bytes() == (tmp_path / "cli.bank").read_bytes()
    for mode in ("replace", "add"):
        st = model.new_state()
        model.forward([1, 2, 3], state=st)
        mine.mount(st, mode=mode)
        assert st.position == 3  # the live context is kept
    mine.reset()
    assert mine.tokens == 0


def test_factbank_errors(tmp_path, model):
    b = hydralm.FactBank(model)
    b.write("facts")
    b.save(tmp_path / "b.bank")
    other = hydralm.HydraLM(small_config(), seed=123)
    with pytest.raises(ValueError):
        hydralm.FactBank.load(other, tmp_path / "b.bank")  # another model's bank
    with pytest.raises(ValueError):
        b.mount(other.new_state())
    with pytest.raises(ValueError, match="mode"):
        b.mount(model, mode="merge")
    with pytest.raises(TypeError):
        b.mount("state")
    with pytest.raises(OSError):
        hydralm.FactBank.load(model, tmp_path / "missing.bank")
    data = bytearray((tmp_path / "b.bank").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "flip.bank").write_bytes(bytes(data))
    with pytest.raises(OSError):
        hydralm.FactBank.load(model, tmp_path / "flip.bank")  # checksum
    with pytest.raises(OSError):
        hydralm.FactBank.info(tmp_path / "flip.bank")
    with pytest.raises(ValueError):
        b.write([300])
    with pytest.raises(TypeError):
        hydralm.FactBank(None)
    with pytest.raises(ValueError):  # full attention layers: the bank would grow
        hydralm.FactBank(hydralm.HydraLM(small_config(pattern="DAD")))


def test_speculative_generate(model):
    draft = hydralm.HydraLM(small_config(d_model=32, n_layers=2, pattern="DS", head_dim=16), seed=3)
    p = hydralm.encode("ROMEO: ")
    r = hydralm.speculative_generate(model, draft, p, k=3, max_new_tokens=40, temperature=0)
    assert r.tokens == model.generate(p, max_new_tokens=40, temperature=0)  # greedy: the target's tokens
    assert r.stats["generated"] == 40 and r.stats["rounds"] >= 1 and 0 <= r.stats["acceptance_rate"] <= 1
    s = hydralm.speculative_generate(model, draft, p, k=4, max_new_tokens=30, temperature=0.8, seed=1,
                                     min_draft_prob=0.2)
    assert len(s.tokens) == 30
    seen = []
    hydralm.speculative_generate(model, draft, p, max_new_tokens=10, on_token=lambda t: seen.append(t) or len(seen) == 3)
    assert len(seen) == 3
    with pytest.raises(ValueError):
        hydralm.speculative_generate(model, draft, p, k=0)
    with pytest.raises(ValueError):
        hydralm.speculative_generate(model, draft, p, k=99)
    with pytest.raises(ValueError):
        hydralm.speculative_generate(model, hydralm.HydraLM(small_config(vocab_size=64)), [1], max_new_tokens=3)
    with pytest.raises(TypeError):
        hydralm.speculative_generate(model, None, p)
    with pytest.raises(ValueError):
        hydralm.speculative_generate(model, draft, [])


def test_trainer_progress_and_loss(model):
    seen = []
    t = hydralm.Trainer(model, DATA, batch=8, seq=32, steps=30, lr=1e-2, warmup_steps=3)
    before = t.evaluate(4)
    last = t.train(30, progress=seen.append, eval_every=10)
    assert [s.step for s in seen] == list(range(1, 31)) and last.step == 30 == t.steps_done
    assert [s.val_loss is not None for s in seen].count(True) == 3
    assert all(s.tokens == 8 * 32 and s.seconds > 0 and s.grad_norm > 0 for s in seen)
    assert t.evaluate(4) < before - 0.5  # learned the byte statistics at least
    assert isinstance(t.step(), hydralm.StepInfo) and t.steps_done == 31


def test_trainer_resume_is_exact(tmp_path):
    def fresh():
        return hydralm.HydraLM(small_config(), seed=5)
    opts = dict(batch=4, seq=32, steps=8, optimizer="muon", lr=3e-3, seed=1)
    straight = fresh()
    hydralm.Trainer(straight, DATA, **opts).train(8)
    half = hydralm.Trainer(fresh(), DATA, **opts)
    half.train(4)
    half.save(tmp_path / "ck")
    resumed = hydralm.Trainer.resume(tmp_path / "ck", DATA)
    assert resumed.steps_done == 4
    resumed.train(4)
    assert resumed.model.fingerprint == straight.fingerprint  # bit for bit
    # the checkpoint is the CLI's layout: `hydra info` reads the model
    assert b"DSD" in hydra("info", tmp_path / "ck" / "model.safetensors")


def test_train_function_and_data_kinds():
    m = hydralm.HydraLM(small_config(), seed=2)
    text = open(DATA, encoding="utf-8").read()[:50000]
    t = hydralm.train(m, text.encode(), steps=3, batch=2, seq=16)
    assert t.steps_done == 3 and t.data.size("train") + t.data.size("val") == len(text.encode())
    assert hydralm.TextData(text).size("val") > 0  # a str holding text (not a path)


def test_trainer_errors(tmp_path, model):
    with pytest.raises(OSError):
        hydralm.Trainer(model, str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="optimizer"):
        hydralm.Trainer(model, DATA, optimizer="sgd")
    with pytest.raises(ValueError):
        hydralm.Trainer(model, DATA, lr=-1.0)
    with pytest.raises(TypeError):
        hydralm.Trainer(model, DATA, momentum=0.9)
    with pytest.raises(ValueError):
        hydralm.Trainer(model, DATA, batch=0)
    with pytest.raises(ValueError):
        hydralm.Trainer(model, DATA, batch=-1)
    with pytest.raises(ValueError, match="decay"):
        hydralm.Trainer(model, DATA, decay="exp")
    with pytest.raises(TypeError):
        hydralm.Trainer(None, DATA)
    with pytest.raises(OSError):
        hydralm.Trainer.resume(tmp_path / "nothing", DATA)
    t = hydralm.Trainer(model, DATA, batch=2, seq=16)
    with pytest.raises(ValueError):
        t.train(-1)
    with pytest.raises(TypeError):
        t.train(2, progress=3)
    with pytest.raises(RuntimeError, match="stop here"):
        t.train(5, progress=lambda s: (_ for _ in ()).throw(RuntimeError("stop here")))
    assert t.steps_done == 1  # the callback's error ended the loop after step 1
