import torch
import torch.nn.functional as F

from sidkit.retrieval.feedforward import FeedForward


def test_chunked_training_gives_the_plain_feed_forwards_output_and_gradients():
    torch.manual_seed(0)
    ff = FeedForward(16, 64, chunk_rows=7)                       # 50 rows: 7 full chunks and a partial one
    x = torch.randn(5, 10, 16, requires_grad=True)
    weight = torch.randn(5, 10, 16)

    def plain(v):
        return ff[2](F.gelu(ff[0](v)))

    def grads(fn):
        for p in (x, *ff.parameters()):
            p.grad = None
        out = fn(x)
        (out * weight).sum().backward()
        return out.detach(), [p.grad.clone() for p in (x, *ff.parameters())]

    out, g = grads(ff)
    ref_out, ref_g = grads(plain)
    torch.testing.assert_close(out, ref_out, atol=1e-6, rtol=1e-5)
    for a, b in zip(g, ref_g):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    with torch.no_grad():                                        # inference: the ordinary path, same values
        torch.testing.assert_close(ff(x), ref_out, atol=1e-6, rtol=1e-5)
    assert list(dict(ff.named_parameters())) == ["0.weight", "0.bias", "2.weight", "2.bias"]  # nn.Sequential's names


def test_under_bf16_autocast_the_chunks_compute_what_autocasts_linear_layers_do():
    """bf16 autocast: the chunked path runs the matmuls and GELU in bf16 like autocast's ordinary path (weights
    cast once per call, weight gradients accumulated in fp32), so both agree to bf16 precision."""
    torch.manual_seed(0)
    ff = FeedForward(32, 256, chunk_rows=64)                     # 300 rows: 4 full chunks and a partial one
    x = torch.randn(3, 100, 32, requires_grad=True)
    weight = torch.randn(3, 100, 32)

    def grads(chunked):
        FeedForward.chunked = chunked
        try:
            for p in (x, *ff.parameters()):
                p.grad = None
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = ff(x)
            (out.float() * weight).sum().backward()
        finally:
            FeedForward.chunked = True
        return out, [p.grad.clone() for p in (x, *ff.parameters())]

    out, g = grads(True)
    ref_out, ref_g = grads(False)
    assert out.dtype == ref_out.dtype == torch.bfloat16
    assert [t.dtype for t in g] == [t.dtype for t in ref_g] == [torch.float32] * 5
    torch.testing.assert_close(out.float(), ref_out.float(), atol=2e-2, rtol=2e-2)
    for a, b in zip(g, ref_g):
        assert (a - b).norm() <= 0.02 * b.norm()                 # bf16 rounding, not a different function
