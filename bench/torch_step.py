#!/usr/bin/env python3
"""PyTorch's time for the training step bench_train measures, on the same
machine and in the same run, for a ratio that does not cross machines or
days: a GPT of the same shape (pre-LayerNorm blocks, causal self-attention,
GELU MLP, tied lm_head, no dropout), random tokens, forward + cross-entropy
+ backward + gradient clipping + AdamW, fp32 or under bf16 autocast.

  /usr/bin/python3 bench/torch_step.py [--config tiny|small] [--steps N]
                                       [--precision fp32|bf16]

Needs Debian's python3-torch (not a dependency of the project). Threads:
torch.set_num_threads(nproc), as bench_train uses every core.
"""
import argparse
import math
import os
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SHAPES = {  # V, L, H, C, T, B: bench_train's shapes
    "tiny": (65, 4, 4, 128, 64, 12),
    "small": (65, 6, 6, 384, 256, 16),
}


class Block(nn.Module):
    def __init__(self, C, H, T):
        super().__init__()
        self.H = H
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.fc, self.out = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        self.register_buffer("mask", torch.ones(T, T, dtype=torch.bool).tril())

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.H)
        att = att.masked_fill(~self.mask[:T, :T], float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.proj(y)
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, V, L, H, C, T):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
        self.blocks = nn.ModuleList(Block(C, H, T) for _ in range(L))
        self.ln_f = nn.LayerNorm(C)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for b in self.blocks:
            x = b(x)
        logits = self.ln_f(x) @ self.wte.weight.t()  # tied head
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="small", choices=sorted(SHAPES))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    a = ap.parse_args()
    V, L, H, C, T, B = SHAPES[a.config]
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count())
    m = GPT(V, L, H, C, T)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4, betas=(0.9, 0.99), weight_decay=0.1)
    x = torch.randint(V, (B, T))
    y = torch.randint(V, (B, T))
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            loss = m(x, y)
        loss.backward()
        nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    n = sum(p.numel() for p in m.parameters())
    print(f"torch {torch.__version__} {a.config} {a.precision} V={V} L={L} H={H} C={C} T={T} "
          f"B={B} params={n / 1e6:.2f}M threads={torch.get_num_threads()}: "
          f"{1e3 * statistics.median(times):.1f} ms/step (min {1e3 * min(times):.1f}), "
          f"{B * T / statistics.median(times):.0f} tok/s")


if __name__ == "__main__":
    main()
