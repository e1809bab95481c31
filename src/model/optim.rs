//! Adam over one flat buffer.
//!
//! tch steps libtorch's C++ Adam, which updates parameter by parameter: about seven
//! kernels per tensor, so a net of a hundred small tensors spends most of an optimiser
//! step launching kernels (on CUDA) or dispatching operators (on the CPU), where PyTorch
//! eager uses its multi-tensor Adam. tch 0.26 binds neither the `_foreach_` nor the fused
//! Adam operators, so this optimiser does what apex's flat-parameter Adam does: every
//! trainable parameter becomes a view into one contiguous buffer, every gradient a view
//! into another, and a step is a handful of element-wise operations over the whole
//! buffer. The arithmetic is libtorch's Adam (β₁ 0.9, β₂ 0.999, ε 1e-8, no weight decay,
//! bias-corrected), so training is unchanged up to rounding (a test checks it against
//! `nn::Adam`).

use tch::{Kind, Tensor, nn};

use super::ModelError;

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPSILON: f64 = 1e-8;

/// Adam whose state and parameters each live in one flat tensor.
pub struct FlatAdam {
    parameters: Vec<Tensor>,
    /// Offset and length of each parameter in the flat buffers.
    spans: Vec<(i64, i64)>,
    /// Whether the parameter's `.grad` already aliases its span of `gradients`.
    bound: Vec<bool>,
    values: Tensor,
    gradients: Tensor,
    first_moment: Tensor,
    second_moment: Tensor,
    learning_rate: f64,
    steps: i32,
}

impl FlatAdam {
    /// Moves every trainable variable of `vs` into one buffer (the variables keep their
    /// names, shapes and values; they become views into it).
    pub fn new(vs: &nn::VarStore, learning_rate: f64) -> Result<Self, ModelError> {
        let mut parameters = vs.trainable_variables();
        if let Some(other) = parameters.iter().find(|p| p.kind() != Kind::Float) {
            return Err(ModelError::Data(format!(
                "the flat Adam optimiser needs float32 parameters, found {:?}",
                other.kind()
            )));
        }
        let mut spans = Vec::with_capacity(parameters.len());
        let mut total = 0;
        for p in &parameters {
            let len = p.numel() as i64;
            spans.push((total, len));
            total += len;
        }
        let options = (Kind::Float, vs.device());
        let values = Tensor::f_zeros([total], options)?;
        let gradients = Tensor::f_zeros([total], options)?;
        let mut bound = vec![false; parameters.len()];
        tch::no_grad(|| -> Result<(), ModelError> {
            for ((p, &(offset, len)), bound) in parameters.iter_mut().zip(&spans).zip(&mut bound) {
                let mut view = values.f_narrow(0, offset, len)?;
                view.f_copy_(&p.f_reshape([-1])?)?;
                p.set_data(&view.f_view(p.size().as_slice())?);
                // A gradient left by an earlier optimiser (an earlier round) would otherwise
                // be accumulated into by the first backward pass: start it at zero, here.
                let mut grad = p.grad();
                if grad.defined() {
                    let view = gradients.f_narrow(0, offset, len)?;
                    let _ = grad.f_set_source_tensor_(&view.f_view(p.size().as_slice())?)?;
                    *bound = true;
                }
            }
            Ok(())
        })?;
        Ok(Self {
            bound,
            parameters,
            spans,
            gradients,
            first_moment: Tensor::f_zeros([total], options)?,
            second_moment: Tensor::f_zeros([total], options)?,
            values,
            learning_rate,
            steps: 0,
        })
    }

    /// The rate of the next steps (the schedule sets it before each one).
    pub fn set_lr(&mut self, learning_rate: f64) {
        self.learning_rate = learning_rate;
    }

