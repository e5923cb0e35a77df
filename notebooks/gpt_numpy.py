"""Reads rlhf.c checkpoints with h5py and runs the GPT in plain numpy.

An independent reading of the checkpoint layout in docs/DESIGN.md (shared by
the notebooks): parameters, tokenizer, metrics, rollout dumps, and a forward
pass written from the layout alone. Slow and simple on purpose; it trains
nothing and is not used by the C code.
"""
import json
import math
import os

import h5py
import numpy as np

LN_EPS = 1e-5  # LayerNorm epsilon of every norm in the model


# --- checkpoint ----------------------------------------------------------------

class Checkpoint:
    """Everything a notebook reads from one checkpoint file.

    attrs: root attributes (stage, step, parent, created, ...)
    config: the resolved config (dict from the JSON attribute)
    shape: n_layer, n_head, n_embd, block_size, vocab_size
    params: name -> float32 array, names as in /model (plus value.weight and
            value.bias when the file has /heads)
    tokenizer: a Tokenizer, metrics: name -> float64 array (empty if none)
    """

    def __init__(self, path, group=""):
        self.path = path
        self._cast = {}
        with h5py.File(path, "r") as f:
            self.attrs = {k: _plain(v) for k, v in f.attrs.items()}
            self.config = json.loads(self.attrs.get("config", "{}") or "{}")
            base = f[group] if group else f
            self.params = {}
            self.shape = {}
            if "model" in base:
                self.shape = {k: int(v) for k, v in base["model"].attrs.items()}
                for name, d in base["model"].items():
                    self.params[name] = d[...].astype(np.float32)
            if "heads" in base:
                for name, d in base["heads"].items():
                    self.params[name] = d[...].astype(np.float32)
            self.tokenizer = Tokenizer(f["tokenizer"]) if "tokenizer" in f else None
            self.metrics = read_metrics_group(f["metrics"]) if "metrics" in f else {}

    def cast(self, dtype):
        """The parameters converted to dtype (cached: forward runs often)."""
        key = np.dtype(dtype).name
        if key not in self._cast:
            self._cast[key] = {k: v.astype(dtype) for k, v in self.params.items()}
        return self._cast[key]

    @property
    def stage(self):
        return self.attrs.get("stage", "")

    @property
    def parent(self):
        """(path, sha256) of the parent checkpoint, or None."""
        p = self.attrs.get("parent", "")
        if not p:
            return None
        path, _, sha = p.rpartition(" sha256:")
        return (resolve(path), sha) if path else (resolve(p), "")

    def param_table(self):
        """Rows (name, shape, size, mean, std, max|x|), in file order."""
        rows = []
        for name, x in self.params.items():
            x64 = x.astype(np.float64)
            rows.append((name, tuple(x.shape), x.size, x64.mean(), x64.std(), np.abs(x64).max()))
        return rows


