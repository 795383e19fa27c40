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
