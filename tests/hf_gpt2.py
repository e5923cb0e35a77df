"""Hugging Face GPT-2 directories for tests/cli_import.sh, in numpy only.

Writes and reads safetensors by hand (8-byte little-endian header length,
JSON header, raw tensors), writes random GPT-2-shaped models in
GPT2LMHeadModel's layout (Conv1D weights [in, out]), and checks rlhf.c's
import and export against notebooks/gpt_numpy.py's forward. Subcommands:

  make DIR [--layers L --embd C --heads NH --vocab V --ctx T --seed S
            --prefix --buffers --lm-head --dtype f32|f16 --ids FILE N]
  hostile GOOD_DIR OUT CASE...           OUT_CASE: GOOD_DIR made hostile
  logits HF_DIR IDS LOGITS.bin TOL      C logits vs numpy forward
  export HF_DIR EXPORT_DIR              export(import(HF)) vs HF, bit for bit
  same-model A.h5 B.h5                  /model of two checkpoints, bit for bit
"""
import json
import math
import os
import shutil
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "notebooks"))
gpt_numpy = None  # imported when a forward is needed (it brings h5py)


def forward(m, ids):
    global gpt_numpy
    if gpt_numpy is None:
        import gpt_numpy as g
        gpt_numpy = g
    return gpt_numpy.forward(m, ids, dtype=np.float64)["logits"]

DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None, "I64": np.int64}
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
GPT2_VOCAB = 50257
CHAT_TOKENS = 3  # <|user|> <|assistant|> <|pad|>


# --- safetensors by hand ---------------------------------------------------------

def st_header(tensors, metadata=None):
    """(header dict, data bytes) for name -> array, in the given order."""
    header, chunks, at = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    names = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.int64): "I64"}
    for name, a in tensors.items():
        b = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": names[a.dtype], "shape": list(a.shape),
                        "data_offsets": [at, at + len(b)]}
        chunks.append(b)
        at += len(b)
    return header, b"".join(chunks)


def st_pack(header, data, pad=True):
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def st_write(path, tensors, metadata=None):
    header, data = st_header(tensors, metadata)
    with open(path, "wb") as f:
        f.write(st_pack(header, data))


def st_read(path):
    """(name -> array, metadata, names in file order)."""
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", None)
    data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[b:end], dtype=np.dtype(DTYPES[e["dtype"]]).newbyteorder("<")
                                  ).reshape(e["shape"])
    return out, meta, list(header)


# --- a random GPT-2 -----------------------------------------------------------------

def random_model(L, C, NH, V, T, seed, dtype):
    """name (unprefixed) -> array in Hugging Face's layout. Scales large enough
    that logits spread over several units."""
    rng = np.random.default_rng(seed)
    n = lambda *shape, s=0.02: (rng.standard_normal(shape) * s).astype(dtype)  # noqa: E731
    p = {"wte.weight": n(V, C, s=0.3), "wpe.weight": n(T, C, s=0.1)}
    # matrices scaled so that activations keep the same size at any width
    # (fan-in C = 64 is the reference), as GPT-2's own weights roughly do
    k = math.sqrt(64.0 / C)
    for i in range(L):
        h = "h.%d." % i
        p[h + "ln_1.weight"] = (1 + n(C, s=0.1)).astype(dtype)
        p[h + "ln_1.bias"] = n(C, s=0.05)
        p[h + "attn.c_attn.weight"] = n(C, 3 * C, s=0.15 * k)
        p[h + "attn.c_attn.bias"] = n(3 * C, s=0.05)
        p[h + "attn.c_proj.weight"] = n(C, C, s=0.1 * k)
        p[h + "attn.c_proj.bias"] = n(C, s=0.05)
        p[h + "ln_2.weight"] = (1 + n(C, s=0.1)).astype(dtype)
        p[h + "ln_2.bias"] = n(C, s=0.05)
        p[h + "mlp.c_fc.weight"] = n(C, 4 * C, s=0.1 * k)
        p[h + "mlp.c_fc.bias"] = n(4 * C, s=0.05)
        p[h + "mlp.c_proj.weight"] = n(4 * C, C, s=0.05 * k)
        p[h + "mlp.c_proj.bias"] = n(C, s=0.05)
    p["ln_f.weight"] = (1 + n(C, s=0.1)).astype(dtype)
    p["ln_f.bias"] = n(C, s=0.05)
    return p