    /// Zeroes the gradients, back-propagates `loss` and takes one Adam step.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<(), ModelError> {
        let _ = self.gradients.f_zero_()?;
        loss.f_backward()?;
        self.bind_gradients()?;
        self.step()
    }

    /// Points every parameter's freshly allocated `.grad` at its span of the flat gradient
    /// buffer (after copying it there), so later backward passes accumulate in place.
    /// A parameter that has no gradient yet keeps zeros in its span.
    fn bind_gradients(&mut self) -> Result<(), ModelError> {
        for ((p, &(offset, len)), bound) in
            self.parameters.iter().zip(&self.spans).zip(&mut self.bound)
        {
            if *bound {
                continue;
            }
            let mut grad = p.grad();
            if !grad.defined() {
                continue;
            }
            let mut view = self.gradients.f_narrow(0, offset, len)?;
            view.f_copy_(&grad.f_reshape([-1])?)?;
            let _ = grad.f_set_source_tensor_(&view.f_view(p.size().as_slice())?)?;
            *bound = true;
        }
        Ok(())
    }

    fn step(&mut self) -> Result<(), ModelError> {
        self.steps += 1;
        let correction1 = 1.0 - BETA1.powi(self.steps);
        let correction2 = 1.0 - BETA2.powi(self.steps);
        tch::no_grad(|| -> Result<(), ModelError> {
            let g = &self.gradients;
            let _ = self.first_moment.f_lerp_(g, 1.0 - BETA1)?;
            let _ = self.second_moment.f_lerp_(&g.f_square()?, 1.0 - BETA2)?;
            let mut denominator = self.second_moment.f_sqrt()?;
            let _ = denominator.f_div_scalar_(correction2.sqrt())?;
            let _ = denominator.f_add_scalar_(EPSILON)?;
            let update = self
                .first_moment
                .f_div(&denominator)?
                .f_mul_scalar(self.learning_rate / correction1)?;
            let _ = self.values.f_sub_(&update)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{Module, OptimizerConfig};
    use tch::{Device, Kind};

    fn net(vs: &nn::VarStore) -> impl Module + use<> {
        let root = vs.root();
        nn::seq()
            .add(nn::linear(&root / "a", 5, 7, Default::default()))
            .add_fn(|x| x.tanh())
            .add(nn::linear(&root / "b", 7, 3, Default::default()))
    }

    #[test]
    fn matches_libtorch_adam_and_keeps_the_variables() {
        tch::manual_seed(3);
        let input = Tensor::randn([16, 5], (Kind::Float, Device::Cpu));
        let target = Tensor::randn([16, 3], (Kind::Float, Device::Cpu));
        let reference_vs = nn::VarStore::new(Device::Cpu);
        let reference = net(&reference_vs);
        let flat_vs = nn::VarStore::new(Device::Cpu);
        let flat = net(&flat_vs);
        let mut flat_vs_copy = flat_vs;
        flat_vs_copy.copy(&reference_vs).unwrap();
        let flat_vs = flat_vs_copy;

        let loss = |model: &dyn Module| {
            model
                .forward(&input)
                .mse_loss(&target, tch::Reduction::Mean)
        };
        let initial_loss = loss(&flat).double_value(&[]);
        // Two optimisers in turn over the same variables, as the study's rounds do: the
        // second must not inherit the first one's last gradient.
        for _round in 0..2 {
            let mut adam = nn::Adam::default().build(&reference_vs, 1e-2).unwrap();
            let mut flat_adam = FlatAdam::new(&flat_vs, 1e-2).unwrap();
            for step in 0..10 {
                let rate = 1e-2 / (1.0 + step as f64);
                adam.set_lr(rate);
                flat_adam.set_lr(rate);
                adam.backward_step(&loss(&reference));
                flat_adam.backward_step(&loss(&flat)).unwrap();
            }
        }
        let reference_variables = reference_vs.variables();
        let flat_variables = flat_vs.variables();
        assert_eq!(reference_variables.len(), flat_variables.len());
        for (name, expected) in &reference_variables {
            let got = &flat_variables[name];
            assert_eq!(got.size(), expected.size(), "{name}");
            let difference = (got - expected).abs().max().double_value(&[]);
            assert!(difference < 1e-5, "{name} differs by {difference}");
        }
        let final_loss = loss(&flat).double_value(&[]);
        assert!(
            final_loss < 0.9 * initial_loss,
            "training did not lower the loss: {initial_loss} → {final_loss}"
        );
    }
}
