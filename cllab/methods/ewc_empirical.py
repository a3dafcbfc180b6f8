"""EWC with the empirical Fisher: the squared gradients of the true labels' log-likelihood, which is not the Fisher
(Kunstner, Hennig & Balles 2019, "Limitations of the empirical Fisher approximation for natural gradient descent",
NeurIPS), whatever `importance.fisher.kind` says."""

from cllab.methods import FISHER_SETTINGS, Method

METHOD = Method("ewc_empirical", "EWC, empirical F", "#17becf", omega="omega_fisher", settings="fisher",
                settings_schema=FISHER_SETTINGS, fixed={"kind": "empirical"},
                lambda_grid=(300, 1000, 2000, 3000, 4500, 7000), order=60)
