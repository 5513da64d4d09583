"""Logistic regression on probabilistic targets. Pure numpy / scipy, no Django.

A training set gives each row P(PRESENT), not only a label. Fitting its hard labels throws away how sure the label
model is: a row at 0.55 pulls as hard as one at 0.99, and the label model's mistakes sit mostly near 0.5. The
noise-aware loss of data programming (the end model snorkel recommends) is the cross-entropy against the
probability. scikit-learn's LogisticRegression takes classes only; its objective with every row entered twice, as
PRESENT weighted p and ABSENT weighted 1 - p, is this one, which is minimised here without the copy (half the
memory and time). On 0 / 1 targets it is scikit-learn's fit: same objective, same solver and stopping rule.
"""

import numpy as np
from scipy.optimize import minimize


class ProbabilisticLogisticRegression:
    """L2 logistic regression with y = P(PRESENT) in [0, 1] per row, through the part of scikit-learn's
    LogisticRegression interface the fitting code uses: C, max_iter, tol, warm_start, set_params, fit, coef_,
    intercept_, n_iter_, decision_function. Minimises mean(log(1 + e^z) - y z) + |w|^2 / (2 C n), z = X w + b
    (scikit-learn's scaling of the same loss), with L-BFGS-B."""

    def __init__(self, C=1.0, max_iter=100, tol=1e-4, warm_start=False):
        self.C, self.max_iter, self.tol, self.warm_start = C, max_iter, tol, warm_start
        self.coef_ = self.intercept_ = self.n_iter_ = None

    def set_params(self, **params):
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def fit(self, features, target):
        features = np.asarray(features, dtype=np.float32)
        target = np.clip(np.asarray(target, dtype=np.float64), 0.0, 1.0)
        rows, dim = features.shape
        penalty = 1.0 / (self.C * rows)

        def loss_and_gradient(parameters):
            weights = parameters[:dim]
            logits = (features @ weights.astype(np.float32)).astype(np.float64) + parameters[dim]
            residual = np.exp(-np.logaddexp(0.0, -logits)) - target  # sigmoid(z) - y
            gradient = np.empty(dim + 1)
            gradient[:dim] = (features.T @ residual.astype(np.float32)) / rows + penalty * weights
            gradient[dim] = residual.mean()
            loss = np.mean(np.logaddexp(0.0, logits) - target * logits) + penalty / 2 * weights @ weights
            return loss, gradient

        start = np.zeros(dim + 1)
        if self.warm_start and self.coef_ is not None:
            start = np.append(self.coef_[0], self.intercept_[0]).astype(np.float64)
        result = minimize(loss_and_gradient, start, jac=True, method="L-BFGS-B",
                          options={"maxiter": self.max_iter, "maxls": 50, "gtol": self.tol,
                                   "ftol": 64 * np.finfo(float).eps})
        self.coef_, self.intercept_ = result.x[None, :dim], result.x[dim:]
        self.n_iter_ = np.array([result.nit])
        return self

    def decision_function(self, features):
        return np.asarray(features, dtype=np.float32) @ self.coef_[0].astype(np.float32) + np.float32(self.intercept_[0])