def _plain(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    return v


def read_metrics_group(g, prefix=""):
    """name -> float64 array; all columns have one row per logged step. A
    column with '/' in its name ("rewards/chosen", as `rlhf dpo` logs) is a
    dataset in a subgroup; it comes back under its full name."""
    out = {}
    for name, obj in g.items():
        if isinstance(obj, h5py.Group):
            out.update(read_metrics_group(obj, prefix + name + "/"))
        else:
            out[prefix + name] = np.asarray(obj[...], dtype=np.float64)
    return out


def read_metrics(path):
    """The /metrics table of a checkpoint file."""
    with h5py.File(path, "r") as f:
        return read_metrics_group(f["metrics"]) if "metrics" in f else {}


def curve(metrics, name):
    """(steps, values) of one column, rows where it is NaN skipped."""
    step, y = metrics["step"], metrics[name]
    keep = ~np.isnan(y)
    return step[keep], y[keep]


# --- tokenizer -----------------------------------------------------------------

def _byte_class(c):
    if c in b" \t\n\r\v\f":
        return 0  # space
    if 97 <= c <= 122 or 65 <= c <= 90 or c >= 0x80:
        return 1  # letter (UTF-8 bytes stay with letters)
    if 48 <= c <= 57:
        return 2  # digit
    return 3      # other


CHUNK_MAX = 256  # longest pre-tokenizer chunk (longer runs are cut)


def pretokenize(data):
    """Cuts bytes into the chunks BPE merges within: an optional single space
    plus a run of one class (letters, digits, other); whitespace runs are
    chunks of their own but leave their last space to the word after them."""
    n, i, out = len(data), 0, []
    while i < n:
        lim = i + CHUNK_MAX + 1 if n - i > CHUNK_MAX else n
        cls = _byte_class(data[i])
        j = i
        if data[i] == 32 and i + 1 < n and _byte_class(data[i + 1]) != 0:
            j = i + 1
            cls = _byte_class(data[j])
            while j < lim and _byte_class(data[j]) == cls:
                j += 1
        elif cls == 0:
            while j < lim and _byte_class(data[j]) == 0:
                j += 1
            if j < n and _byte_class(data[j]) != 0 and j - i > 1 and data[j - 1] == 32:
                j -= 1
        else:
            while j < lim and _byte_class(data[j]) == cls:
                j += 1
        if j - i > CHUNK_MAX:
            j = i + CHUNK_MAX
            for _ in range(3):  # back onto the lead byte of a UTF-8 character
                if j > i + 1 and (data[j] & 0xC0) == 0x80:
                    j -= 1
        out.append(data[i:j])
        i = j
    return out


class Tokenizer:
    """The /tokenizer group: vocabulary bytes, BPE merges and special ids.

    char: one token per byte value in the vocabulary. bpe: ids 0..255 are the
    bytes, merge r joins (merges[r,0], merges[r,1]) into id 256 + r.
    """

    def __init__(self, g):
        self.type = _plain(g.attrs["type"])
        self.vocab_size = int(g.attrs["vocab_size"])
        self.eot = int(g.attrs["eot"])
        self.user = int(g.attrs["user"])
        self.assistant = int(g.attrs["assistant"])
        self.pad = int(g.attrs["pad"])
        raw = g["vocab_bytes"][...].tobytes()
        off = g["vocab_offsets"][...]
        self.vocab = [raw[off[i]:off[i + 1]] for i in range(self.vocab_size)]
        self.merges = g["merges"][...].reshape(-1, 2) if "merges" in g else np.zeros((0, 2), int)
        self.specials = {self.eot, self.user, self.assistant, self.pad}
        self.rank = {(int(a), int(b)): r for r, (a, b) in enumerate(self.merges)}
        self.byte_to_id = {}
        if self.type == "char":
            for i, b in enumerate(self.vocab):
                if i not in self.specials and len(b) == 1:
                    self.byte_to_id[b[0]] = i

    def encode(self, text):
        """Plain text -> ids (never a special token)."""
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        if self.type == "char":
            missing = [c for c in set(data) if c not in self.byte_to_id]
            if missing:
                raise ValueError("bytes %r are not in the char vocabulary" % bytes(missing))
            return [self.byte_to_id[c] for c in data]
        ids = []
        for chunk in pretokenize(data):
            ids.extend(self._bpe_chunk(list(chunk)))
        return ids

    def _bpe_chunk(self, ids):
        # join every occurrence of the lowest-rank pair, left to right, until
        # no pair of neighbours has a merge
        while len(ids) > 1:
            ranks = [self.rank.get((ids[i], ids[i + 1]), math.inf) for i in range(len(ids) - 1)]
            best = min(ranks)
            if best == math.inf:
                break
            out, i = [], 0
            while i < len(ids):
                if i + 1 < len(ids) and ranks[i] == best:
                    out.append(256 + best)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            ids = out
        return ids

    def encode_prompt(self, prompt):
        """The chat template's prefix a model answers: <|user|> prompt <|assistant|>."""
        return [self.user] + self.encode(prompt) + [self.assistant]

    def decode(self, ids, with_specials=False):
        parts = []
        for i in ids:
            i = int(i)
            if i in self.specials and not with_specials:
                continue
            parts.append(self.vocab[i])
        return b"".join(parts).decode("utf-8", errors="replace")


# --- the model -----------------------------------------------------------------

def layernorm(x, w, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + LN_EPS) * w + b


def gelu(x):
    # tanh approximation
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def forward(ck, ids, dtype=np.float64, attention=False):
    """Runs the model over one sequence of token ids (len <= block_size).

    Returns a dict: logits (T, V), hidden (T, C) after ln_f, value (T,) when
    the model has a value head, and att (L, NH, T, T) softmax probabilities
    when attention=True. All arithmetic in `dtype`.
    """
    p = ck.cast(dtype)
    L, NH = ck.shape["n_layer"], ck.shape["n_head"]
    ids = np.asarray(ids, dtype=np.int64)
    T = len(ids)
    assert 0 < T <= ck.shape["block_size"], "sequence longer than the context"
    C = p["transformer.wte.weight"].shape[1]
    hs = C // NH
    x = p["transformer.wte.weight"][ids] + p["transformer.wpe.weight"][:T]
    causal = np.tril(np.ones((T, T), dtype=bool))
    atts = []
    for i in range(L):
        h = lambda n: p["transformer.h.%d.%s" % (i, n)]  # noqa: E731
        a = layernorm(x, h("ln_1.weight"), h("ln_1.bias"))
        qkv = a @ h("attn.c_attn.weight").T + h("attn.c_attn.bias")  # (T, 3C)
        q, k, v = (qkv[:, j * C:(j + 1) * C].reshape(T, NH, hs).transpose(1, 0, 2)
                   for j in range(3))  # (NH, T, hs)
        s = q @ k.transpose(0, 2, 1) / dtype(math.sqrt(hs))  # (NH, T, T)
        s = np.where(causal, s, -np.inf)
        s = np.exp(s - s.max(-1, keepdims=True))
        att = s / s.sum(-1, keepdims=True)
        atts.append(att)
        y = (att @ v).transpose(1, 0, 2).reshape(T, C)
        x = x + y @ h("attn.c_proj.weight").T + h("attn.c_proj.bias")
        a = layernorm(x, h("ln_2.weight"), h("ln_2.bias"))
        f = gelu(a @ h("mlp.c_fc.weight").T + h("mlp.c_fc.bias"))
        x = x + f @ h("mlp.c_proj.weight").T + h("mlp.c_proj.bias")
    hidden = layernorm(x, p["transformer.ln_f.weight"], p["transformer.ln_f.bias"])
    out = {"logits": hidden @ p["transformer.wte.weight"].T, "hidden": hidden}
    if "value.weight" in p:
        out["value"] = hidden @ p["value.weight"] + p["value.bias"][0]
    if attention:
        out["att"] = np.stack(atts)
    return out


def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def greedy(ck, ids, max_new, stop=None):
    """Greedy continuation of ids (full forward per token; fine for short
    answers). Stops after `stop` (default: end-of-text) or at the context's
    end; returns the new ids, the stop token included."""
    stop = ck.tokenizer.eot if stop is None else stop
    ids, new = list(ids), []
    for _ in range(max_new):
        if len(ids) >= ck.shape["block_size"]:
            break
        nxt = int(np.argmax(forward(ck, ids)["logits"][-1]))
        ids.append(nxt)
        new.append(nxt)
        if nxt == stop:
            break
    return new


# --- files the C tools write ---------------------------------------------------

def read_logits_file(path):
    """`rlhf sample --logits FILE`: section title -> float64 array (the '#'
    lines title the sections; the first line only describes the file)."""
    sections, name = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("#"):
                name = line[1:].strip()
                sections[name] = []
            elif line:
                sections[name].append(float(line))
    return {k: np.array(v) for k, v in sections.items() if v}


def read_rollouts(path):
    """A rollout dump (`rlhf ppo --ppo.dump_rollouts=FILE`): a list of
    (step, dict of arrays), one per batch, in step order."""
    out = []
    with h5py.File(path, "r") as f:
        for name in sorted(f):
            g = f[name]
            step = int(g.attrs["step"]) if "step" in g.attrs else int(name.split("_")[-1])
            out.append((step, {k: d[...] for k, d in g.items()}))
    return out


# --- where things are ----------------------------------------------------------

def repo_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def env_path(name, default=None):
    """A path from the environment variable `name` (a relative one is taken
    from the repository root: the kernel runs in notebooks/), else default."""
    p = os.environ.get(name)
    if not p:
        return default
    return p if os.path.isabs(p) else os.path.join(repo_root(), p)


def ckpt_dir():
    """$RLHF_CKPT_DIR, else checkpoints/demo when it exists, else checkpoints/tiny."""
    d = env_path("RLHF_CKPT_DIR")
    if d:
        return d
    demo = os.path.join(repo_root(), "checkpoints", "demo")
    return demo if os.path.isdir(demo) else os.path.join(repo_root(), "checkpoints", "tiny")


def stage_path(base, *stages):
    """base/STAGE/latest.h5 of the first stage whose file exists (else of the first)."""
    paths = [os.path.join(base, s, "latest.h5") for s in stages]
    return next((p for p in paths if os.path.exists(p)), paths[0])


def rlhf_bin():
    """$RLHF_BIN (relative to the repository root if not absolute), else
    build/default/rlhf, else ./rlhf."""
    b = env_path("RLHF_BIN")
    if b:
        return b
    for c in ("build/default/rlhf", "rlhf"):
        p = os.path.join(repo_root(), c)
        if os.path.exists(p):
            return p
    return "rlhf"


def resolve(path):
    """A path stored in a checkpoint (config values, parent) as given on the
    rlhf command line: a relative one is tried from the repository root, then
    from the current directory. Empty stays empty."""
    if not path or os.path.isabs(path):
        return path
    for base in (repo_root(), os.getcwd()):
        p = os.path.join(base, path)
        if os.path.exists(p):
            return p
    return os.path.join(repo_root(), path)
