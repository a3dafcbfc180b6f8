"""EWC with the sampled Fisher: one label per example drawn from the model's p(y|x), the Monte-Carlo estimate of the
true Fisher (Martens 2020, "New insights and perspectives on the natural gradient method", JMLR 21), whatever
`importance.fisher.kind` says."""

from cllab.methods import FISHER_SETTINGS, Method

METHOD = Method("ewc_sampled", "EWC, sampled F", "#8c564b", omega="omega_fisher", settings="fisher",
                settings_schema=FISHER_SETTINGS, fixed={"kind": "sampled"}, lambda_grid=(300, 1000, 2000, 3000, 4500),
                order=50)
