//! Layers created with PyTorch's default initialisation, under the names PyTorch gives them.
//!
//! tch's defaults differ from PyTorch's: its linear and convolution weights are Kaiming-uniform
//! with the ReLU gain (bounds `sqrt(6 / fan_in)`, PyTorch: `1 / sqrt(fan_in)`), its convolution
//! biases are zero and its batch-norm weights uniform in `[0, 1)` (PyTorch: ones). These helpers
//! give the PyTorch values, so a network starts from the same distribution in both.

use tch::nn::{self, Init};

/// PyTorch's bound for weights and biases: `kaiming_uniform_(a = sqrt(5))` on the weight gives
/// `1 / sqrt(fan_in)`, and the bias uses the same bound.
fn uniform(fan_in: i64) -> Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// `torch.nn.Linear(inputs, outputs)`: variables `weight` `[outputs, inputs]` and `bias`.
pub fn linear(p: nn::Path, inputs: i64, outputs: i64) -> nn::Linear {
    let init = uniform(inputs);
    nn::linear(
        p,
        inputs,
        outputs,
        nn::LinearConfig {
            ws_init: init,
            bs_init: Some(init),
            bias: true,
        },
    )
}

/// Stride, padding and bias of a convolution (square kernels, no dilation, no groups).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    /// Stride.
    pub stride: i64,
    /// Zero padding on every side.
    pub padding: i64,
    /// Whether the layer has a `bias` (convolutions followed by batch norm have none).
    pub bias: bool,
}

impl ConvSpec {
    /// Stride 1, padding `padding`, no bias: a convolution followed by batch norm.
    pub fn same_no_bias(padding: i64) -> Self {
        ConvSpec {
            stride: 1,
            padding,
            bias: false,
        }
    }

    fn config(self, fan_in: i64) -> nn::ConvConfig {
        nn::ConvConfig {
            stride: self.stride,
            padding: self.padding,
            bias: self.bias,
            ws_init: uniform(fan_in),
            bs_init: uniform(fan_in),
            ..Default::default()
        }
    }
}

/// `torch.nn.Conv2d(inputs, outputs, kernel, stride, padding, bias)`.
pub fn conv2d(p: nn::Path, inputs: i64, outputs: i64, kernel: i64, spec: ConvSpec) -> nn::Conv2D {
    let cfg = spec.config(inputs * kernel * kernel);
    nn::conv2d(p, inputs, outputs, kernel, cfg)
}

/// `torch.nn.Conv1d(inputs, outputs, kernel, stride, padding, bias)`.
pub fn conv1d(p: nn::Path, inputs: i64, outputs: i64, kernel: i64, spec: ConvSpec) -> nn::Conv1D {
    let cfg = spec.config(inputs * kernel);
    nn::conv1d(p, inputs, outputs, kernel, cfg)
}

/// Batch norm with PyTorch's initial values (weight 1, bias 0) and defaults (eps 1e-5,
/// momentum 0.1): variables `weight`, `bias`, `running_mean`, `running_var`. PyTorch's
/// `num_batches_tracked` has no variable here (see `core_tensor::checkpoint`).
fn bn_config() -> nn::BatchNormConfig {
    nn::BatchNormConfig {
        eps: 1e-5,
        momentum: 0.1,
        ws_init: Init::Const(1.0),
        bs_init: Init::Const(0.0),
        ..Default::default()
    }
}

/// `torch.nn.BatchNorm2d(channels)`; see [`batch_norm1d`] for the variables.
pub fn batch_norm2d(p: nn::Path, channels: i64) -> nn::BatchNorm {
    nn::batch_norm2d(p, channels, bn_config())
}

/// `torch.nn.BatchNorm1d(channels)`: variables `weight`, `bias`, `running_mean`,
/// `running_var`, with PyTorch's initial values (weight 1, bias 0), eps 1e-5 and momentum 0.1.
/// PyTorch's `num_batches_tracked` has no variable here (see `core_tensor::checkpoint`).
pub fn batch_norm1d(p: nn::Path, channels: i64) -> nn::BatchNorm {
    nn::batch_norm1d(p, channels, bn_config())
}

/// A convolution without bias followed by batch norm, named `<block>.conv` and `<block>.bn`;
/// the building block of the plain CNNs (`FaceCnn`, `SpectrogramCnn`, `AudioCnn1d`).
#[derive(Debug)]
pub struct ConvBn<C> {
    /// The convolution, `<block>.conv`.
    pub conv: C,
    /// The batch norm, `<block>.bn`.
    pub bn: nn::BatchNorm,
}

impl ConvBn<nn::Conv2D> {
    /// A 3x3 convolution (padding 1) and batch norm under `p`.
    pub fn new_3x3(p: nn::Path, inputs: i64, outputs: i64) -> Self {
        ConvBn {
            conv: conv2d(&p / "conv", inputs, outputs, 3, ConvSpec::same_no_bias(1)),
            bn: batch_norm2d(&p / "bn", outputs),
        }
    }
}

impl ConvBn<nn::Conv1D> {
    /// A 1-D convolution and batch norm under `p`.
    pub fn new_1d(p: nn::Path, inputs: i64, outputs: i64, kernel: i64, spec: ConvSpec) -> Self {
        ConvBn {
            conv: conv1d(&p / "conv", inputs, outputs, kernel, spec),
            bn: batch_norm1d(&p / "bn", outputs),
        }
    }
}

impl<C: nn::Module> nn::ModuleT for ConvBn<C> {
    /// `relu(bn(conv(xs)))`; `train` selects batch statistics (and updates the running ones)
    /// or the running statistics.
    fn forward_t(&self, xs: &tch::Tensor, train: bool) -> tch::Tensor {
        xs.apply(&self.conv).apply_t(&self.bn, train).relu()
    }
}
