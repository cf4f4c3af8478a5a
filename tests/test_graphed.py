"""When training replays its steps from CUDA graphs (the replay itself needs a GPU: benchmarks/gpu_check_graphs.py)."""
import torch

from cwl_lib import graphed, transfer


def test_graphs_only_on_a_gpu_in_eval_mode_and_unless_turned_off(monkeypatch):
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    monkeypatch.delenv("CWL_CUDA_GRAPHS", raising=False)
    assert graphed.enabled(cuda) and not graphed.enabled(cpu)
    assert not graphed.enabled(cuda, bn_train=True)  # BatchNorm statistics updates read values on the CPU
    monkeypatch.setenv("CWL_CUDA_GRAPHS", "0")
    assert not graphed.enabled(cuda)


def test_cpu_training_never_builds_a_graph(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a CUDA graph was built for a CPU run")

    monkeypatch.setattr(graphed, "GraphedStep", refuse)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    x, y = torch.randn(8, 3, 2, 2), torch.arange(8) % 3
    result = transfer.train(model, transfer.tensor_batches(x, y, 4, 0), "freeze", 0.1, 2, "cpu")
    assert result.steps == 4 and len(result.losses) == 2