def hf_config(L, C, NH, V, T):
    # as transformers writes it for GPT-2 (keys rlhf.c does not use included)
    return {"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"],
            "attn_pdrop": 0.1, "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256,
            "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "model_type": "gpt2",
            "n_ctx": T, "n_embd": C, "n_head": NH, "n_inner": None, "n_layer": L,
            "n_positions": T, "reorder_and_upcast_attn": False, "resid_pdrop": 0.1,
            "scale_attn_by_inverse_layer_idx": False, "scale_attn_weights": True,
            "summary_activation": None, "summary_first_dropout": 0.1, "summary_proj_to_labels": True,
            "summary_type": "cls_index", "summary_use_proj": True, "torch_dtype": "float32",
            "use_cache": True, "vocab_size": V}


def cmd_make(args):
    out = args[0]
    opt = {"--layers": 2, "--embd": 64, "--heads": 4, "--vocab": GPT2_VOCAB, "--ctx": 128,
           "--seed": 1}
    flags, dtype, ids = set(), np.float32, None
    i = 1
    while i < len(args):
        a = args[i]
        if a in opt:
            opt[a] = int(args[i + 1])
            i += 2
        elif a == "--dtype":
            dtype = {"f32": np.float32, "f16": np.float16}[args[i + 1]]
            i += 2
        elif a == "--ids":
            ids = (args[i + 1], int(args[i + 2]))
            i += 3
        else:
            flags.add(a)
            i += 1
    L, C, NH, V, T = (opt[k] for k in ("--layers", "--embd", "--heads", "--vocab", "--ctx"))
    p = random_model(L, C, NH, V, T, opt["--seed"], dtype)
    tensors = {}
    for name, a in p.items():
        tensors[("transformer." if "--prefix" in flags else "") + name] = a
        if "--buffers" in flags and name.endswith("ln_1.weight"):  # the causal mask buffers
            h = name[: -len("ln_1.weight")]
            tensors[h + "attn.bias"] = np.tril(np.ones((1, 1, T, T), dtype=dtype))
            tensors[h + "attn.masked_bias"] = np.array(-1e4, dtype=dtype)
    if "--lm-head" in flags:
        tensors["lm_head.weight"] = p["wte.weight"].copy()
    os.makedirs(out, exist_ok=True)
    st_write(os.path.join(out, "model.safetensors"), tensors, {"format": "pt"})
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(hf_config(L, C, NH, V, T), f, indent=2)
    if ids:  # random ids, GPT-2's own and the chat tokens, for the logits check
        rng = np.random.default_rng(opt["--seed"] + 1000)
        x = rng.integers(0, V, size=ids[1])
        x[: 4] = [50256, 50257, 50258, 50259][: min(4, ids[1])]
        rng.shuffle(x)
        with open(ids[0], "w") as f:
            f.write(" ".join(map(str, x)) + "\n")


# --- the numpy forward on Hugging Face tensors --------------------------------------

def is_buffer(short):
    """h.N.attn.bias / h.N.attn.masked_bias: causal-mask buffers, not weights."""
    return short.split(".")[-2:] in (["attn", "bias"], ["attn", "masked_bias"])


def mean_rows(wte, rows):
    """rlhf.c's rule for the chat tokens' embeddings: each column summed in
    double in row order (cumsum is sequential), divided by the row count,
    rounded to float32."""
    s = np.cumsum(wte.astype(np.float64), axis=0)[-1]
    return (s / wte.shape[0]).astype(np.float32)[None, :].repeat(rows, axis=0)


class HfModel:
    """gpt_numpy's checkpoint interface over Hugging Face tensors: its own
    reading of the layout (Conv1D transposed, prefix dropped, buffers and
    lm_head skipped), with the chat tokens' rows appended to wte."""

    def __init__(self, directory, extend_to=None):
        tensors, self.meta, _ = st_read(os.path.join(directory, "model.safetensors"))
        cfg = json.load(open(os.path.join(directory, "config.json")))
        self.shape = {"n_layer": cfg["n_layer"], "n_head": cfg["n_head"],
                      "n_embd": cfg["n_embd"], "block_size": cfg["n_positions"],
                      "vocab_size": cfg["vocab_size"]}
        self.hf = {}
        for name, a in tensors.items():
            short = name[len("transformer."):] if name.startswith("transformer.") else name
            self.hf[short] = a.astype(np.float32)
        self.params = {}
        for short, a in self.hf.items():
            if is_buffer(short) or short == "lm_head.weight":
                continue
            self.params["transformer." + short] = a.T if short.endswith(CONV1D) else a
        wte = self.params["transformer.wte.weight"]
        if extend_to and extend_to > wte.shape[0]:
            self.params["transformer.wte.weight"] = np.concatenate(
                [wte, mean_rows(wte, extend_to - wte.shape[0])])
        self._cast = {}

    def cast(self, dtype):
        key = np.dtype(dtype).name
        if key not in self._cast:
            self._cast[key] = {k: v.astype(dtype) for k, v in self.params.items()}
        return self._cast[key]


