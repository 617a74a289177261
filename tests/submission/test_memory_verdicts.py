"""Memory verdicts: GPU memory as CUDA sees it (with torch.cuda faked: no GPU here) and the process-tree walk."""

import pytest
import torch

from xbench.submission.memory import GPU_LIMIT, GpuMemory, measure_gpu_memory, memory_verdict
from xbench.submission.supervisor import process_tree
from xbench.submission.verify import VerifyResult, _gpu_step

GIB = 2**30


class FakeCuda:
    """torch.cuda's memory functions for one device: the allocator's reserve grows while a batch runs."""

    def __init__(self, total: int, context: int, other_process: int = 0) -> None:
        self.total, self.context, self.other = total, context, other_process
        self.reserved = self.peak_reserved = 0
        self.synchronized = False

    def run(self, reserved_at_peak: int, reserved_after: int) -> None:
        self.peak_reserved = max(self.peak_reserved, reserved_at_peak)
        self.reserved = reserved_after

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def reset(*_):
            raise AssertionError("a peak reset hides memory the run needs")

        monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: setattr(self, "synchronized", True))
        used = lambda: self.context + self.other + self.reserved  # noqa: E731
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (self.total - used(), self.total))
        monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: self.reserved)
        monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: self.peak_reserved)
        monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: pytest.fail("not the measure"))
        monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", reset)


T4_TOTAL = 15_828_320_256  # what CUDA reports as a T4's total memory


def test_gpu_memory_is_the_reserved_peak_plus_the_context(monkeypatch):
    cuda = FakeCuda(T4_TOTAL, context=int(0.4 * GIB))
    cuda.install(monkeypatch)
    got = measure_gpu_memory(lambda: cuda.run(reserved_at_peak=13 * GIB, reserved_after=12 * GIB), "cuda:0")
    assert cuda.synchronized
    assert got == GpuMemory(reserved_peak=13 * GIB, outside_allocator=int(0.4 * GIB), device_total=T4_TOTAL)
    assert got.peak == 13 * GIB + int(0.4 * GIB)
    assert got.to_dict()["peak"] == got.peak
    # another process on the same device counts too: the estimate errs high, never low
    busy = FakeCuda(T4_TOTAL, context=int(0.4 * GIB), other_process=GIB)
    busy.install(monkeypatch)
    assert measure_gpu_memory(lambda: busy.run(GIB, GIB), "cuda:0").outside_allocator == int(1.4 * GIB)


@pytest.mark.parametrize(
    "reserved, context, ok",
    [(14 * GIB, int(0.5 * GIB), True), (int(14.7 * GIB), int(0.5 * GIB), False)],
)
def test_the_gpu_verdict_is_against_the_usable_15_gib(monkeypatch, reserved, context, ok):
    cuda = FakeCuda(T4_TOTAL, context)
    cuda.install(monkeypatch)
    gpu = measure_gpu_memory(lambda: cuda.run(reserved, reserved), "cuda:0")
    assert memory_verdict(gpu.peak, GPU_LIMIT, "reserved + context")[0] is ok
    result = VerifyResult()
    _gpu_step(result, {"clips": 16, "seconds": 10.0, "gpu": gpu.to_dict()})
    (step,) = result.steps
    assert step.name == "GPU memory" and step.ok is ok
    assert step.detail.startswith(f"reserved + context {gpu.peak / GIB:.2f} GiB of the 15.00 GiB limit")
    assert "on a 16 × 10 s batch" in step.detail


def test_a_batch_that_raised_fails_and_cpu_runs_have_no_gpu_step():
    result = VerifyResult()
    _gpu_step(result, {"clips": 16, "seconds": 10.0, "wall_s": 0.1})
    assert result.steps == []
    _gpu_step(result, {"error": "RuntimeError: CUDA out of memory"})
    assert [(s.name, s.ok) for s in result.steps] == [("run batch", False)]
    assert memory_verdict(12 * GIB, 12 * GIB, "peak RSS") == (True, "peak RSS 12.00 GiB of the 12.00 GiB limit")


def test_process_tree_walks_proc(tmp_path):
    def proc(pid: int, ppid: int, name: str) -> None:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(f"{pid} ({name}) S {ppid} {pid} {pid} 0 -1 4194560\n")

    proc(10, 1, "bwrap")
    proc(11, 10, "python (child) x")  # a name with spaces and parentheses
    proc(12, 11, "worker")
    proc(13, 1, "unrelated")
    proc(14, 12, "grandchild")
    (tmp_path / "self").mkdir()  # not a pid
    assert sorted(process_tree(10, tmp_path)) == [11, 12, 14]
    assert process_tree(14, tmp_path) == []
