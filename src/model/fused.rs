//! Fused libtorch operations, each one differentiable step: the stacked linear layer `act(x·W + b)`
//! and the summed Bernoulli term ([`bce_sum`]).
//!
//! Burn's autodiff builds the layer from three recorded operations (batched matmul, broadcast bias
//! add, activation), each with its own output buffer and backward step. On libtorch this is
//! one op with a hand-written backward, as PyTorch's own stacked MLPs are written:
//!
//! - forward: `y = act(baddbmm(b, x, W))`, the bias added inside the GEMM (libtorch copies
//!   the broadcast bias into the output, the GEMM accumulates onto it) and the activation
//!   applied in place, so one `[M, B, out]` buffer is allocated instead of three;
//! - backward, from `∂L/∂y`: `g = act'(y) ⊙ ∂L/∂y` (one `threshold_backward` or
//!   `tanh_backward`, from the output alone), then `∂L/∂b = Σ_B g`, `∂L/∂W = xᵀ g` and
//!   `∂L/∂x = g Wᵀ` (one batched GEMM each, the transposes as strides), only for the inputs that
//!   need a gradient (the images do not).
//!
//! Elsewhere (Burn's pure-Rust backend) the same layer is the three Burn operations.

use burn::prelude::*;

use super::Activation;

/// `act(x·W + b)` for `x` `[M, B, in]`, `weight` `[M, in, out]`, `bias` `[M, 1, out]`;
/// `activation` `None` leaves it linear.
pub fn stacked_linear(
    x: Tensor<3>,
    weight: Tensor<3>,
    bias: Tensor<3>,
    activation: Option<Activation>,
) -> Tensor<3> {
    #[cfg(feature = "tch")]
    if let Some(y) = libtorch::forward(&x, &weight, &bias, activation) {
        return y;
    }
    let y = x.matmul(weight) + bias;
    match activation {
        Some(a) => a.apply(y),
        None => y,
    }
}

/// The binary cross-entropy from logits summed over the last axis and kept (size 1):
/// `Σ softplus(l) − x·l` for `logits` and `target` of one shape. On libtorch one op with a
/// hand-written backward (`∂/∂l = (σ(l) − x) ⊙ g`), where Burn's `softplus` records seven
/// (scale, mask, exp, log1p, …) and the product and difference two more, each a pass over every
/// pixel of every draw forward and backward; elsewhere Burn's ops. A `target` that broadcasts
/// (the evaluation's `[B, 1, D]` images against `[B, K, D]` draws) is expanded first.
pub fn bce_sum<const D: usize>(logits: Tensor<D>, target: Tensor<D>) -> Tensor<D> {
    let target = if target.dims() == logits.dims() {
        target
    } else {
        target.expand(logits.shape())
    };
    #[cfg(feature = "tch")]
    if let Some(y) = libtorch::bce_sum(&logits, &target) {
        return y;
    }
    (burn::tensor::activation::softplus(logits.clone(), 1.0) - target * logits).sum_dim(D - 1)
}

// Burn marks its libtorch backend deprecated; it is still our main backend (see ../shared/notes).
#[cfg(feature = "tch")]
#[allow(deprecated)]
mod libtorch {
    use burn::backend::libtorch::TchTensor;
    use burn::backend::{Autodiff, LibTorch};
    use burn::prelude::*;
    use burn_autodiff::checkpoint::base::Checkpointer;
    use burn_autodiff::checkpoint::strategy::NoCheckpointing;
    use burn_autodiff::grads::Gradients;
    use burn_autodiff::ops::{Backward, Ops, OpsKind};

    use super::Activation;

    type Ad = Autodiff<LibTorch>;

    /// The fused layer on libtorch: recorded as one autodiff step on an autodiff device, a
    /// plain libtorch call otherwise; `None` when the tensors live on another backend.
    pub(super) fn forward(
        x: &Tensor<3>,
        weight: &Tensor<3>,
        bias: &Tensor<3>,
        activation: Option<Activation>,
    ) -> Option<Tensor<3>> {
        if let (Ok(x), Ok(w), Ok(b)) = (
            x.clone().try_into_primitive::<Ad>(),
            weight.clone().try_into_primitive::<Ad>(),
            bias.clone().try_into_primitive::<Ad>(),
        ) {
            let (x_tracked, w_tracked) = (x.is_tracked(), w.is_tracked());
            let prepared = FusedLinear
                .prepare::<NoCheckpointing>([x.node(), w.node(), b.node()])
                .compute_bound()
                .stateful();
            let (x, w, b) = (x.into_primitive(), w.into_primitive(), b.into_primitive());
            let y = TchTensor::new(compute(&x.tensor, &w.tensor, &b.tensor, activation));
            let y = match prepared {
                OpsKind::Tracked(prep) => {
                    let state = State {
                        // xᵀ for ∂L/∂W, W for ∂L/∂x: each kept only if the other needs it.
                        x: w_tracked.then_some(x),
                        weight: x_tracked.then_some(w),
                        output: activation.map(|_| y.clone()),
                        activation,
                    };
                    prep.finish(state, y)
                }
                OpsKind::UnTracked(prep) => prep.finish(y),
            };
            return Some(Tensor::from_primitive::<Ad>(y));
        }
        let (x, w, b) = (
            x.clone().try_into_primitive::<LibTorch>().ok()?,
            weight.clone().try_into_primitive::<LibTorch>().ok()?,
            bias.clone().try_into_primitive::<LibTorch>().ok()?,
        );
        let y = compute(&x.tensor, &w.tensor, &b.tensor, activation);
        Some(Tensor::from_primitive::<LibTorch>(TchTensor::new(y)))
    }