def read_ids(path):
    return [int(x) for x in open(path).read().split()]


def cmd_logits(args):
    hf_dir, ids_path, logits_path, tol = args[0], args[1], args[2], float(args[3])
    ids = read_ids(ids_path)
    V = GPT2_VOCAB + CHAT_TOKENS
    m = HfModel(hf_dir, extend_to=V)
    want = forward(m, ids)
    got = np.fromfile(logits_path, dtype="<f4").reshape(len(ids), -1).astype(np.float64)
    if got.shape != want.shape:
        sys.exit("logits shape %s, numpy %s" % (got.shape, want.shape))
    err = np.abs(got - want).max()
    scale = np.abs(want).max()
    print("logits (T=%d, V=%d): max |C - numpy float64| = %.3g, max |logit| = %.3g, "
          "tolerance %.3g" % (len(ids), V, err, scale, tol))
    if not err <= tol:
        sys.exit("logits differ by %.3g > %.3g" % (err, tol))


def cmd_export(args):
    hf_dir, ex_dir = args
    src = HfModel(hf_dir)
    V0 = src.hf["wte.weight"].shape[0]
    tensors, meta, order = st_read(os.path.join(ex_dir, "model.safetensors"))
    bad = []
    if meta != {"format": "pt"}:
        bad.append("metadata %r" % (meta,))
    want_names = {"transformer." + k for k in src.hf if not is_buffer(k) and k != "lm_head.weight"}
    if set(order) != want_names:
        bad.append("names differ: %s" % sorted(set(order) ^ want_names)[:6])
    for name in sorted(want_names & set(order)):
        a, b = tensors[name], src.hf[name[len("transformer."):]]
        if a.dtype != np.float32:
            bad.append("%s dtype %s" % (name, a.dtype))
            continue
        if name == "transformer.wte.weight":
            if a.shape != (V0 + CHAT_TOKENS, b.shape[1]):
                bad.append("wte shape %s" % (a.shape,))
                continue
            if not np.array_equal(a[V0:].view(np.uint32), mean_rows(b, CHAT_TOKENS).view(np.uint32)):
                bad.append("chat rows of wte are not the mean rows")
            a = a[:V0]
        if a.shape != b.shape or not np.array_equal(a.view(np.uint32), b.view(np.uint32)):
            bad.append("%s differs (shape %s vs %s)" % (name, a.shape, b.shape))
    cfg = json.load(open(os.path.join(ex_dir, "config.json")))
    expect = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
              "vocab_size": V0 + CHAT_TOKENS, "n_positions": src.shape["block_size"],
              "n_embd": src.shape["n_embd"], "n_layer": src.shape["n_layer"],
              "n_head": src.shape["n_head"], "activation_function": "gelu_new",
              "layer_norm_epsilon": 1e-5, "tie_word_embeddings": True}
    for k, v in expect.items():
        if cfg.get(k) != v:
            bad.append("config.json %s = %r, expected %r" % (k, cfg.get(k), v))
    for f in ("vocab.json", "merges.txt"):
        if not os.path.exists(os.path.join(ex_dir, f)):
            bad.append("no " + f)
    if os.path.exists(os.path.join(ex_dir, "vocab.json")):
        vocab = json.load(open(os.path.join(ex_dir, "vocab.json")))
        if len(vocab) != V0 + CHAT_TOKENS or vocab.get("<|endoftext|>") != 50256:
            bad.append("vocab.json: %d entries, <|endoftext|> = %r" % (len(vocab), vocab.get("<|endoftext|>")))
    # the export runs in the numpy forward with the same logits, bit for bit
    ids = list(range(0, min(src.shape["block_size"], 16)))
    a = forward(HfModel(ex_dir), ids)
    b = forward(HfModel(hf_dir, extend_to=V0 + CHAT_TOKENS), ids)
    if not np.array_equal(a, b):
        bad.append("numpy logits of the export differ by %.3g" % np.abs(a - b).max())
    if bad:
        sys.exit("export: " + "; ".join(bad))
    print("export: %d tensors bit-identical to the originals (wte's %d rows + %d mean rows), "
          "config.json as expected, numpy logits identical" % (len(order), V0, CHAT_TOKENS))


def cmd_same_model(args):
    import h5py
    a, b = (h5py.File(p, "r") for p in args)
    bad = []
    if set(a["model"]) != set(b["model"]):
        bad.append("names differ")
    for name in sorted(set(a["model"]) & set(b["model"])):
        x, y = a["model"][name][...], b["model"][name][...]
        if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
            bad.append(name)
    if dict(a["model"].attrs) != dict(b["model"].attrs):
        bad.append("/model attrs")
    if bad:
        sys.exit("models differ: " + ", ".join(bad[:6]))
    print("/model: %d datasets bit-identical" % len(a["model"]))


