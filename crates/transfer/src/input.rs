//! Input adaptation between source and target domains, explicit and documented.
//!
//! A source network fixes its input: shape, value range, normalisation. A target dataset that
//! differs must be mapped onto it before any strategy runs:
//!
//! - **Images of another size** ([`resize`]): bilinear interpolation (`align_corners = false`,
//!   no antialiasing), as `torch.nn.functional.interpolate(mode="bilinear")`.
//! - **UCI 8x8 digits to an MNIST source** ([`uci_to_mnist`]): values 0–16 are scaled to
//!   `[0, 1]`; MNIST digits are centred in a 20x20 box inside 28x28 with a 4-pixel empty
//!   border, while UCI digits fill their 8x8 frame, so each digit is resized to 20x20 and padded
//!   by 4 zeros on every side; then the source's `(x - mean) / std` applies.
//! - **Audio of other lengths** is cut or zero-padded, centred, to the source's sample count
//!   by [`pretrained_zoo::registry::AudioInput::prepare`] (all FSDD speakers share 8 kHz).

use core_tensor::{Error, Result};
use pretrained_zoo::registry::ImageInput;
use tch::{Kind, Tensor};

/// Resizes `[N, C, h, w]` float images to `[N, C, size[0], size[1]]` (bilinear).
pub fn resize(images: &Tensor, size: [i64; 2]) -> Result<Tensor> {
    if images.dim() != 4 {
        return Err(Error::InvalidArgument(format!(
            "resize takes [N, C, H, W] images, got shape {:?}",
            images.size()
        )));
    }
    Ok(images
        .to_kind(Kind::Float)
        .f_upsample_bilinear2d(size, false, None, None)?)
}

/// UCI digits (`[N, 1, 8, 8]`, values 0–16) as input of a network trained on MNIST with
/// normalisation `input` (see the module documentation).
pub fn uci_to_mnist(images: &Tensor, input: &ImageInput) -> Result<Tensor> {
    if images.size()[1..] != [1, 8, 8] {
        return Err(Error::InvalidArgument(format!(
            "UCI digits are [N, 1, 8, 8], got {:?}",
            images.size()
        )));
    }
    let unit = images.to_kind(Kind::Float) / 16.0;
    let boxed = resize(&unit, [20, 20])?.clamp(0.0, 1.0);
    let framed = boxed.f_constant_pad_nd([4, 4, 4, 4])?;
    Ok((framed - input.mean) / input.std)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uci_digits_land_in_the_mnist_frame() {
        let x = Tensor::full([2, 1, 8, 8], 16, (Kind::Uint8, tch::Device::Cpu));
        let input = ImageInput {
            mean: 0.0,
            std: 1.0,
        };
        let y = uci_to_mnist(&x, &input).unwrap();
        assert_eq!(y.size(), [2, 1, 28, 28]);
        // Border of 4 zeros, a 20x20 box of ones inside.
        assert_eq!(
            y.narrow(2, 0, 4).abs().sum(Kind::Float).double_value(&[]),
            0.0
        );
        let inner = y.narrow(2, 4, 20).narrow(3, 4, 20);
        assert!((inner.mean(Kind::Float).double_value(&[]) - 1.0).abs() < 1e-6);
        let err =
            uci_to_mnist(&Tensor::zeros([1, 1, 28, 28], tch::kind::FLOAT_CPU), &input).unwrap_err();
        assert!(err.to_string().contains("[N, 1, 8, 8]"));
    }

    #[test]
    fn resize_matches_bilinear_on_a_ramp() {
        // A horizontal ramp stays a ramp (monotone rows) after upsampling.
        let ramp = Tensor::arange(4, tch::kind::FLOAT_CPU)
            .view([1, 1, 1, 4])
            .expand([1, 1, 4, 4], false);
        let up = resize(&ramp, [8, 8]).unwrap();
        let row: Vec<f32> = Vec::try_from(up.select(2, 3).view([-1])).unwrap();
        assert!(row.windows(2).all(|w| w[0] <= w[1]), "{row:?}");
        assert_eq!(row[0], 0.0);
        assert_eq!(row[7], 3.0);
        assert!(resize(&Tensor::zeros([4, 4], tch::kind::FLOAT_CPU), [2, 2]).is_err());
    }
}
