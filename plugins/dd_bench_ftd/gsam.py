"""GSAM: Surrogate Gap Guided Sharpness-Aware Minimization (Zhuang et al., ICLR 2022).

FTD trains its experts with GSAM so that their trajectories are flat. One step, given the
minibatch loss ``L`` (the closure) at weights ``w``:

1. ``g = grad L(w)``;
2. climb to ``w + e`` with ``e = rho * g / ||g||``, or with adaptive scaling (ASAM)
   ``e = rho * w^2 * g / || |w| * g ||`` (element-wise ``|w|`` and ``w^2``);
3. ``g_p = grad L(w + e)`` (BatchNorm running statistics are left as they were after the
   first pass, so the perturbed pass does not count twice);
4. split ``g`` into its part parallel to ``g_p`` and the orthogonal rest
   ``g_orth = g - (<g, g_p> / ||g_p||^2) g_p``; the update direction is
   ``g_p - alpha * g_orth`` (descending the surrogate gap);
5. go back to ``w`` and let the base optimizer (SGD with the recipe's lr, momentum and
   weight decay) step along that direction.

``rho`` is constant. The FTD/DATM reference drives it with GSAM's ``ProportionScheduler``
tied to a constant learning rate (``rho_max == rho_min``), which also yields a constant
``rho``; the learning-rate decay of the evaluation recipe does not apply to experts.
With ``rho = 0`` there is no perturbation and the step is exactly the base SGD step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from dd_bench.plugin import ConfigError

# The reference's defaults: rho 0.01 (FTD README `buffer.py ... --rho 0.01`, DATM's
# buffer/run_buffer.sh `--rho_max=0.01 --rho_min=0.01`); alpha 0.4 and adaptive scaling on
# (the argparse defaults of buffer_FTD.py in the DATM repository, which trains FTD's experts).
GSAM_DEFAULTS: dict[str, Any] = {"rho": 0.01, "alpha": 0.4, "adaptive": True}


def check_options(options: Mapping[str, Any], where: str = "gsam") -> dict[str, Any]:
    """GSAM options with defaults filled in; unknown keys and bad values are a ConfigError."""
    unknown = sorted(set(options) - set(GSAM_DEFAULTS))
    if unknown:
        raise ConfigError(f"{where}: unknown option {', '.join(unknown)} (allowed: {', '.join(sorted(GSAM_DEFAULTS))})")
    merged = {**GSAM_DEFAULTS, **options}
    if not merged["rho"] >= 0:
        raise ConfigError(f"{where}: rho={merged['rho']} is not allowed: use a number >= 0")
    if not merged["alpha"] >= 0:
        raise ConfigError(f"{where}: alpha={merged['alpha']} is not allowed: use a number >= 0")
    if not isinstance(merged["adaptive"], bool):
        raise ConfigError(f"{where}: adaptive={merged['adaptive']!r} is not allowed: use true or false")
    return merged


class GSAM(torch.optim.Optimizer):
    """GSAM around a base optimizer; ``step(closure)`` calls the closure twice.

    The closure must zero the gradients, compute the loss on one fixed minibatch (the same
    augmented images both times) and call ``backward()``, as ``train_classifier``'s does.
    ``model`` (optional) lets the perturbed pass leave BatchNorm running statistics alone.
    """

    def __init__(
        self,
        base_optimizer: torch.optim.Optimizer,
        rho: float = GSAM_DEFAULTS["rho"],
        alpha: float = GSAM_DEFAULTS["alpha"],
        adaptive: bool = GSAM_DEFAULTS["adaptive"],
        model: nn.Module | None = None,
        eps: float = 1e-12,
    ):
        opts = check_options({"rho": rho, "alpha": alpha, "adaptive": adaptive})
        params = [p for group in base_optimizer.param_groups for p in group["params"]]
        super().__init__(params, {})
        self.base_optimizer = base_optimizer
        self.param_groups = base_optimizer.param_groups  # one set of groups: lr changes reach the base
        self.rho, self.alpha, self.adaptive = float(opts["rho"]), float(opts["alpha"]), opts["adaptive"]
        self.model = model
        self.eps = eps

    def state_dict(self) -> dict[str, Any]:
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.base_optimizer.load_state_dict(state_dict)
        self.param_groups = self.base_optimizer.param_groups

    def _params_with_grad(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"] if p.grad is not None]

    def _norm_buffers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if self.model is None:
            return []
        saved = []
        for module in self.model.modules():
            if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats:
                for buf in (module.running_mean, module.running_var, module.num_batches_tracked):
                    if buf is not None:
                        saved.append((buf, buf.detach().clone()))
        return saved

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:  # type: ignore[override]
        if closure is None:
            raise ValueError("GSAM.step needs a closure that recomputes the loss and its gradients")
        with torch.enable_grad():
            loss = closure()
        if self.rho > 0:  # one fused call per operation over all parameters (torch._foreach_*)
            params = self._params_with_grad()
            grads = torch._foreach_mul([p.grad for p in params], 1.0)  # copies
            if self.adaptive:
                scaled = torch._foreach_mul(torch._foreach_abs(params), grads)
                norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(scaled)))
                perturbations = torch._foreach_mul(grads, torch._foreach_mul(params, params))
            else:
                norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
                perturbations = torch._foreach_mul(grads, 1.0)
            torch._foreach_mul_(perturbations, self.rho / (norm + self.eps))
            torch._foreach_add_(params, perturbations)
            saved = self._norm_buffers()
            with torch.enable_grad():
                closure()
            for buf, value in saved:  # the perturbed pass must not move the running statistics
                buf.copy_(value)
            torch._foreach_sub_(params, perturbations)
            perturbed = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            inner = torch.stack([torch.vdot(g.flatten(), gp.flatten()) for g, gp in zip(grads, perturbed)]).sum()
            gp_sq = torch.stack(torch._foreach_norm(perturbed)).pow(2).sum()
            coef = inner / (gp_sq + self.eps)
            # g_p - alpha * (g - coef * g_p) = (1 + alpha * coef) * g_p - alpha * g
            directions = torch._foreach_mul(perturbed, 1 + self.alpha * coef)
            torch._foreach_add_(directions, grads, alpha=-self.alpha)
            for p, d in zip(params, directions):
                p.grad = d
        self.base_optimizer.step()
        return loss


def build_gsam(model: nn.Module, recipe: Any) -> GSAM:
    """``OptimizerFactory`` for expert training: GSAM around SGD(lr, momentum, weight decay)."""
    opts = check_options(dict(getattr(recipe, "optimizer_options", None) or {}))
    base = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    return GSAM(base, rho=opts["rho"], alpha=opts["alpha"], adaptive=opts["adaptive"], model=model)