    /// [`super::bce_sum`] on libtorch: one autodiff step on an autodiff device, a plain libtorch
    /// call otherwise; `None` when the tensors live on another backend.
    pub(super) fn bce_sum<const D: usize>(
        logits: &Tensor<D>,
        target: &Tensor<D>,
    ) -> Option<Tensor<D>> {
        if let (Ok(l), Ok(x)) = (
            logits.clone().try_into_primitive::<Ad>(),
            target.clone().try_into_primitive::<Ad>(),
        ) {
            let prepared = FusedBce
                .prepare::<NoCheckpointing>([l.node(), x.node()])
                .compute_bound()
                .stateful();
            let (l, x) = (l.into_primitive(), x.into_primitive());
            let y = TchTensor::new(bce_sum_of(&l.tensor, &x.tensor));
            let y = match prepared {
                OpsKind::Tracked(prep) => prep.finish((l, x), y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            };
            return Some(Tensor::from_primitive::<Ad>(y));
        }
        let (l, x) = (
            logits.clone().try_into_primitive::<LibTorch>().ok()?,
            target.clone().try_into_primitive::<LibTorch>().ok()?,
        );
        Some(Tensor::from_primitive::<LibTorch>(TchTensor::new(
            bce_sum_of(&l.tensor, &x.tensor),
        )))
    }

    /// libtorch's stable BCE-with-logits per pixel, summed over the last axis, kept.
    fn bce_sum_of(l: &tch::Tensor, x: &tch::Tensor) -> tch::Tensor {
        l.binary_cross_entropy_with_logits::<tch::Tensor>(x, None, None, tch::Reduction::None)
            .sum_dim_intlist([-1i64].as_slice(), true, None::<tch::Kind>)
    }

    /// The backward step of [`bce_sum`]; its state is the logits and the target.
    #[derive(Debug)]
    struct FusedBce;

    impl Backward<LibTorch, 2> for FusedBce {
        type State = (TchTensor, TchTensor);

        fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
            let (l, x) = ops.state;
            // g: ∂L/∂y of the summed term, one per row, broadcast over the pixels.
            let g = grads.consume::<LibTorch>(&ops.node).tensor;
            let [l_node, x_node] = ops.parents;
            if let Some(node) = l_node {
                let mut dl = l.tensor.sigmoid();
                let _ = dl.g_sub_(&x.tensor);
                let _ = dl.g_mul_(&g);
                grads.register::<LibTorch>(node.id, TchTensor::new(dl));
            }
            if let Some(node) = x_node {
                let dx = -(&l.tensor * &g);
                grads.register::<LibTorch>(node.id, TchTensor::new(dx));
            }
        }
    }

    /// `act(b + x·W)`: the bias is the GEMM's accumulator (β = 1), the activation in place on
    /// the fresh output.
    fn compute(
        x: &tch::Tensor,
        w: &tch::Tensor,
        b: &tch::Tensor,
        activation: Option<Activation>,
    ) -> tch::Tensor {
        let mut y = b.baddbmm(x, w, 1, 1);
        match activation {
            Some(Activation::Relu) => {
                let _ = y.relu_();
            }
            Some(Activation::Tanh) => {
                let _ = y.tanh_();
            }
            None => {}
        }
        y
    }

    /// The backward step of [`forward`].
    #[derive(Debug)]
    struct FusedLinear;

    /// What the backward step needs: the input and weight (where the other needs a
    /// gradient) and the activated output (the activation's derivative is a function of it).
    #[derive(Clone, Debug)]
    struct State {
        x: Option<TchTensor>,
        weight: Option<TchTensor>,
        output: Option<TchTensor>,
        activation: Option<Activation>,
    }

    impl Backward<LibTorch, 3> for FusedLinear {
        type State = State;

