"""EWC and experience replay together: one penalty per past task weighted by its Fisher (Kirkpatrick et al. 2017)
beside a class-balanced memory trained on with every batch ((1/t)·new + (1 − 1/t)·memory, as `er`). A penalty holds
the weights the old tasks read; the memory holds their outputs against the new classes, which no weight penalty does
in class-incremental learning. Scenarios only."""

from cllab.methods import FISHER_SETTINGS, MEMORY, SCENARIOS_ONLY, Method

METHOD = Method("ewc_er", "EWC + replay", "#008080", omega="omega_fisher", settings="fisher",
                settings_schema=FISHER_SETTINGS, experiments=SCENARIOS_ONLY, options=MEMORY, memory="replay",
                order=155)
