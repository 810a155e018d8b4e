"""PyTorch reference for `go run ./bench -gpu`: transformers on the GPU in bf16
with a static KV cache, on the benchmark's BF16 SafeTensors folders.

    python3 bench.py --bandwidth
    python3 bench.py MODEL_DIR --tokens 1,2,3 --n-predict 128 [--streams 32 --stream-prompt 128] [--compile]

Prints one JSON object on its last stdout line, with the field names of
`apr bench-run` (load_s, prompt_tokens, prompt_s, decode_tokens, decode_s,
output, device, streams, stream_*), or for --bandwidth the device's measured
read and copy bandwidth. Each timed part runs once untimed first (warm-up,
and for --compile the compilation), as apr's and llama.cpp's runs do.
"""

import argparse
import json
import os
import sys
import time
import traceback

import torch


def sync():
    torch.cuda.synchronize()


def bandwidth(gib=2, reps=10):
    """Best read (sum of a float32 buffer) and copy (bytes read + written)
    bandwidth in bytes/s over reps passes, timed with CUDA events."""
    n = gib * (1 << 30) // 4
    x = torch.ones(n, dtype=torch.float32, device="cuda")
    y = torch.empty_like(x)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    best_read = best_copy = 0.0
    for _ in range(reps):
        start.record()
        s = x.sum()
        end.record()
        sync()
        best_read = max(best_read, 4 * n / (start.elapsed_time(end) / 1e3))
        start.record()
        y.copy_(x)
        end.record()
        sync()
        best_copy = max(best_copy, 2 * 4 * n / (start.elapsed_time(end) / 1e3))
    if s.item() != n:  # the sum must have read every element
        raise SystemExit(f"bandwidth: sum {s.item()} != {n}")
    return {
        "device": torch.cuda.get_device_name(0),
        "read_bytes_per_s": best_read,
        "copy_bytes_per_s": best_copy,
        "buffer_bytes": 4 * n,
        "torch": torch.__version__,
    }


def static_cache(model, batch, length):
    from transformers import StaticCache

    try:  # transformers 5: the batch size comes from the first update
        return StaticCache(config=model.config, max_cache_len=length)
    except TypeError:
        return StaticCache(config=model.config, max_batch_size=batch, max_cache_len=length,
                           device=model.device, dtype=model.dtype)


def run_sequences(model, step_fn, cache, prompt, n_predict, feed=None):
    """Evaluates prompt (a [batch, n] tensor) in one forward pass, then
    n_predict steps of one token per sequence: the greedy token, or feed's
    column i when given (as llama-batched-bench feeds tokens). Returns the
    prompt and decode seconds and the greedy tokens of sequence 0. The
    cache is reused between runs (positions are overwritten in order), so
    a compiled step keeps its graphs."""
    n = prompt.shape[1]
    with torch.inference_mode():
        # transformers may place tokens after the positions its cache holds
        # (StaticLayer counts the occupied ones), so each run starts empty;
        # reset zeroes in place (inside inference mode, where the cache was
        # made) and keeps the tensors' addresses.
        cache.reset()
        sync()
        t0 = time.perf_counter()
        out = model(input_ids=prompt, past_key_values=cache, use_cache=True,
                    cache_position=torch.arange(n, device="cuda"), logits_to_keep=1)
        tok = out.logits[:, -1].argmax(-1)
        toks = [tok[0].item()]
        sync()
        t1 = time.perf_counter()
        for i in range(n_predict):
            inp = tok[:, None] if feed is None else feed[:, i:i + 1]
            logits = step_fn(inp, cache, torch.tensor([n + i], device="cuda"))
            tok = logits[:, -1].argmax(-1)
            if feed is None:
                toks.append(tok[0].item())  # the one host sync per step, as apr's DecodeArgmax
        sync()
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1, toks


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?")
    ap.add_argument("--bandwidth", action="store_true", help="measure the device's memory bandwidth")
    ap.add_argument("--tokens", default="", help="prompt token ids, comma-separated")
    ap.add_argument("--n-predict", type=int, default=128)
    ap.add_argument("--streams", type=int, default=0)
    ap.add_argument("--stream-prompt", type=int, default=128)
    ap.add_argument("--compile", action="store_true",
                    help="decode steps through torch.compile(mode='reduce-overhead'): CUDA graphs")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device for PyTorch")
    if a.bandwidth:
        print(json.dumps(bandwidth()))
        return
    if not a.model:
        raise SystemExit("a model folder is needed")
    ids = [int(t) for t in a.tokens.split(",") if t.strip()]
    if not ids:
        raise SystemExit("--tokens: no token ids given")

    import transformers
    from transformers import AutoModelForCausalLM

    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16, attn_implementation="sdpa").to("cuda")
    model.eval()
    sync()
    load = time.perf_counter() - t0

    def step(inp, cache, pos):
        return model(input_ids=inp, past_key_values=cache, use_cache=True, cache_position=pos).logits

    step_fn = torch.compile(step, mode="reduce-overhead") if a.compile else step
    length = max(len(ids), a.stream_prompt) + a.n_predict + 1
    prompt = torch.tensor([ids], device="cuda")
    cache = static_cache(model, 1, length)
    run_sequences(model, step_fn, cache, prompt, min(a.n_predict, 3))  # warm-up (and compile)
    p, d_after, toks = run_sequences(model, step_fn, cache, prompt, a.n_predict)
    # Decode as llama-bench's tg test, from an empty context: a one-token
    # "prompt" at position 0, then the steps.
    _, d, _ = run_sequences(model, step_fn, cache, prompt[:, :1], a.n_predict)
    r = {
        "engine": "pytorch", "load_s": load, "prompt_tokens": len(ids), "prompt_s": p,
        "decode_tokens": a.n_predict, "decode_s": d, "decode_after_prompt_s": d_after, "output": toks,
        "device": torch.cuda.get_device_name(0), "torch": torch.__version__,
        "transformers": transformers.__version__, "compiled": a.compile,
    }
    if a.streams > 0:
        n, pp = a.streams, a.stream_prompt
        src = torch.tensor(ids, device="cuda")
        rows = torch.stack([src[(torch.arange(pp, device="cuda") + s) % len(ids)] for s in range(n)])
        feed = torch.stack([src[(torch.arange(a.n_predict, device="cuda") + s + pp) % len(ids)] for s in range(n)])
        cache = static_cache(model, n, length)
        run_sequences(model, step_fn, cache, rows, min(a.n_predict, 3), feed)
        p, d, _ = run_sequences(model, step_fn, cache, rows, a.n_predict, feed)
        r.update({"streams": n, "stream_prompt_tokens": n * pp, "stream_prompt_s": p,
                  "stream_decode_tokens": n * a.n_predict, "stream_decode_s": d})
    print(json.dumps(r))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # one line for the bench's report, the traceback on stderr
        traceback.print_exc()
        print(json.dumps({"error": f"{type(e).__name__}: {e}"[:500]}), flush=True)
        sys.stderr.flush()
        os._exit(1)  # skip CUDA teardown, whose device-assert echoes would bury the traceback
