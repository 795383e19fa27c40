import pytest
import torch

from sidkit.retrieval.dropout import FastDropout


def test_fast_dropout_drops_at_rate_p_keeps_the_expectation_and_is_the_identity_in_eval():
    torch.manual_seed(0)
    drop = FastDropout(0.1)
    x = torch.ones(200_000, requires_grad=True)
    y = drop(x)
    dropped = (y == 0).float().mean().item()
    assert dropped == pytest.approx(0.1, abs=0.003)
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)
    assert torch.allclose(y[y != 0], torch.tensor(1 / 0.9))
    y.sum().backward()                                    # gradient flows through kept elements only
    assert torch.equal(x.grad == 0, y == 0)
    drop.eval()
    assert drop(x) is x


def test_fast_dropout_masks_repeat_under_the_same_torch_seed_and_differ_between_calls():
    def masks(seed):
        torch.manual_seed(seed)
        drop = FastDropout(0.3)
        x = torch.ones(1000)
        return drop(x) == 0, drop(x) == 0

    a1, a2 = masks(7)
    b1, b2 = masks(7)
    assert torch.equal(a1, b1) and torch.equal(a2, b2)
    assert not torch.equal(a1, a2)
    assert not torch.equal(masks(8)[0], a1)
    with pytest.raises(ValueError):
        FastDropout(1.0)
