"""Parameter accounting: closed forms against Keras, and the numbers the docs quote."""

import pytest

from harness.models import ModelError, build_model, param_count, recurrent_param_count


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
@pytest.mark.parametrize("units,input_dim,timesteps", [(1, 28, 28), (7, 1, 784), (64, 12, 5)])
def test_closed_form_matches_keras(cell, units, input_dim, timesteps):
    model = build_model(
        cell=cell, units=units, timesteps=timesteps, input_dim=input_dim, num_classes=10
    )
    assert model.count_params() == param_count(cell, units, input_dim, 10)


def test_pinned_numbers():
    # Row-MNIST LSTM(128): 4·128·(28+128+1) + 129·10.
    assert param_count("lstm", 128, 28, 10) == 81_674
    # The question's model: 12 inputs, LSTM(64) = TF1 BasicLSTMCell kernel (76, 256) + bias (256,).
    assert recurrent_param_count("lstm", 64, 12) == 19_712 == 76 * 256 + 256
    assert recurrent_param_count("gru", 64, 12) == 3 * 64 * (12 + 64 + 2) == 14_976
    assert recurrent_param_count("simple_rnn", 64, 12) == 64 * 77 == 4_928
    assert param_count("lstm", 1, 28, 10) == 4 * 30 + 20


def test_lstm_weight_shapes_for_the_question():
    model = build_model(cell="lstm", units=64, timesteps=820, input_dim=12, num_classes=2)
    shapes = [tuple(weight.shape) for weight in model.get_layer("lstm").weights]
    assert shapes == [(12, 256), (64, 256), (256,)]


@pytest.mark.parametrize("units", [0, -3, 2.5, "8", True])
def test_bad_units_rejected(units):
    with pytest.raises(ModelError, match="model.units"):
        build_model(cell="lstm", units=units, timesteps=28, input_dim=28, num_classes=10)


def test_unknown_cell_rejected():
    with pytest.raises(ModelError, match="allowed: lstm, gru, simple_rnn"):
        param_count("transformer", 8, 28, 10)