        fn backward(self, ops: Ops<State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
            let State {
                x,
                weight,
                output,
                activation,
            } = ops.state;
            let grad = grads.consume::<LibTorch>(&ops.node).tensor;
            // g = act'(y) ⊙ ∂L/∂y, from the activated output y.
            let g = match (activation, &output) {
                (Some(Activation::Relu), Some(y)) => y.tensor.threshold_backward(&grad, 0),
                (Some(Activation::Tanh), Some(y)) => tch::Tensor::tanh_backward(&grad, &y.tensor),
                _ => grad,
            };
            let [x_node, w_node, b_node] = ops.parents;
            if let Some(node) = w_node {
                let x = x.expect("kept when W needs its gradient");
                let dw = x.tensor.transpose(1, 2).bmm(&g);
                grads.register::<LibTorch>(node.id, TchTensor::new(dw));
            }
            if let Some(node) = x_node {
                let w = weight.expect("kept when x needs its gradient");
                let dx = g.bmm(&w.tensor.transpose(1, 2));
                grads.register::<LibTorch>(node.id, TchTensor::new(dx));
            }
            if let Some(node) = b_node {
                let db = g.sum_dim_intlist([1i64].as_slice(), true, None::<tch::Kind>);
                grads.register::<LibTorch>(node.id, TchTensor::new(db));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn values(t: Tensor<3>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    /// The fused layer's output and its gradients for x, W and b equal Burn's own three
    /// operations (matmul, bias add, activation) to float rounding, for each activation; on
    /// libtorch the fused op is the one taken.
    #[test]
    fn the_fused_layer_equals_burns_three_operations() {
        let d = crate::model::test_device().autodiff();
        for activation in [None, Some(Activation::Relu), Some(Activation::Tanh)] {
            d.seed(3);
            let x = Tensor::<3>::random([3, 5, 7], Distribution::Normal(0.0, 1.0), &d);
            let w = Tensor::<3>::random([3, 7, 4], Distribution::Normal(0.0, 1.0), &d);
            let b = Tensor::<3>::random([3, 1, 4], Distribution::Normal(0.0, 1.0), &d);
            // A loss that weighs every output differently, so that each gradient entry counts.
            let weights = Tensor::<3>::random([3, 5, 4], Distribution::Normal(0.0, 1.0), &d);
            let run = |fused: bool| {
                let (x, w, b) = (
                    x.clone().detach().require_grad(),
                    w.clone().detach().require_grad(),
                    b.clone().detach().require_grad(),
                );
                let y = if fused {
                    stacked_linear(x.clone(), w.clone(), b.clone(), activation)
                } else {
                    let y = x.clone().matmul(w.clone()) + b.clone();
                    activation.map_or(y.clone(), |a| a.apply(y))
                };
                let grads = (y.clone() * weights.clone()).sum().backward();
                let grad = |t: &Tensor<3>| Tensor::from_inner(t.grad(&grads).unwrap());
                [y.detach(), grad(&x), grad(&w), grad(&b)].map(values)
            };
            let (fused, burn) = (run(true), run(false));
            for (what, (f, r)) in ["y", "dx", "dW", "db"].iter().zip(fused.iter().zip(&burn)) {
                assert_eq!(f.len(), r.len());
                for (a, e) in f.iter().zip(r) {
                    assert!(
                        (a - e).abs() <= 1e-5 * (1.0 + e.abs()),
                        "{activation:?} {what}: fused {a} vs Burn {e}"
                    );
                }
            }
            #[cfg(feature = "tch")]
            assert!(
                libtorch::forward(&x, &w, &b, activation).is_some(),
                "the fused op is taken on libtorch"
            );
        }
    }

    /// The fused BCE's per-row sums and its gradients for the logits and the target equal
    /// Burn's own ops (softplus, product, difference, sum) to float rounding, far logits
    /// included; on libtorch the fused op is the one taken.
    #[test]
    fn the_fused_bce_equals_burns_operations() {
        let d = crate::model::test_device().autodiff();
        d.seed(5);
        let mut l = Tensor::<3>::random([2, 3, 9], Distribution::Normal(0.0, 4.0), &d);
        let far = Tensor::<3>::from_floats(
            [[[-120.0, 30.0, -30.0, 0.0, 1e-3, 25.0, -25.0, 60.0, -60.0]]],
            &d,
        );
        l = l.slice_assign([0..1, 0..1, 0..9], far);
        let x = Tensor::<3>::random([2, 3, 9], Distribution::Uniform(0.0, 1.0), &d);
        let weights = Tensor::<3>::random([2, 3, 1], Distribution::Normal(0.0, 1.0), &d);
        let run = |fused: bool| {
            let (l, x) = (
                l.clone().detach().require_grad(),
                x.clone().detach().require_grad(),
            );
            let y = if fused {
                bce_sum(l.clone(), x.clone())
            } else {
                (burn::tensor::activation::softplus(l.clone(), 1.0) - x.clone() * l.clone())
                    .sum_dim(2)
            };
            let grads = (y.clone() * weights.clone()).sum().backward();
            let grad = |t: &Tensor<3>| Tensor::from_inner(t.grad(&grads).unwrap());
            [y.detach(), grad(&l), grad(&x)].map(values)
        };
        let (fused, burn) = (run(true), run(false));
        for (what, (f, r)) in ["y", "dl", "dx"].iter().zip(fused.iter().zip(&burn)) {
            assert_eq!(f.len(), r.len(), "{what}");
            for (a, e) in f.iter().zip(r) {
                assert!(
                    (a - e).abs() <= 1e-5 * (1.0 + e.abs()),
                    "{what}: fused {a} vs Burn {e}"
                );
            }
        }
        #[cfg(feature = "tch")]
        assert!(
            libtorch::bce_sum(&l, &x).is_some(),
            "the fused op is taken on libtorch"
        );
    }
}