# --- hostile files ----------------------------------------------------------------

def cmd_hostile(args):
    for case in args[2:]:
        hostile(args[0], args[1] + "_" + case, case)


def hostile(good, out, case):
    if os.path.exists(out):
        shutil.rmtree(out)
    shutil.copytree(good, out)
    st = os.path.join(out, "model.safetensors")
    cfg_path = os.path.join(out, "config.json")
    raw = open(st, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    names = [k for k in header if k != "__metadata__"]
    cfg = json.load(open(cfg_path))

    def put(h=header, d=data, pad=True):
        open(st, "wb").write(st_pack(h, d, pad))

    def first(suffix):
        return next(k for k in names if k.endswith(suffix))

    if case == "header_past_end":
        open(st, "wb").write(struct.pack("<Q", len(raw)) + raw[8:])
    elif case == "huge_header":
        open(st, "wb").write(struct.pack("<Q", 1 << 62) + raw[8:])
    elif case == "not_json":
        open(st, "wb").write(struct.pack("<Q", 16) + b"<html>not json!!" + data)
    elif case == "truncated":
        open(st, "wb").write(raw[: len(raw) - 100])
    elif case == "out_of_range":
        k = first("ln_f.bias")
        b, e = header[k]["data_offsets"]
        header[k]["data_offsets"] = [len(data) + 64 - (e - b), len(data) + 64]
        put()
    elif case == "overlap":
        k1, k2 = first("ln_f.weight"), first("ln_f.bias")
        header[k2]["data_offsets"] = list(header[k1]["data_offsets"])
        put()
    elif case == "size_mismatch":
        k = first("ln_f.bias")
        header[k]["shape"] = [header[k]["shape"][0] + 1]
        put()
    elif case == "wrong_dtype":  # ln_f.bias as I32 (same byte count): listed, not readable
        k = first("ln_f.bias")
        header[k]["dtype"] = "I32"
        put()
    elif case == "unknown_dtype":
        header[first("ln_f.bias")]["dtype"] = "Q4"
        put()
    elif case == "missing_tensor":
        k = first("ln_f.bias")
        tensors, _, _ = st_read(st)
        del tensors[k]
        st_write(st, tensors, {"format": "pt"})
    elif case == "wrong_shape":  # consistent file, shape not GPT-2's for this config
        tensors, _, _ = st_read(st)
        k = first("h.0.attn.c_attn.weight")
        tensors[k] = np.ascontiguousarray(tensors[k].T)
        st_write(st, tensors, {"format": "pt"})
    elif case == "extra_tensor":
        tensors, _, _ = st_read(st)
        tensors["score.weight"] = np.zeros((2, 4), np.float32)
        st_write(st, tensors, {"format": "pt"})
    elif case == "untied_head":
        tensors, _, _ = st_read(st)
        wte = tensors[first("wte.weight")].copy()
        wte[7, 3] += 1
        tensors["lm_head.weight"] = wte
        st_write(st, tensors, {"format": "pt"})
    elif case == "nan":
        tensors, _, _ = st_read(st)
        k = first("h.0.mlp.c_fc.bias")
        tensors[k] = tensors[k].copy()
        tensors[k][5] = np.nan
        st_write(st, tensors, {"format": "pt"})
    elif case == "duplicate":  # a name both with and without the prefix
        tensors, _, _ = st_read(st)
        k = first("ln_f.bias")
        other = k[len("transformer."):] if k.startswith("transformer.") else "transformer." + k
        tensors[other] = tensors[k].copy()
        st_write(st, tensors, {"format": "pt"})
    elif case == "config_missing":
        os.remove(cfg_path)
    elif case == "config_garbage":
        open(cfg_path, "w").write("{not json")
    elif case.startswith("config_"):
        key, value = {"config_eps": ("layer_norm_epsilon", 1e-6),
                      "config_act": ("activation_function", "relu"),
                      "config_inner": ("n_inner", 100),
                      "config_vocab": ("vocab_size", 1000),
                      "config_type": ("model_type", "llama"),
                      "config_untied": ("tie_word_embeddings", False),
                      "config_heads": ("n_head", 3),
                      "config_huge": ("n_layer", 4096)}[case]
        cfg[key] = value
        if case == "config_huge":
            cfg["n_embd"] = 1 << 16
        json.dump(cfg, open(cfg_path, "w"))
    elif case == "no_weights":
        os.remove(st)
    else:
        sys.exit("unknown case " + case)


if __name__ == "__main__":
    cmds = {"make": cmd_make, "hostile": cmd_hostile, "logits": cmd_logits,
            "export": cmd_export, "same-model": cmd_same_model}
    cmds[sys.argv[1]](sys.argv[2:])
