import torch

from xbench.encoder.identity import encoder_fingerprint, encoder_identity, state_digest


class BNEncoder(torch.nn.Module):
    sampling_rate, output_dim, hop_size_in_ms = 16000, 4, 10

    def __init__(self):
        super().__init__()
        self.bn = torch.nn.BatchNorm1d(4)  # holds a 0-d int64 buffer (num_batches_tracked)


def test_digest_handles_zero_dim_buffers_and_tracks_weights():
    a, b = BNEncoder(), BNEncoder()
    assert state_digest(a) == state_digest(b)
    with torch.no_grad():
        b.bn.weight[0] = 2.0
    assert state_digest(a) != state_digest(b)
    b.bn.weight.data.copy_(a.bn.weight)
    b.bn.num_batches_tracked += 1
    assert state_digest(a) != state_digest(b)


def test_fingerprint_depends_on_options():
    enc = BNEncoder()
    one = encoder_fingerprint(encoder_identity(enc, {"chunk_seconds": 10}))
    two = encoder_fingerprint(encoder_identity(enc, {"chunk_seconds": None}))
    assert one != two
