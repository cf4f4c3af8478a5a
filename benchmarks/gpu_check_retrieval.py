"""GPU check of the retrieval path (run by benchmarks/run_gpu_checks.sh on a GPU machine; about a minute).

1. MAC on CUDA (bfloat16 autocast, channels_last) against float32 on the CPU, at original sizes, for
   random-weight VGG-16 and ResNet-50 (cosine between the two descriptors of each image).
2. One training step of each Table III strategy at the paper's 1024 x 768, batch 8: seconds and peak memory.
3. MAC extraction throughput at 1024 x 768 and 768 x 1024 (ROxford's usual sizes).
4. One full run (train, fold, MAC, protocol) on the offline mini benchmark on CUDA.
"""
import time

import torch
import torchvision

from cwl_lib import retrieval as R
from cwl_lib import transfer
from cwl_lib.studies import Context
from cwl_lib.studies import retrieval as rt


def main():
    assert torch.cuda.is_available(), "no CUDA device"
    dev = torch.device("cuda")
    print("device:", torch.cuda.get_device_name(0))
    torch.manual_seed(0)
    sizes = [(240, 320), (320, 240), (240, 320)]
    images = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8) for h, w in sizes]
    for arch in ("vgg16", "resnet50"):
        model = torchvision.models.get_model(arch, weights=None).eval()
        body = R.conv_body(model)
        cpu = R.extract(body, images, device="cpu")
        gpu = R.extract(body, images, device=dev)
        cos = (cpu * gpu).sum(1)
        print(f"{arch}: MAC cuda-bf16 vs cpu-fp32 cosine min {cos.min():.4f}")

        for strategy in ("freeze+cwl", "finetune", "finetune+cwl"):
            m = transfer.prepare(torchvision.models.get_model(arch, weights=None), strategy, 16)
            x = torch.randint(0, 256, (8, 3, 768, 1024), dtype=torch.uint8)
            y = torch.randint(0, 16, (8,))
            batches = lambda epoch: iter([(transfer.preprocess(x), y)])  # noqa: E731
            torch.cuda.reset_peak_memory_stats()
            transfer.train(m, batches, strategy, 1e-4, 1, dev)  # warm-up
            torch.cuda.synchronize()
            t = time.perf_counter()
            transfer.train(m, batches, strategy, 1e-4, 1, dev)
            torch.cuda.synchronize()
            print(f"{arch} {strategy}: one step 8 x 1024x768 {time.perf_counter() - t:.2f} s, "
                  f"peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
            del m

        big = [torch.randint(0, 256, (3, *s), dtype=torch.uint8) for s in [(768, 1024)] * 32 + [(1024, 768)] * 16]
        R.extract(body, big[:4], device=dev)
        torch.cuda.synchronize()
        t = time.perf_counter()
        R.extract(body, big, device=dev, batch_size=16)
        torch.cuda.synchronize()
        print(f"{arch}: MAC at 1024x768 {len(big) / (time.perf_counter() - t):.1f} images/s")

    import tempfile

    from cwl_lib.data.offline_landmarks import build

    root = tempfile.mkdtemp()
    build("offline-landmarks-mini", root=root)
    template = torchvision.models.resnet50(weights=None).eval()
    context = Context(dev, data_root=root, load_model=lambda *_: template)
    for strategy in ("freeze", "finetune+cwl"):
        run = rt.Config("offline-landmarks-mini", "resnet50", strategy, None if strategy == "freeze" else 1e-4,
                        epochs=2, batch_size=4, train_size=(256, 192), pretrained=False)
        rec = rt.run_one(run, context)
        print(f"end-to-end resnet50 {strategy} on cuda: mAP {rec['table']}, {rec['seconds']:.1f} s")


if __name__ == "__main__":
    main()
