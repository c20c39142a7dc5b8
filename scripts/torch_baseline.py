"""Vendor-library ceilings beside `llava-lens bench` on the same GPU, one JSON line each:
device-to-device copy bandwidth (bytes read + written, as `bench`'s copy), cuBLAS FP32 GEMM with
TF32 off (the card's non-tensor FP32 path) at the prefill shapes, and an fp16 matrix-vector
product at the decode shapes. CUDA events, median of 20 after 5 warm-ups."""
import json

import torch

assert torch.cuda.is_available(), "PyTorch sees no CUDA device"
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = torch.device("cuda")


def median_ms(fn, reps=20, warmup=5):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


name = torch.cuda.get_device_name(0)
n = 512 << 20
src = torch.empty(n, dtype=torch.uint8, device=dev)
dst = torch.empty_like(src)
ms = median_ms(lambda: dst.copy_(src))
print(json.dumps({"kernel": "torch_copy", "device": name, "bytes": 2 * n, "median_ms": ms, "gbps": 2 * n / ms / 1e6}))

for m, nn, k in [(600, 4096, 4096), (600, 11008, 4096)]:
    x = torch.randn(m, k, device=dev)
    w = torch.randn(nn, k, device=dev)
    ms = median_ms(lambda: x @ w.T)
    print(json.dumps({"kernel": "torch_sgemm_no_tf32", "device": name, "m": m, "n": nn, "k": k, "median_ms": ms, "gflops": 2 * m * nn * k / ms / 1e6}))

for nn, k in [(4096, 4096), (11008, 4096), (4096, 11008), (32064, 4096)]:
    ws = [torch.randn(nn, k, device=dev, dtype=torch.float16) for _ in range(8)]
    x = torch.randn(k, device=dev, dtype=torch.float16)
    i = [0]

    def mv():
        i[0] = (i[0] + 1) % len(ws)
        return ws[i[0]] @ x

    ms = median_ms(mv)
    print(json.dumps({"kernel": "torch_matvec_f16", "device": name, "n": nn, "k": k, "median_ms": ms, "gbps": (2 * nn * k + 2 * (nn + k)) / ms / 1e6}))
